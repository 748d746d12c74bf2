package main

// End-to-end tests of progress against a real redis-server and a real
// pool of built-in workers: the batch's figures, its growth, its failures,
// the ETA's honesty, early-closed pipes, and exit statuses in scripts.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/stats"
)

// jobPool is a pool of built-in workers on a test's redis-server, run by a
// piped shell, sampled every 200ms.
type jobPool struct {
	e     *shellEnv
	name  string
	url   string
	sh    *pipedShell
	paths poolfs.Paths
	rdb   *redis.Client
}

func (e *shellEnv) startJobPool(t *testing.T, srv *redistest.Server, name, workers string) *jobPool {
	t.Helper()
	cfg := jobConfig(t, srv, workers)
	e.reap(name)
	sh := e.startPiped(t, "-c", cfg, "--name", name, "--no-prompt")
	sh.waitRunning(t, e.paths(name))
	jp := e.jobPoolOf(t, srv, name)
	jp.sh = sh
	return jp
}

// jobConfig writes the config of a pool of built-in workers on srv.
func jobConfig(t *testing.T, srv *redistest.Server, workers string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	data := "workers:\n" + workers + "redis: " + srv.URL() + "\nsample_interval: 200ms\nstalled_after: 1s\nstart_secs: 200ms\nterm_timeout: 5s\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// jobPoolOf waits until the running pool name has published a sample and
// its state, and every one of its workers has registered in Redis (a USR2
// then pauses them all: one that has not set up its signals yet would die
// of it, and its replacement would not be paused).
func (e *shellEnv) jobPoolOf(t *testing.T, srv *redistest.Server, name string) *jobPool {
	t.Helper()
	p := e.paths(name)
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	waitFor(t, 10*time.Second, "the first sample", func() bool {
		stats.Want(p.Sample) // the master publishes samples only while someone reads them
		_, err := os.Stat(p.Sample)
		return err == nil
	})
	// The master's cockpit publishes samples before its first state
	// write (it starts before the first reconcile, which forks every
	// worker), and the shell's "queues:" line needs only the pid file: a
	// loaded host read no state file here after both.
	var st *poolfs.State
	waitFor(t, 10*time.Second, "the first state file", func() bool {
		var err error
		st, err = poolfs.ReadState(p.State)
		return err == nil
	})
	want := 0
	for _, g := range st.Groups {
		want += g.Desired
	}
	waitFor(t, 10*time.Second, "every worker to register", func() bool {
		return rdb.SCard(context.Background(), "resque:workers").Val() == int64(want)
	})
	return &jobPool{e: e, name: name, url: srv.URL(), paths: p, rdb: rdb}
}

// enqueue pushes n jobs of class with args on q.
func (jp *jobPool) enqueue(t *testing.T, n int, q, class string, args ...string) {
	t.Helper()
	r := jp.e.run("", append([]string{"enqueue", "-q", "-n", strconv.Itoa(n), "--redis", jp.url, q, class}, args...)...)
	if r.code != 0 {
		t.Fatalf("enqueue: exit %d: %s", r.code, r.stderr)
	}
}

// enqueuePaused pushes n jobs while the workers are paused, and waits
// until they are all in the queue: a worker that was blocked waiting for
// a job when it was paused takes one and gives it back.
func (jp *jobPool) enqueuePaused(t *testing.T, n int, q, class string, args ...string) {
	t.Helper()
	before := jp.depth(t, q)
	jp.enqueue(t, n, q, class, args...)
	waitFor(t, 10*time.Second, "the jobs taken during the pause to come back", func() bool {
		return jp.depth(t, q) == before+int64(n)
	})
}

// requireQueueStats runs one job on q and waits until its queue's stats
// hash appears, so a test starts from counters that exist. It used to
// skip after 2 s (while the built-in worker did not count per queue yet):
// on a loaded host the background acknowledgement can take longer than
// that, which silently skipped five tests in CI. The counters are there
// now (queue/stats.go), so their absence is a failure.
func (jp *jobPool) requireQueueStats(t *testing.T, q string) {
	t.Helper()
	jp.enqueue(t, 1, q, "Poolctl::Noop")
	waitFor(t, 10*time.Second, "the probe job to run", func() bool { return jp.depth(t, q) == 0 })
	ctx := context.Background()
	waitFor(t, 10*time.Second, "the probe job counted in resque:poolctl:stats:"+q, func() bool {
		return jp.rdb.Exists(ctx, "resque:poolctl:stats:"+q).Val() == 1
	})
}

// pause pauses the workers (USR2 through the master) and waits until the
// master says they are.
func (jp *jobPool) pause(t *testing.T) {
	t.Helper()
	jp.sh.send(t, "kill! USR2\n")
	jp.waitPaused(t)
}

func (jp *jobPool) waitPaused(t *testing.T) {
	t.Helper()
	waitFor(t, 10*time.Second, "the workers to pause", func() bool {
		st, err := poolfs.ReadState(jp.paths.State)
		return err == nil && !st.WorkersPausedAt.IsZero()
	})
}

func (jp *jobPool) resume(t *testing.T) { jp.sh.send(t, "kill! CONT\n") }

func (jp *jobPool) depth(t *testing.T, q string) int64 {
	n, err := jp.rdb.LLen(context.Background(), "resque:queue:"+q).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// timedLine is a line of output and when the test read it.
type timedLine struct {
	at   time.Time
	text string
}

// lineLog collects lines as they are written, with their arrival times.
type lineLog struct {
	mu    sync.Mutex
	lines []timedLine
	all   strings.Builder
}

func (l *lineLog) feed(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, timedLine{time.Now(), sc.Text()})
		l.all.WriteString(sc.Text() + "\n")
		l.mu.Unlock()
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func (l *lineLog) snapshot() []timedLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]timedLine(nil), l.lines...)
}

// bgProgress is a `poolctl progress` running in the background.
type bgProgress struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *lineLog
	done   chan struct{}
	code   int
}

func (e *shellEnv) startProgress(t *testing.T, args ...string) *bgProgress {
	t.Helper()
	cmd := exec.Command(shellBin, append([]string{"progress"}, args...)...)
	cmd.Env = e.env
	bp := &bgProgress{cmd: cmd, stdout: &syncBuffer{}, stderr: &lineLog{}, done: make(chan struct{})}
	cmd.Stdout = bp.stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fed := make(chan struct{})
	go func() { bp.stderr.feed(errPipe); close(fed) }()
	go func() {
		<-fed
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			bp.code = ee.ExitCode()
		} else if err != nil {
			bp.code = -1
		}
		close(bp.done)
	}()
	t.Cleanup(func() {
		select {
		case <-bp.done:
		default:
			_ = cmd.Process.Kill()
			<-bp.done
		}
	})
	return bp
}

// waitFor waits for progress to show want.
func (bp *bgProgress) waitFor(t *testing.T, what, want string) {
	t.Helper()
	bp.waitForMatch(t, what, regexp.MustCompile(regexp.QuoteMeta(want)))
}

// waitForMatch waits until progress's standard error matches re.
func (bp *bgProgress) waitForMatch(t *testing.T, what string, re *regexp.Regexp) {
	t.Helper()
	want := re.String()
	deadline := time.Now().Add(10 * time.Second)
	for !re.MatchString(bp.stderr.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%q); stderr:\n%s", what, want, testTail(bp.stderr.String(), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for progress to exit and returns its exit status.
func (bp *bgProgress) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-bp.done:
		return bp.code
	case <-time.After(timeout):
		t.Fatalf("progress did not end within %s; stderr:\n%s", timeout, testTail(bp.stderr.String(), 10))
		return 0
	}
}

func testTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// summaryOf decodes progress --json's one line.
func summaryOf(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout is not one JSON line: %v\n%q", err, out)
	}
	for _, k := range []string{"queues", "total", "done", "failed", "duration_seconds", "throughput", "job_seconds", "peak_workers"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary lacks %q: %s", k, out)
		}
	}
	return m
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

// The test: 2,000 Poolctl::Sleep 5 jobs drained by 4 workers.
// The workers are paused while progress marks the batch, so that "what
// was queued when it started" is exact; while they are paused the queue
// is stalled, and progress says so instead of an ETA.
func TestProgressDrainsABatch(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	jp := e.startJobPool(t, srv, "batch", "  foo: 4\n")
	jp.requireQueueStats(t, "foo")
	jp.pause(t)
	jp.enqueuePaused(t, 2000, "foo", "Poolctl::Sleep", "5")
	queued := jp.depth(t, "foo")
	bp := e.startProgress(t, "--name", "batch", "--json")
	// The rate is the smoothed one: jobs run before the pause may still
	// show in it, decaying.
	bp.waitForMatch(t, "progress to show the stalled queue", regexp.MustCompile(fmt.Sprintf(`foo 0/%d 0%% [0-9.]+/s stalled`, queued)))
	if regexp.MustCompile(`ETA \d`).MatchString(bp.stderr.String()) {
		t.Errorf("an ETA for a stalled queue:\n%s", bp.stderr.String())
	}
	jp.resume(t)
	if code := bp.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("progress exit %d\nstdout %s\nstderr:\n%s", code, bp.stdout.String(), testTail(bp.stderr.String(), 5))
	}
	m := summaryOf(t, bp.stdout.String())
	if num(m, "done") < float64(queued) || num(m, "total") != float64(queued) || num(m, "failed") != 0 || num(m, "throughput") <= 0 ||
		num(m, "peak_workers") != 4 || m["drained"] != true || num(m, "duration_seconds") <= 0 {
		t.Errorf("queued %d; summary %s", queued, bp.stdout.String())
	}
	js := m["job_seconds"].(map[string]any)
	if p50, ok := js["p50"].(float64); !ok || p50 < 0.004 || p50 > 0.05 {
		t.Errorf("p50 of 5ms sleeps = %v", js["p50"])
	}
	if p99, _ := js["p99"].(float64); p99 < js["p50"].(float64) {
		t.Errorf("p99 %v < p50 %v", js["p99"], js["p50"])
	}
	lines := bp.stderr.snapshot()
	if len(lines) < 3 || !strings.HasPrefix(lines[len(lines)-1].text, "progress ") || !strings.Contains(lines[len(lines)-1].text, "drained") {
		t.Errorf("stderr does not end with a drained line:\n%s", testTail(bp.stderr.String(), 5))
	}
	jp.sh.close(t)
}

// Jobs enqueued during the batch grow its total, and progress says so;
// a queue name with ':', '/' and a non-ASCII letter is just a name.
func TestProgressTotalGrows(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	const q = "q:ü/1"
	jp := e.startJobPool(t, srv, "grow", "  \""+q+"\": 4\n  other: 1\n")
	jp.requireQueueStats(t, q)
	jp.pause(t)
	jp.enqueuePaused(t, 500, q, "Poolctl::Sleep", "2")
	bp := e.startProgress(t, "--name", "grow", "--json", q)
	bp.waitFor(t, "the mark", q+" 0/500 0%")
	jp.enqueuePaused(t, 300, q, "Poolctl::Sleep", "2")
	waitFor(t, 10*time.Second, "the grown total", func() bool {
		return strings.Contains(bp.stderr.String(), q+" 0/800 0%") && strings.Contains(bp.stderr.String(), "(+300 enqueued during the batch)")
	})
	if strings.Contains(bp.stderr.String(), "other") {
		t.Errorf("progress shows a queue it was not asked for:\n%s", bp.stderr.String())
	}
	jp.resume(t)
	if code := bp.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("progress exit %d\n%s", code, testTail(bp.stderr.String(), 5))
	}
	m := summaryOf(t, bp.stdout.String())
	if num(m, "total") != 800 || num(m, "done") != 800 || num(m, "enqueued") != 800-500 {
		t.Errorf("summary %s", bp.stdout.String())
	}
	qs := m["queues"].([]any)
	if len(qs) != 1 || qs[0].(map[string]any)["name"] != q {
		t.Errorf("queues %v", qs)
	}
	jp.sh.close(t)
}

// Failed jobs are counted and make progress fail (exit 1), after the
// summary; a queue the pool does not serve is a usage error (exit 2)
// naming it; --timeout gives up with exit 3 and the summary so far.
func TestProgressFailuresUnknownQueueTimeout(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	jp := e.startJobPool(t, srv, "fails", "  foo: 4\n")

	r := e.run("", "progress", "--name", "fails", "nope", "foo", "bar:ü")
	if r.code != 2 || !strings.Contains(r.stderr, `poolctl: progress: queues "nope", "bar:ü" are not among the pool's queues (it serves: foo)`) || r.stdout != "" {
		t.Errorf("unknown queue: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	// Without --name: the only pool running, said on stderr.
	r = e.run("", "progress", "--json", "--", "-x")
	if r.code != 2 || !strings.Contains(r.stderr, "poolctl: using pool fails, the only one running") ||
		!strings.Contains(r.stderr, `poolctl: progress: queue "-x" is not among the pool's queues`) {
		t.Errorf("the only pool: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run("", "progress", "--name", "nosuchpool")
	if r.code != 1 || !strings.Contains(r.stderr, "pool nosuchpool: the master is not running") {
		t.Errorf("no pool: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run("", "progress", "--name", "fails", "--timeout", "soon")
	if r.code != 2 || !strings.Contains(r.stderr, `usage error: --timeout: invalid timeout "soon"`) {
		t.Errorf("bad timeout: exit %d, stderr %q", r.code, r.stderr)
	}
	jp.requireQueueStats(t, "foo")

	jp.pause(t)
	jp.enqueuePaused(t, 50, "foo", "Poolctl::Sleep", "1")
	jp.enqueuePaused(t, 20, "foo", "Poolctl::Fail", "boom")
	r = e.run("", "progress", "--name", "fails", "--json", "--timeout", "1.5")
	if r.code != 3 || !strings.Contains(r.stderr, "poolctl: progress: timed out after 1.5s: foo 70 queued, 0 in flight (stalled") {
		t.Errorf("timeout: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if m := summaryOf(t, r.stdout); m["drained"] != false || num(m, "total") != 70 || num(m, "done") != 0 {
		t.Errorf("summary so far: %s", r.stdout)
	}

	bp := e.startProgress(t, "--name", "fails")
	bp.waitFor(t, "the mark", "foo 0/70")
	jp.resume(t)
	if code := bp.wait(t, 60*time.Second); code != 1 {
		t.Errorf("progress with failed jobs: exit %d, want 1", code)
	}
	if !strings.Contains(bp.stdout.String(), "70 of 70 jobs done, 20 failed") || !strings.Contains(bp.stdout.String(), "peak workers: 4") {
		t.Errorf("summary:\n%s", bp.stdout.String())
	}
	if !strings.Contains(bp.stderr.String(), "poolctl: progress: 20 of the batch's 70 jobs failed (poolctl failed list shows them)") {
		t.Errorf("stderr:\n%s", testTail(bp.stderr.String(), 5))
	}
	jp.sh.close(t)
}

var progressLineRE = regexp.MustCompile(`foo (\d+)/(\d+) (\d+)% \S+/s (.*)$`)

// The ETA test: 4,000 Poolctl::Sleep 10 jobs on 4 workers. The
// ETA progress shows at half-way is within ±30% of the time the queue
// then took to empty (LLEN 0).
func TestProgressETA(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	jp := e.startJobPool(t, srv, "eta", "  foo: 4\n")
	jp.requireQueueStats(t, "foo")
	jp.pause(t)
	jp.enqueuePaused(t, 4000, "foo", "Poolctl::Sleep", "10")
	bp := e.startProgress(t, "--name", "eta")
	bp.waitFor(t, "the mark", "foo 0/4000")
	jp.resume(t)
	started := time.Now()
	var emptied time.Time
	waitFor(t, 2*time.Minute, "the queue to empty", func() bool {
		if jp.depth(t, "foo") == 0 {
			emptied = time.Now()
			return true
		}
		return false
	})
	if code := bp.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("progress exit %d\n%s", code, testTail(bp.stderr.String(), 5))
	}
	var half *timedLine
	var halfDone int
	var figures []string
	for _, l := range bp.stderr.snapshot() {
		m := progressLineRE.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		figures = append(figures, fmt.Sprintf("+%.1fs %s", l.at.Sub(started).Seconds(), l.text))
		if pct, _ := strconv.Atoi(m[3]); pct >= 50 && half == nil {
			half = &l
			halfDone, _ = strconv.Atoi(m[1])
		}
	}
	if half == nil {
		t.Fatalf("no half-way line:\n%s", bp.stderr.String())
	}
	m := regexp.MustCompile(`ETA (\S+)`).FindStringSubmatch(half.text)
	actual := emptied.Sub(half.at)
	t.Logf("half-way (%d done) at +%.1fs: %q; the queue emptied %.2fs later (%.1fs after resuming)",
		halfDone, half.at.Sub(started).Seconds(), half.text, actual.Seconds(), emptied.Sub(started).Seconds())
	if m == nil {
		t.Fatalf("no ETA at half-way: %q\nall lines:\n%s", half.text, strings.Join(figures, "\n"))
	}
	eta, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("ETA %q: %v", m[1], err)
	}
	if off := math.Abs(eta.Seconds()-actual.Seconds()) / actual.Seconds(); off > 0.30 {
		t.Errorf("ETA %s at half-way, the queue took %.2fs: off by %.0f%% (more than 30%%)\nall lines:\n%s",
			eta, actual.Seconds(), off*100, strings.Join(figures, "\n"))
	}
	jp.sh.close(t)
}

// A reader that goes away early stops progress at once (the batch and
// the pool run on): | head -1 on its display, and a standard output
// whose reader exits.
func TestProgressEarlyClose(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	const name = "early"
	jp := e.startJobPool(t, srv, name, "  foo: 2\n")
	jp.pause(t)
	jp.enqueuePaused(t, 100, "foo", "Poolctl::Sleep", "1")
	master := readPid(jp.paths.Pid)
	for _, tc := range []struct {
		cmdline string
		want    string // on stderr, "" = not checked (stderr is the closed pipe)
	}{
		{`poolctl progress --name ` + name + ` 2>&1 | head -1`, ""},
		{`poolctl progress --name ` + name + ` | true`, "poolctl: progress: standard output closed"},
	} {
		start := time.Now()
		r := e.pipeline(t, name, tc.cmdline)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: took %s", tc.cmdline, took)
		}
		if len(r.status) != 2 || r.status[0] == 0 {
			t.Errorf("%s: exit statuses %v, want progress's non-zero\nstdout %q\nstderr %q", tc.cmdline, r.status, r.stdout, r.stderr)
		}
		if tc.want != "" && !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: stderr %q lacks %q", tc.cmdline, r.stderr, tc.want)
		}
		if strings.Contains(tc.cmdline, "head -1") && !strings.HasPrefix(r.stdout, "progress ") {
			t.Errorf("%s: stdout %q", tc.cmdline, r.stdout)
		}
		if !alive(master) || jp.depth(t, "foo") != 100 {
			t.Fatalf("%s: the pool or its batch did not survive (master alive %v, depth %d)", tc.cmdline, alive(master), jp.depth(t, "foo"))
		}
	}
	jp.resume(t)
	jp.sh.close(t)
}

// In a script, progress is how one waits for a batch: the script goes on
// after the queues drained and exits 0, or 1 when jobs of the batch
// failed or the batch did not drain in time; the summary is on standard
// output.
func TestProgressInScript(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	env := "REDIS_URL=" + srv.URL()

	r := e.pipeline(t, "script1", `poolctl enqueue -q -n 2000 foo Poolctl::Sleep 10 && printf 'progress --json\nstatus --json\n' | poolctl foo=4`, env)
	if fmt.Sprint(r.status) != "[0 0]" {
		t.Fatalf("exit statuses %v\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
	}
	if srv.Client().Exists(context.Background(), "resque:poolctl:stats:foo").Val() == 0 {
		t.Skip("the built-in worker does not record per-queue stats yet (issue 12 §2)")
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout, want the summary then the status:\n%s", r.stdout)
	}
	m := summaryOf(t, lines[0]+"\n")
	if m["drained"] != true || num(m, "failed") != 0 || num(m, "total") != num(m, "done") {
		t.Errorf("summary %s", lines[0])
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &st); err != nil || st["queues"].(map[string]any)["foo"] != 0.0 {
		t.Errorf("the status after progress shows jobs left: %v %s", err, lines[1])
	}
	if !strings.Contains(r.stderr, "progress ") || !strings.Contains(r.stderr, "drained") {
		t.Errorf("stderr lacks progress lines:\n%s", r.stderr)
	}

	r = e.pipeline(t, "script2", `poolctl enqueue -q -n 1000 foo Poolctl::Sleep 10 && poolctl enqueue -q -n 7 foo Poolctl::Fail boom && printf 'progress\nprogress nope\n' | poolctl foo=4`, env)
	if fmt.Sprint(r.status) != "[0 1]" {
		t.Errorf("exit statuses %v, want the script's 1\nstderr:\n%s", r.status, r.stderr)
	}
	errs := errorLines(r.stderr)
	if !strings.Contains(errs, "poolctl: line 1: progress: 7 of the batch's ") || !strings.Contains(r.stdout, ", 7 failed,") ||
		!strings.Contains(errs, `poolctl: line 2: progress: queue "nope" is not among the pool's queues (it serves: foo)`) {
		t.Errorf("stdout:\n%s\nerrors:\n%s", r.stdout, errs)
	}

	r = e.pipeline(t, "script3", `poolctl enqueue -q -n 100 foo Poolctl::Sleep 1000 && printf 'progress --timeout 2.5\nstatus --json\n' | poolctl foo=1`, env)
	if fmt.Sprint(r.status) != "[0 1]" || !strings.Contains(errorLines(r.stderr), "poolctl: line 1: progress: timed out after 2.5s: foo ") {
		t.Errorf("timeout: exit statuses %v\nstderr:\n%s", r.status, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "batch not drained in ") || !strings.Contains(r.stdout, `"name":"script3"`) {
		t.Errorf("timeout: stdout, want the summary so far, then the status (the script went on):\n%s", r.stdout)
	}
}

// At a terminal the bars are redrawn in place, with the terminal in
// cooked mode; Ctrl-C stops watching and gives the prompt back, the batch
// and the pool running on; the terminal is as it was when the shell
// leaves.
func TestProgressPTY(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	const name = "ptyprog"
	e.reap(name)
	sh := e.startPTY(t, "-c", jobConfig(t, srv, "  foo: 2\n"), "--name", name)
	before := termiosOf(t, sh.tty)
	sh.expect("started manager", 30*time.Second)
	sh.expect(">> ", 10*time.Second)
	jp := e.jobPoolOf(t, srv, name)
	sh.typeSlowly("kill! USR2\r")
	jp.waitPaused(t)
	sh.expect(">> ", 10*time.Second)
	jp.enqueuePaused(t, 100, "foo", "Poolctl::Sleep", "1")

	sh.typeSlowly("batch\r")
	sh.expect("foo [", 10*time.Second)
	sh.expect("0/100 0% 0/s", 10*time.Second)
	sh.expect("\x1b[2A", 10*time.Second) // back over the bar and its footer: redrawn in place
	sh.expect("stalled", 10*time.Second)
	waitFor(t, 15*time.Second, "cooked mode during progress", func() bool {
		return termiosOf(t, sh.tty).Lflag&unix.ISIG != 0
	})
	sh.typeSlowly("\x03")
	sh.expect("stopped watching at 0 of 100 jobs; the batch runs on in the pool", 10*time.Second)
	sh.expect(">> ", 10*time.Second)
	if master := readPid(jp.paths.Pid); !alive(master) || jp.depth(t, "foo") != 100 {
		t.Fatalf("Ctrl-C reached the pool: master alive %v, depth %d", alive(master), jp.depth(t, "foo"))
	}

	sh.typeSlowly("kill! CONT\r")
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("progress\r")
	sh.expect("batch drained in ", 30*time.Second)
	sh.expect(">> ", 10*time.Second)
	sh.typeSlowly("exit\r")
	sh.expect("manager stopped", 30*time.Second)
	if err := sh.waitExit(); err != nil {
		t.Errorf("shell exit: %v", err)
	}
	if after := termiosOf(t, sh.tty); before != after {
		t.Errorf("terminal state not restored:\nbefore %+v\nafter  %+v", before, after)
	}
}

// A Redis that stalls mid-batch (SIGSTOP) gives samples without fresh
// figures: progress says so and does not call the batch over on them;
// once Redis is back the batch drains and the summary is whole.
func TestProgressRedisStall(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	jp := e.startJobPool(t, srv, "stall", "  foo: 2\n")
	jp.requireQueueStats(t, "foo")
	jp.pause(t)
	jp.enqueuePaused(t, 200, "foo", "Poolctl::Sleep", "1")
	bp := e.startProgress(t, "--name", "stall", "--json")
	bp.waitFor(t, "the mark", "foo 0/200 0%")
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = srv.Thaw()
		}
	}()
	bp.waitFor(t, "the Redis error", "(figures as last read)")
	select {
	case <-bp.done:
		t.Fatalf("progress ended while Redis was stalled:\n%s", bp.stderr.String())
	default:
	}
	if err := srv.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	jp.resume(t)
	if code := bp.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("progress exit %d\n%s", code, testTail(bp.stderr.String(), 5))
	}
	m := summaryOf(t, bp.stdout.String())
	if num(m, "total") != 200 || num(m, "done") != 200 || m["drained"] != true {
		t.Errorf("summary %s", bp.stdout.String())
	}
	jp.sh.close(t)
}
