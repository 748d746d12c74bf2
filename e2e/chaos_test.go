package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/procid"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool/poolfs"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/queue"
)

// envInt reads a positive integer knob from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type lockedBuffer = testutil.Buffer

// TestChaos drains jobs through a pool while it is attacked: random worker
// SIGKILLs, config changes through the shell, HUP with changed counts, a
// SIGKILLed master replaced by a new one, and a Redis restart. Every job
// must complete at least once, and nothing may be left behind.
//
// CHAOS_JOBS (default 2000) and CHAOS_SEED (default: time) tune it;
// `make chaos` runs a long version.
func TestChaos(t *testing.T) {
	jobs := envInt("CHAOS_JOBS", 2000)
	seed := int64(envInt("CHAOS_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("chaos: %d jobs, seed %d (rerun with CHAOS_SEED=%d)", jobs, seed, seed)
	rng := rand.New(rand.NewSource(seed))

	srv := redistest.Start(t, redistest.WithPersistence())
	rdb := srv.Client()
	dir := t.TempDir()
	runtime := filepath.Join(dir, "run")
	done := filepath.Join(dir, "done")
	marker := "chaos-job-" + strconv.FormatInt(seed, 10)
	cfgPath := filepath.Join(dir, "chaos.yml")
	cfg := fmt.Sprintf(`workers: {chaos: 4, "other,chaos": 2}
start_secs: 0.2
backoff_max: 1s
start_retries: 100
term_timeout: 3s
jobs:
  Record: ["sh", "-c", "sleep 0.00$(( $$ %% 9 + 1 )); printf '%%s\n' \"$POOLCTL_ARGS\" >> %s", "%s"]
`, done, marker)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// The shell drives the pool; we feed it commands over time.
	shell := exec.Command(binary, "-c", cfgPath, "--name", "chaos", "--redis", srv.URL(), "--no-prompt")
	shell.Env = append(os.Environ(), "POOLCTL_RUNTIME_DIR="+runtime, "REDIS_URL=")
	stdin, err := shell.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut lockedBuffer
	shell.Stdout, shell.Stderr = &out, &errOut
	shell.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	shellDone := make(chan struct{})
	go func() { _ = shell.Wait(); close(shellDone) }()
	paths := poolfs.PathsFor(runtime, "chaos")
	logText := func() string { b, _ := os.ReadFile(paths.Log); return string(b) }
	var masters []int
	t.Cleanup(func() {
		for _, pid := range masters {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-shellDone:
		default:
			_ = shell.Process.Kill()
			<-shellDone
		}
		if t.Failed() {
			t.Logf("shell stdout:\n%s\nshell stderr:\n%s\npool log (tail):\n%s", tail(out.String(), 3000), tail(errOut.String(), 3000), tail(logText(), 6000))
		}
	})
	send := func(line string) {
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatalf("write to shell: %v", err)
		}
	}
	state := func() *poolfs.State {
		s, err := poolfs.ReadState(paths.State)
		if err != nil {
			return &poolfs.State{}
		}
		return s
	}
	testutil.Eventually(t, 20*time.Second, "the pool to start", func() bool { s := state(); return s.PID > 0 && len(s.Workers) == 6 })
	masters = append(masters, state().PID)

	payloads := make([][]byte, jobs)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"class":"Record","args":[%d]}`, i))
	}
	q := queue.New(rdb, "")
	if err := q.Enqueue(bg, "chaos", payloads...); err != nil {
		t.Fatal(err)
	}

	completed := func() int {
		f, err := os.Open(done)
		if err != nil {
			return 0
		}
		defer f.Close()
		n := 0
		for sc := bufio.NewScanner(f); sc.Scan(); {
			n++
		}
		return n
	}
	type fault struct {
		at   float64 // fraction of jobs completed
		name string
		do   func()
	}
	workerKills := 0
	killedPIDs := map[int]time.Time{}
	var masterKilledAt time.Time
	inFlightAtMasterKill := 0
	faults := []fault{
		{0.10, "config through the shell", func() { send("config chaos=6 other,chaos=1") }},
		{0.25, "edit the config file, HUP the master", func() {
			// The master runs from the user's file (the shell's counts
			// on top in overrides.spec): a HUP re-reads it.
			b, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			changed := strings.Replace(string(b), `"other,chaos": 2}`, `"other,chaos": 2, "third,chaos": 1}`, 1)
			if changed == string(b) {
				t.Fatalf("config file does not hold the workers line:\n%s", b)
			}
			if err := os.WriteFile(cfgPath, []byte(changed), 0o600); err != nil {
				t.Fatal(err)
			}
			_ = syscall.Kill(state().PID, syscall.SIGHUP)
			testutil.Eventually(t, 15*time.Second, "the master to run the edited file", func() bool {
				return strings.Contains(state().Spec, "third,chaos=1")
			})
		}},
		{0.40, "SIGKILL the master, start a new one", func() {
			s := state()
			inFlightAtMasterKill = len(s.Workers)
			masterKilledAt = time.Now()
			_ = syscall.Kill(s.PID, syscall.SIGKILL)
			testutil.Eventually(t, 15*time.Second, "the old master's workers to die", func() bool {
				for _, w := range s.Workers {
					if procid.Alive(w.PID, w.Identity) {
						return false
					}
				}
				return !poolfs.MasterAlive(paths)
			})
			send("start")
			testutil.Eventually(t, 20*time.Second, "a new master", func() bool {
				n := state()
				return n.PID != 0 && n.PID != s.PID && poolfs.MasterAlive(paths)
			})
			masters = append(masters, state().PID)
		}},
		{0.60, "restart redis-server", func() {
			srv.Stop()
			testutil.Eventually(t, 15*time.Second, "the workers to notice Redis is down", func() bool {
				return strings.Contains(logText(), "Redis unavailable")
			})
			srv.Restart()
		}},
		{0.70, "stall redis-server longer than the clients' timeout", func() {
			if err := srv.Freeze(); err != nil {
				t.Fatal(err)
			}
			// go-redis's read timeout is 3 s: replies to commands sent
			// now are lost, though Redis runs them when it resumes.
			time.Sleep(4 * time.Second)
			if err := srv.Thaw(); err != nil {
				t.Fatal(err)
			}
		}},
		{0.80, "config through the shell again", func() { send("config chaos=5") }},
		{0.85, "restart redis-server empty, then enqueue again what had not run", func() {
			srv.RestartEmpty()
			// The queue and in-flight lists are gone with the data. Jobs
			// still running finish (their acks find nothing to remove);
			// once no job process runs and nothing has completed for 3 s,
			// the pool is idle. (It was 1 s of no completions alone: a
			// worker whose reserved batch outlived the restart, descheduled
			// or reconnecting for a second on a loaded host, then ran jobs
			// the test had already enqueued again, as extra duplicates.)
			last, since := completed(), time.Now()
			testutil.Eventually(t, 60*time.Second, "the pool to go idle after the empty restart", func() bool {
				if n := completed(); n != last || len(processesMentioning(marker)) > 0 {
					last, since = n, time.Now()
				}
				return time.Since(since) > 3*time.Second
			})
			b, _ := os.ReadFile(done)
			ran := map[string]bool{}
			for _, line := range strings.Fields(string(b)) {
				ran[line] = true
			}
			var again [][]byte
			for i := 0; i < jobs; i++ {
				if !ran["["+strconv.Itoa(i)+"]"] {
					again = append(again, payloads[i])
				}
			}
			t.Logf("%d jobs enqueued again after the empty restart", len(again))
			if len(again) > 0 {
				if err := q.Enqueue(bg, "chaos", again...); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}

	deadline := time.Now().Add(time.Duration(jobs/20+120) * time.Second)
	next := 0
	for {
		n := completed()
		if n >= jobs && rdb.LLen(bg, "resque:queue:chaos").Val() == 0 && len(rdb.Keys(bg, "resque:poolctl:inflight:*").Val()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained in time: %d of %d completions", n, jobs)
		}
		for next < len(faults) && float64(n) >= faults[next].at*float64(jobs) {
			t.Logf("fault at %d/%d: %s", n, jobs, faults[next].name)
			faults[next].do()
			next++
		}
		time.Sleep(time.Duration(50+rng.Intn(200)) * time.Millisecond)
		if ws := state().Workers; len(ws) > 0 && rng.Intn(3) == 0 {
			w := ws[rng.Intn(len(ws))]
			if w.State != poolfs.WorkerStopping && killWorker(w) {
				workerKills++
				killedPIDs[w.PID] = time.Now()
			}
		}
	}
	if next < len(faults) {
		t.Errorf("only %d of %d faults were injected before the queue drained", next, len(faults))
	}
	final := state()
	send("exit")
	_ = stdin.Close()
	select {
	case <-shellDone:
	case <-time.After(30 * time.Second):
		t.Fatal("shell did not exit")
	}

	// Every job completed at least once; duplicates come from kills.
	b, _ := os.ReadFile(done)
	seen := map[string]int{}
	for _, line := range strings.Fields(string(b)) {
		seen[line]++
	}
	lost, dups := 0, 0
	for i := 0; i < jobs; i++ {
		switch c := seen["["+strconv.Itoa(i)+"]"]; {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	t.Logf("chaos: %d jobs, %d worker SIGKILLs, 1 master SIGKILL, 1 Redis restart, 1 stall, 1 empty restart, %d lost, %d duplicates", jobs, workerKills, lost, dups)
	if lost > 0 {
		t.Errorf("%d jobs lost", lost)
		for i := 0; i < jobs; i++ {
			if seen["["+strconv.Itoa(i)+"]"] == 0 {
				t.Logf("lost job %d; failure records: %v; queue keys: %v", i,
					rdb.LRange(bg, "resque:failed", 0, -1).Val(), rdb.Keys(bg, "resque:*queue*").Val())
			}
		}
	}
	if limit := workerKills + inFlightAtMasterKill; dups > limit {
		t.Errorf("%d duplicates, more than the %d runs interrupted by kills", dups, limit)
	}

	// Nothing left behind: processes, zombies, registrations.
	for _, pid := range masters {
		if procid.Alive(pid, "") {
			t.Errorf("master %d still running", pid)
		}
	}
	for _, w := range final.Workers {
		if procid.Alive(w.PID, w.Identity) {
			t.Errorf("worker %d still running", w.PID)
		}
	}
	if left := processesMentioning(marker); len(left) > 0 {
		t.Errorf("job processes left behind: %v", left)
	}
	if ids := registered(rdb); len(ids) != 0 {
		t.Errorf("stale worker registrations: %v", ids)
	}
	if keys := rdb.Keys(bg, "resque:worker:*").Val(); len(keys) != 0 {
		t.Errorf("stale worker keys: %v", keys)
	}

	// The log names the faults it saw.
	log := logText()
	for pid, at := range killedPIDs {
		if at.Before(masterKilledAt) && masterKilledAt.Sub(at) < 2*time.Second {
			continue // its master may have died before logging the reap
		}
		if !strings.Contains(log, fmt.Sprintf("Reaped worker[%d] (status: ", pid)) {
			t.Errorf("worker %d was SIGKILLed but the log has no reap line for it", pid)
		}
	}
	reaped := strings.Count(log, "(status: signal KILL)")
	if reaped == 0 {
		t.Error("the log records no worker killed by SIGKILL")
	}
	if strings.Count(log, "started manager") < 2 {
		t.Error("the log does not show the replacement master starting")
	}
	if !strings.Contains(log, "reloaded configuration") {
		t.Error("the log does not show the configuration changes")
	}
}

// processesMentioning lists pids whose command line contains s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
