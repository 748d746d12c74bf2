package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
)

// recyclePool starts a master by hand over a private Redis with a fast
// sampler, the config's top level extended by top.
func recyclePool(t *testing.T, name, top, workers string) (poolfs.Paths, *queue.Client, *shellEnv) {
	t.Helper()
	srv := redistest.Start(t)
	e := newShellEnv(t)
	e.reap(name)
	cfg := filepath.Join(t.TempDir(), "pool.yml")
	body := "redis: " + srv.URL() + "\nsample_interval: 200ms\nstalled_after: 1s\n" + top + "workers:\n" + workers
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.paths(name)
	e.startMaster(t, "-c", cfg, "--name", name, "--log", p.Log)
	waitFor(t, 20*time.Second, "workers running", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Settled() && len(st.Workers) > 0
	})
	return p, queue.New(srv.Client(), ""), e
}

func recycleState(t *testing.T, p poolfs.Paths) *poolfs.State {
	t.Helper()
	st, err := poolfs.ReadState(p.State)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func recycleGroup(st *poolfs.State, q string) *poolfs.GroupState {
	for i := range st.Groups {
		if st.Groups[i].Queues == q {
			return &st.Groups[i]
		}
	}
	return nil
}

func recycleLog(t *testing.T, p poolfs.Paths) string {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// max_jobs: 10 on two built-in workers running 50 fast jobs (issue 15's
// own figures): every job runs once, the workers are replaced at least
// 4 times, and the group never backs off, although every worker exits
// well within start_secs. (At least 4: the two workers alive at the end
// hold at most 9 jobs each, so workers that reached 10 ran at least 32.
// With 23 jobs and max_jobs 5 the same count only guaranteed 3, and a
// test asking for 4 failed when the jobs split unevenly.)
func TestRecycleMaxJobsBuiltin(t *testing.T) {
	dir := t.TempDir()
	marks := filepath.Join(dir, "marks")
	top := fmt.Sprintf("start_secs: 5s\njobs:\n  Mark: [sh, -c, 'echo \"$POOLCTL_ARGS\" >> %s']\n", marks)
	p, q, e := recyclePool(t, "recyclejobs", top, "  \"rec:q/ü\":\n    count: 2\n    max_jobs: 10\n")
	first := map[int]bool{}
	for _, w := range recycleState(t, p).Workers {
		first[w.PID] = true
	}
	payloads := make([][]byte, 50)
	for i := range payloads {
		b, err := queue.EncodePayload("Mark", []any{i})
		if err != nil {
			t.Fatal(err)
		}
		payloads[i] = b
	}
	if err := q.Enqueue(context.Background(), "rec:q/ü", payloads...); err != nil {
		t.Fatal(err)
	}
	backedOff := ""
	waitFor(t, 30*time.Second, "50 jobs done", func() bool {
		st, err := poolfs.ReadState(p.State)
		if err == nil {
			if g := recycleGroup(st, "rec:q/ü"); g != nil && (g.State != poolfs.GroupOK || g.Failures > 0) && backedOff == "" {
				backedOff = fmt.Sprintf("%+v", *g)
			}
		}
		b, _ := os.ReadFile(marks)
		return strings.Count(string(b), "\n") >= 50
	})
	if backedOff != "" {
		t.Errorf("the group backed off: %s", backedOff)
	}
	b, _ := os.ReadFile(marks)
	lines := strings.Fields(string(b))
	sort.Strings(lines)
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Errorf("job %s ran twice", l)
		}
		seen[l] = true
	}
	if len(seen) != 50 {
		t.Errorf("%d distinct jobs ran, want 50: %v", len(seen), lines)
	}
	var st *poolfs.State
	// Each worker that reached max_jobs says so, and the master counts
	// each such exit as a recycle.
	waitFor(t, 30*time.Second, "≥ 4 jobs recycles, one per worker that said so, and the group settled", func() bool {
		st = recycleState(t, p)
		g := recycleGroup(st, "rec:q/ü")
		said := strings.Count(recycleLog(t, p), "recycling after 10 jobs")
		return g != nil && said >= 4 && g.Recycled["jobs"] == said && st.Settled()
	})
	g := recycleGroup(st, "rec:q/ü")
	if g.Failures != 0 || g.Restarts != 0 || g.State != poolfs.GroupOK {
		t.Errorf("group after recycling: %+v, want no failures or restarts", *g)
	}
	// The first worker to reach max_jobs is of the first generation (the
	// replacements start after it): both cannot still run. (One of them
	// may, when the other's line did most of the work.)
	still := 0
	for _, w := range st.Workers {
		if first[w.PID] {
			still++
		}
	}
	if still == 2 {
		t.Errorf("both workers of the first generation still run: %+v", st.Workers)
	}
	log := recycleLog(t, p)
	if !strings.Contains(log, "recycling after 10 jobs") {
		t.Errorf("no worker logged recycling after 10 jobs:\n%s", log)
	}
	if strings.Contains(log, "failed start") {
		t.Errorf("a recycle was taken for a failed start:\n%s", log)
	}
	// The shell's status shows the counts.
	r := e.run("status --json\nstatus\n", "attach", "recyclejobs")
	if !regexp.MustCompile(`"recycled": ?\{"jobs": ?\d+\}`).MatchString(r.stdout) || !regexp.MustCompile(`rec:q/ü recycled: jobs \d+`).MatchString(r.stdout) {
		t.Errorf("status does not show the recycles:\n%s\n%s", r.stdout, r.stderr)
	}
}

// A command worker whose tree grows past max_rss is recycled within a few
// samples, once, and replaced.
func TestRecycleMaxRSSCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "grow.sh")
	// The first worker holds 60 MB in a shell variable; its successors
	// stay small.
	body := fmt.Sprintf("if mkdir %s/grown 2>/dev/null; then x=$(head -c 60000000 /dev/zero | tr '\\0' a); sleep 600; else exec sleep 600; fi\n", dir)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	p, _, _ := recyclePool(t, "recyclerss", "start_secs: 100ms\nterm_timeout: 2s\n",
		fmt.Sprintf("  mem:\n    count: 1\n    command: [sh, %s]\n    max_rss: 30MB\n", script))
	old := recycleState(t, p).Workers[0].PID
	var st *poolfs.State
	waitFor(t, 20*time.Second, "one rss recycle and a replacement", func() bool {
		st = recycleState(t, p)
		g := recycleGroup(st, "mem")
		return g.Recycled["rss"] == 1 && st.Settled() && len(st.Workers) == 1 && st.Workers[0].PID != old
	})
	log := recycleLog(t, p)
	re := regexp.MustCompile(fmt.Sprintf(`recycling worker\[%d\] \(mem\): rss \d+MB > max_rss 30MB`, old))
	if !re.MatchString(log) {
		t.Errorf("no rss recycle of worker %d logged:\n%s", old, log)
	}
	// Its successor stays small: no second recycle.
	time.Sleep(time.Second)
	if g := recycleGroup(recycleState(t, p), "mem"); g.Recycled["rss"] != 1 || len(g.Recycled) != 1 {
		t.Errorf("recycled = %v, want {rss: 1}", g.Recycled)
	}
}

// max_lifetime: 2s recycles an idle built-in worker after about 2 s.
func TestRecycleMaxLifetime(t *testing.T) {
	p, _, _ := recyclePool(t, "recyclelife", "start_secs: 100ms\n", "  life:\n    count: 1\n    max_lifetime: 2s\n")
	w0 := recycleState(t, p).Workers[0]
	var st *poolfs.State
	waitFor(t, 15*time.Second, "a lifetime recycle", func() bool {
		st = recycleState(t, p)
		return recycleGroup(st, "life").Recycled["lifetime"] >= 1
	})
	age := time.Since(w0.StartedAt)
	if age < 2*time.Second || age > 6*time.Second {
		t.Errorf("recycled %s after start, want about 2s", age)
	}
	log := recycleLog(t, p)
	// The lifetime the recycler saw: past max_lifetime, and within the
	// same 6 s as the age above. (It was held to 2.x s: the first 200 ms
	// sample past 2 s, unless a loaded host delays samples by more than
	// 0.8 s, which says nothing about the recycler.)
	re := regexp.MustCompile(fmt.Sprintf(`recycling worker\[%d\] \(life\): lifetime (\d+(?:\.\d)?)s > max_lifetime 2s`, w0.PID))
	if m := re.FindStringSubmatch(log); m == nil {
		t.Errorf("no lifetime recycle of worker %d logged:\n%s", w0.PID, log)
	} else if life, _ := strconv.ParseFloat(m[1], 64); life < 2 || life >= 6 {
		t.Errorf("worker %d recycled at a lifetime of %ss, want about 2s:\n%s", w0.PID, m[1], log)
	}
	waitFor(t, 10*time.Second, "a replacement", func() bool {
		st = recycleState(t, p)
		return st.Settled() && len(st.Workers) == 1 && st.Workers[0].PID != w0.PID
	})
}

// A recycled worker that ignores QUIT gets TERM after term_timeout, and
// one that ignores TERM too gets KILL after term_timeout more.
func TestRecycleLadder(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "deaf.sh")
	if err := os.WriteFile(script, []byte("trap '' QUIT TERM\nexec sleep 600\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	// max_lifetime leaves sh 3 s to set its trap before the QUIT: on a
	// loaded host 1 s was the only thing between this test and a worker
	// killed by the first rung.
	p, _, _ := recyclePool(t, "recycleladder", "start_secs: 100ms\nterm_timeout: 700ms\n",
		fmt.Sprintf("  deaf:\n    count: 1\n    command: [sh, %s]\n    max_lifetime: 3s\n", script))
	pid := recycleState(t, p).Workers[0].PID
	steps := []string{
		fmt.Sprintf("recycling worker[%d] (deaf): lifetime", pid),
		fmt.Sprintf("worker[%d] still running 700ms after QUIT: sending TERM", pid),
		fmt.Sprintf("worker[%d] still running TERM after 700ms: sending KILL", pid),
		fmt.Sprintf("Reaped worker[%d] (status: signal KILL", pid),
	}
	waitFor(t, 15*time.Second, "the worker killed", func() bool {
		return strings.Contains(recycleLog(t, p), steps[3])
	})
	log := recycleLog(t, p)
	at := -1
	for _, s := range steps {
		i := strings.Index(log, s)
		if i < 0 || i < at {
			t.Fatalf("log lacks %q after the previous step:\n%s", s, log)
		}
		at = i
	}
}
