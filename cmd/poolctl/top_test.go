package main

// End-to-end tests of top: real pools of built-in workers on a real
// redis-server, sampled by their masters every 200 ms.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/shell/topview"
	"github.com/poolctl/poolctl/stats"
)

// topConfig writes the config of a pool of built-in workers on redisURL,
// sampled every 200 ms, a queue with jobs and none done for 1 s stalled.
func topConfig(t *testing.T, redisURL, workers string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pool.yml")
	data := "workers:\n" + workers + "redis: " + redisURL + "\nsample_interval: 200ms\nstalled_after: 1s\nstart_secs: 500ms\nterm_timeout: 5s\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTopPool starts a piped shell on pool name and waits until the
// master has published a sample.
func (e *shellEnv) startTopPool(t *testing.T, name, redisURL, workers string) (*pipedShell, poolfs.Paths) {
	t.Helper()
	cfg := topConfig(t, redisURL, workers)
	p := e.paths(name)
	e.reap(name)
	sh := e.startPiped(t, "-c", cfg, "--name", name, "--no-prompt")
	sh.waitRunning(t, p)
	waitFor(t, 10*time.Second, "a sample", func() bool { _, err := stats.ReadFile(p.Sample); return err == nil })
	return sh, p
}

// withoutWaitNotes is top --json's standard error without the note it
// writes while the first current sample is on its way ("top: no sample
// yet", documented: why there is no frame goes to standard error). A
// loaded host's master wrote a sample more than three intervals after the
// last, and top said so before its frames; anything else is noise.
func withoutWaitNotes(stderr string) string {
	var rest []string
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if l != "top: no sample yet\n" && l != "" {
			rest = append(rest, l)
		}
	}
	return strings.Join(rest, "")
}

// checkFrame checks the keys issue 12 names for a top --json frame, and
// their JSON types.
func checkFrame(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("frame %q: %v", line, err)
	}
	if ts, ok := m["ts"].(string); !ok {
		t.Errorf("ts is %s", jsonType(m["ts"]))
	} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Errorf("ts %q is not RFC 3339: %v", ts, err)
	}
	if jsonType(m["pool"]) != "string" {
		t.Errorf("pool is %s", jsonType(m["pool"]))
	}
	host, _ := m["host"].(map[string]any)
	for _, k := range []string{"load1", "cpu_percent", "mem_free_bytes"} {
		if jsonType(host[k]) != "number" {
			t.Errorf("host.%s is %s", k, jsonType(host[k]))
		}
	}
	queues, ok := m["queues"].([]any)
	if !ok {
		t.Fatalf("queues is %s", jsonType(m["queues"]))
	}
	for _, q := range queues {
		q := q.(map[string]any)
		for k, want := range map[string]string{"name": "string", "depth": "number", "in_flight": "number",
			"in_rate": "number", "out_rate": "number", "state": "string", "job_seconds": "object"} {
			if got := jsonType(q[k]); got != want {
				t.Errorf("queue %v: %s is %s, want %s", q["name"], k, got, want)
			}
		}
		if eta, ok := q["eta_seconds"]; !ok || (eta != nil && jsonType(eta) != "number") {
			t.Errorf("queue %v: eta_seconds is %v (present: %v)", q["name"], eta, ok)
		}
		js, _ := q["job_seconds"].(map[string]any)
		for _, k := range []string{"p50", "p95"} {
			if v, ok := js[k]; !ok || (v != nil && jsonType(v) != "number") {
				t.Errorf("queue %v: job_seconds.%s is %v (present: %v)", q["name"], k, v, ok)
			}
		}
	}
	workers, ok := m["workers"].([]any)
	if !ok {
		t.Fatalf("workers is %s", jsonType(m["workers"]))
	}
	for _, w := range workers {
		w := w.(map[string]any)
		for k, want := range map[string]string{"pid": "number", "queues": "string", "state": "string", "job": "string",
			"job_seconds": "number", "jobs_done": "number", "cpu_percent": "number", "rss_bytes": "number"} {
			if got := jsonType(w[k]); got != want {
				t.Errorf("worker %v: %s is %s, want %s", w["pid"], k, got, want)
			}
		}
	}
	return m
}

// checkFrames checks that out is exactly n frames of pool, newer and
// newer, and returns them.
func checkFrames(t *testing.T, out string, n int, pool string) []map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != n || out == "" {
		t.Fatalf("want %d frames, got %d:\n%s", n, len(lines), out)
	}
	var frames []map[string]any
	var last time.Time
	for _, l := range lines {
		m := checkFrame(t, l)
		ts, _ := time.Parse(time.RFC3339, m["ts"].(string))
		if !ts.After(last) {
			t.Errorf("frame at %v after one at %v", ts, last)
		}
		last = ts
		if m["pool"] != pool {
			t.Errorf("frame of pool %v, want %s", m["pool"], pool)
		}
		frames = append(frames, m)
	}
	return frames
}

// Issue 12: top --json --count 3 against a real pool emits exactly three
// parseable frames with the documented keys, from poolctl top and from
// the shell's top command alike.
func TestTopJSONCount(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	odd := "報告/日次:x"
	sh, _ := e.startTopPool(t, "topj", redis.URL(), "  foo: 2\n  \""+odd+"\": 1\n")
	if r := e.run("", "enqueue", "--redis", redis.URL(), "-q", "-n", "40", "foo", "Poolctl::Sleep", "50"); r.code != 0 {
		t.Fatalf("enqueue: %d %s", r.code, r.stderr)
	}

	start := time.Now()
	r := e.run("", "top", "topj", "--json", "--count", "3")
	if r.code != 0 {
		t.Fatalf("poolctl top: exit %d\n%s", r.code, r.stderr)
	}
	frames := checkFrames(t, r.stdout, 3, "topj")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("3 frames took %v", took)
	}
	if rest := withoutWaitNotes(r.stderr); rest != "" {
		t.Errorf("stderr: %q", r.stderr)
	}
	names := map[string]bool{}
	for _, q := range frames[2]["queues"].([]any) {
		names[q.(map[string]any)["name"].(string)] = true
	}
	if !names["foo"] || !names[odd] {
		t.Errorf("queues %v, want foo and %s", names, odd)
	}
	if n := len(frames[2]["workers"].([]any)); n != 3 {
		t.Errorf("%d workers, want 3", n)
	}

	// The shell's command, in a script: the frames on stdout, nothing else.
	r = e.run("top --json --count 3 --interval 100ms\n", "attach", "topj")
	if r.code != 0 {
		t.Fatalf("shell top: exit %d\n%s", r.code, r.stderr)
	}
	checkFrames(t, r.stdout, 3, "topj")
	sh.close(t)
}

// A reader that has what it wants (| head -1) ends top quietly with
// success, whether top was writing or waiting; so does one that never
// reads.
func TestTopJSONEarlyClose(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	sh, _ := e.startTopPool(t, "toph", redis.URL(), "  foo: 1\n")
	for _, cmdline := range []string{
		"poolctl top toph --json | head -1",
		"poolctl top toph --json --interval 10ms | head -1",
		"poolctl top toph --json --interval 30s | head -1", // waits for a sample when the reader goes
		"poolctl top toph --json | true",
	} {
		start := time.Now()
		r := e.pipeline(t, "toph-reader", cmdline)
		if len(r.status) != 2 || r.status[0] != 0 || r.status[1] != 0 {
			t.Errorf("%s: exit statuses %v\nstderr:\n%s", cmdline, r.status, r.stderr)
		}
		if rest := withoutWaitNotes(r.stderr); rest != "" {
			t.Errorf("%s: stderr %q", cmdline, r.stderr)
		}
		if strings.Contains(cmdline, "head") {
			checkFrames(t, r.stdout, 1, "toph")
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s took %v", cmdline, took)
		}
	}
	// A reader gone before top starts: its first write fails (EPIPE; it
	// must not die of SIGPIPE), or it notices first.
	for i := 0; i < 5; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		cmd := exec.Command(shellBin, "top", "toph", "--json")
		cmd.Env = e.env
		cmd.Stdout = w
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		w.Close()
		if err != nil || withoutWaitNotes(stderr.String()) != "" {
			t.Errorf("top into a closed pipe: %v, stderr %q", err, stderr.String())
		}
	}
	sh.close(t)
}

// Mistakes are usage errors (exit status 2) naming the flag, with or
// without a pool; a pool that is not running is an error.
func TestTopUsage(t *testing.T) {
	e := newShellEnv(t)
	for flag, args := range map[string][]string{
		`"--bogus"`:       {"top", "--bogus"},
		`--interval "0"`:  {"top", "--interval", "0"},
		`--interval "1x"`: {"top", "--interval=1x"},
		`--count "0"`:     {"top", "--json", "--count", "0"},
		`--count "many"`:  {"top", "--count", "many"},
		"--count needs":   {"top", "--count"},
		"one pool name":   {"top", "a", "b"},
	} {
		r := e.run("", args...)
		if r.code != 2 || !strings.Contains(r.stderr, flag) || r.stdout != "" {
			t.Errorf("poolctl %q: exit %d, stderr %q, stdout %q; want 2 naming %s", args, r.code, r.stderr, r.stdout, flag)
		}
	}
	r := e.run("", "top", "nosuch", "--json")
	if r.code != 1 || !strings.Contains(r.stderr, `pool "nosuch" is not running`) {
		t.Errorf("top of no pool: exit %d, %q", r.code, r.stderr)
	}
	r = e.run("", "top", "-h")
	if r.code != 0 || !strings.Contains(r.stdout, "usage: poolctl top [NAME]") {
		t.Errorf("top -h: exit %d, %q", r.code, r.stdout)
	}
}

// A master that stops sampling (SIGSTOP) is said to be so on standard
// error; its last sample is not printed as current. Once it goes on, the
// next sample is.
func TestTopJSONStaleSample(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	sh, p := e.startTopPool(t, "tops", redis.URL(), "  foo: 1\n")
	master := readPid(p.Pid)
	if err := syscall.Kill(master, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(master, syscall.SIGCONT) })
	waitFor(t, 10*time.Second, "the last sample to be stale", func() bool {
		s, err := stats.ReadFile(p.Sample)
		return err == nil && time.Since(s.TS) > time.Second
	})

	cmd := exec.Command(shellBin, "top", "tops", "--json", "--count", "1", "--interval", "100ms")
	cmd.Env = e.env
	var out testutil.Buffer
	cmd.Stdout = &out
	proc := testutil.StartProcess(t, cmd, time.Second)
	waitFor(t, 10*time.Second, "top to say the sample is stale", func() bool {
		return strings.Contains(proc.Stderr.String(), "s old: is the master stopped?")
	})
	if out.String() != "" {
		t.Fatalf("a stale sample was printed: %q", out.String())
	}
	resumed := time.Now()
	if err := syscall.Kill(master, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !proc.WaitExit(10 * time.Second) {
		t.Fatalf("top did not print the next sample; stderr:\n%s", proc.Stderr.String())
	}
	if proc.Err() != nil {
		t.Fatalf("top: %v\n%s", proc.Err(), proc.Stderr.String())
	}
	m := checkFrames(t, out.String(), 1, "tops")[0]
	if ts, _ := time.Parse(time.RFC3339, m["ts"].(string)); ts.Before(resumed.Add(-50 * time.Millisecond)) {
		t.Errorf("printed a sample of %v, from before the master went on at %v", ts, resumed)
	}
	sh.close(t)
}

// Linking the TUI library must not make every poolctl command query the
// terminal at start-up (bubbletea v1 did: OSC 11, then a 5 s wait on a
// terminal that does not answer).
func TestNoTerminalQueryAtStartup(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shellBin, "--version")
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	tty.Close()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := ptmx.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if took > 2*time.Second || strings.Contains(out.String(), "\x1b]") || strings.Contains(out.String(), "\x1b[6n") {
		t.Errorf("poolctl --version at a terminal took %v and wrote %q", took, out.String())
	}
}

// screenShell is a shell at a pseudo-terminal with a terminal emulator
// on the other side: it keeps the screen a person would see, and answers
// the program's queries (cursor position, modes) as a terminal does.
type screenShell struct {
	*ptyShell
	scr *vt.SafeEmulator
}

func (e *shellEnv) startScreen(t *testing.T, args ...string) *screenShell {
	t.Helper()
	const rows, cols = 40, 160
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shellBin, args...)
	cmd.Env = append(e.env, "TERM=xterm-256color")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	ss := &screenShell{
		ptyShell: &ptyShell{t: t, ptmx: ptmx, tty: tty, cmd: cmd, out: &syncBuffer{}},
		scr:      vt.NewSafeEmulator(cols, rows),
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			ss.out.Write(buf[:n])
			_, _ = ss.scr.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() { _, _ = io.Copy(ptmx, ss.scr) }() // the terminal's answers
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		tty.Close()
		ptmx.Close()
		<-reading
		// Ends the copy of the answers. (Emulator.Close is not safe while
		// Read runs: it sets a flag Read tests unlocked.)
		if pw, ok := ss.scr.InputPipe().(*io.PipeWriter); ok {
			pw.Close()
		}
	})
	return ss
}

// screen is the text on the terminal's screen now.
func (ss *screenShell) screen() string { return ansi.Strip(ss.scr.Render()) }

// waitScreen waits until the screen shows want.
func (ss *screenShell) waitScreen(want string, timeout time.Duration) {
	ss.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(ss.screen(), want) {
		if time.Now().After(deadline) {
			ss.t.Fatalf("timed out waiting for %q on the screen:\n%s", want, ss.screen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Issue 12: a pty test opens top in the shell, presses +, sees the count
// change, pauses and resumes the workers with p, leaves with q (and Esc,
// and Ctrl-C), and finds the prompt and the terminal as they were.
func TestTopPTY(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	cfg := topConfig(t, redis.URL(), "  foo: 1\n  bar: 1\n")
	p := e.paths("ptop")
	e.reap("ptop")
	sh := e.startScreen(t, "-c", cfg, "--name", "ptop")
	cooked := termiosOf(t, sh.tty)
	sh.expect("started manager", 30*time.Second)
	sh.expect(">> ", 10*time.Second)
	master := readPid(p.Pid)
	atPrompt := termiosOf(t, sh.tty)

	group := func(queues string) poolfs.GroupState {
		st, err := poolfs.ReadState(p.State)
		if err != nil {
			return poolfs.GroupState{}
		}
		for _, g := range st.Groups {
			if g.Queues == queues {
				return g
			}
		}
		return poolfs.GroupState{}
	}
	openTop := func() {
		t.Helper()
		sh.typeSlowly("top\r")
		sh.expect("\x1b[?1049h", 10*time.Second) // the alternate screen
		sh.waitScreen(fmt.Sprintf("pool ptop · master %d up ", master), 10*time.Second)
		sh.waitScreen(topview.Keys, 10*time.Second)
	}
	closedTop := func(how string) {
		t.Helper()
		sh.expect("\x1b[?1049l", 10*time.Second)
		sh.expect(">> ", 10*time.Second)
		waitFor(t, 15*time.Second, "the prompt's terminal state after "+how, func() bool { return termiosOf(t, sh.tty) == atPrompt })
		if scr := sh.screen(); strings.Contains(scr, topview.Keys) || !strings.Contains(scr, ">> ") {
			t.Errorf("after %s the screen is not the shell's:\n%s", how, scr)
		}
	}

	openTop()
	sh.waitScreen("DEPTH HISTORY", 10*time.Second) // a sample
	sh.waitScreen("> foo  1/1 worker", 10*time.Second)
	// foo is selected first; + adds a worker through config.
	sh.typeSlowly("+")
	sh.waitScreen("> foo  2/2 workers", 15*time.Second)
	if g := group("foo"); g.Desired != 2 || g.Live != 2 {
		t.Errorf("state.json: foo %+v", g)
	}
	sh.waitScreen("foo=2:bar=1 · Reloading master", 15*time.Second)
	// down selects bar; - stops at 1 and says so.
	sh.typeSlowly("\x1b[B")
	sh.waitScreen("> bar  1/1 worker", 15*time.Second)
	sh.typeSlowly("-")
	sh.waitScreen("bar has 1 worker: - stops at 1 (config bar=0 removes the queue list)", 10*time.Second)
	// up selects foo again; p pauses its two workers: a job waits. (Once
	// they have registered: a loaded machine may take a second to start
	// one, and p would wait for it.)
	rdb := redis.Client()
	waitFor(t, 15*time.Second, "three workers registered", func() bool {
		n, err := rdb.SCard(context.Background(), "resque:workers").Result()
		return err == nil && n == 3
	})
	sh.typeSlowly("\x1b[A")
	sh.waitScreen("> foo  2/2 workers", 15*time.Second)
	sh.typeSlowly("p")
	sh.waitScreen("paused 2 workers of foo (SIGUSR2 to ", 15*time.Second)
	sh.waitScreen("> foo  2/2 workers  paused 2/2", 15*time.Second)
	if r := e.run("", "enqueue", "--redis", redis.URL(), "-q", "foo", "Poolctl::Noop"); r.code != 0 {
		t.Fatalf("enqueue: %s", r.stderr)
	}
	sh.waitScreen("stalled", 15*time.Second)
	if n, _ := rdb.LLen(context.Background(), "resque:queue:foo").Result(); n != 1 {
		t.Errorf("a paused list took its job: depth %d", n)
	}
	sh.typeSlowly("p")
	sh.waitScreen("resumed 2 workers of foo (SIGCONT to ", 10*time.Second)
	waitFor(t, 15*time.Second, "the job done after resume", func() bool {
		n, err := rdb.LLen(context.Background(), "resque:queue:foo").Result()
		return err == nil && n == 0
	})
	// r reloads, as the reload command does.
	sh.typeSlowly("r")
	sh.waitScreen(fmt.Sprintf("Reloading master %d configuration", master), 10*time.Second)
	sh.typeSlowly("q")
	closedTop("q")

	sh.typeSlowly("config\r")
	sh.expect("foo=2", 10*time.Second)
	sh.expect(">> ", 10*time.Second)

	openTop()
	sh.typeSlowly("\x1b")
	closedTop("Esc")
	openTop()
	sh.typeSlowly("\x03")
	closedTop("Ctrl-C")
	if !alive(master) {
		t.Fatal("a key of top reached the master")
	}
	// The prompt reads keys again, none of the terminal's answers to top
	// among them.
	sh.typeSlowly("pid\r")
	sh.expect(strconv.Itoa(master), 10*time.Second)
	sh.expect(">> ", 10*time.Second)
	if strings.Contains(sh.out.String(), "unknown command") {
		t.Errorf("stray input reached the prompt:\n%q", sh.out.String())
	}

	sh.typeSlowly("exit\r")
	sh.expect("manager stopped", 30*time.Second)
	if err := sh.waitExit(); err != nil {
		t.Errorf("shell exit: %v", err)
	}
	if got := termiosOf(t, sh.tty); got != cooked {
		t.Errorf("terminal not restored at exit:\nbefore %+v\nafter  %+v", cooked, got)
	}
	if os.Getenv("POOLCTL_TEST_DUMP") != "" {
		t.Logf("terminal output:\n%q", sh.out.String())
	}
}
