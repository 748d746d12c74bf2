package stats

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/redisconn"
)

// samplerFor returns a sampler over a real redis-server that the test
// drives by hand (sampleOnce at chosen times), publishing to a file.
func samplerFor(t testing.TB, groups ...string) (*Sampler, *queue.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	// Opened as the master opens it (context deadlines honoured, no
	// retries of its own).
	rdb, err := redisconn.Open(srv.URL(), redisconn.Options{PoolSize: 1, NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	q := queue.New(rdb, "")
	s := NewSampler(SamplerOptions{Pool: "p", Queue: q, Host: "h", Path: filepath.Join(t.TempDir(), "sample.json"), StalledAfter: 3 * time.Second})
	st := &poolfs.State{}
	for _, g := range groups {
		st.Groups = append(st.Groups, poolfs.GroupState{Queues: g, Desired: 1})
	}
	s.Observe(st)
	return s, q, srv
}

func payloads(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(`{"class":"Same","args":[]}`) // byte-identical on purpose
	}
	return out
}

func queueOf(t *testing.T, s *Sample, name string) QueueSample {
	t.Helper()
	for _, q := range s.Queues {
		if q.Name == name {
			return q
		}
	}
	t.Fatalf("queue %q not in sample %+v", name, s.Queues)
	return QueueSample{}
}

// Queue names that defeat naive key handling, a glob that picks up a new
// queue one sample late, depth from LLEN, and the sample file matching
// what Latest returns.
func TestSamplerReadsQueuesAndExpandsGlobs(t *testing.T) {
	odd := "reports:eu/west-ünï"
	s, q, _ := samplerFor(t, odd+",mail*")
	ctx := context.Background()
	if err := q.Enqueue(ctx, odd, payloads(7)...); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, "mail:bulk", payloads(3)...); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(2000, 0)
	s.sampleOnce(now)
	if _, err := os.Stat(s.opts.Path); !os.IsNotExist(err) {
		t.Fatalf("the sample was published before anyone asked for it: %v", err)
	}
	Want(s.opts.Path)
	s.sampleOnce(now.Add(time.Second))
	smp, _ := s.Latest()
	if got := queueOf(t, smp, odd).Depth; got != 7 {
		t.Errorf("depth of %q = %d, want 7", odd, got)
	}
	if got := queueOf(t, smp, "mail:bulk").Depth; got != 3 {
		t.Errorf("glob mail* did not expand to mail:bulk with depth 3: %d", got)
	}
	file, err := ReadFile(s.opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !file.TS.Equal(smp.TS) || len(file.Queues) != 2 || len(file.History[odd]) != 2 {
		t.Errorf("published sample differs from the latest: %+v", file)
	}
}

// Counters, rates, percentiles and states follow what the workers'
// stats hashes say, through a drain, a stall and a Redis restart that
// loses everything.
func TestSamplerRatesStatesAndRedisLoss(t *testing.T) {
	s, q, srv := samplerFor(t, "q")
	ctx := context.Background()
	rdb := q.Redis()
	k := q.Keys()
	if err := q.Enqueue(ctx, "q", payloads(1000)...); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(3000, 0)
	s.sampleOnce(now)
	finish := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if err := rdb.LPop(ctx, k.Queue("q")).Err(); err != nil {
				t.Fatal(err)
			}
		}
		rdb.HIncrBy(ctx, k.Stats("q"), queue.StatProcessed, int64(n))
		rdb.HIncrBy(ctx, k.Stats("q"), queue.ClassField(queue.StatRunUS, "Same"), int64(n)*15000)
		rdb.HIncrBy(ctx, k.Stats("q"), queue.ClassField(queue.BucketField("run", queue.Bucket(15*time.Millisecond)), "Same"), int64(n))
	}
	for i := 0; i < 4; i++ {
		finish(100)
		now = now.Add(time.Second)
		s.sampleOnce(now)
	}
	smp, _ := s.Latest()
	qs := queueOf(t, smp, "q")
	if qs.State != QueueDraining || qs.ETASeconds == nil {
		t.Fatalf("state %s, want draining: %+v", qs.State, qs)
	}
	if *qs.ETASeconds < 4.5 || *qs.ETASeconds > 7.5 {
		t.Errorf("eta %.1fs, want about 6s (600 left at 100/s)", *qs.ETASeconds)
	}
	if qs.Processed != 400 || qs.OutRate < 99 || qs.OutRate > 101 {
		t.Errorf("processed %d out %.1f/s, want 400 and 100/s", qs.Processed, qs.OutRate)
	}
	if p := qs.JobSeconds.P50; p == nil || *p <= 0.010 || *p > 0.020 {
		t.Errorf("p50 %v, want within the 10-20 ms bucket", p)
	}
	if len(smp.Classes) != 1 || smp.Classes[0].Class != "Same" || smp.Classes[0].Timing.Count != 400 {
		t.Errorf("classes %+v", smp.Classes)
	}

	// Nothing finishes for stalled_after (3s): stalled.
	for i := 0; i < 4; i++ {
		now = now.Add(time.Second)
		s.sampleOnce(now)
	}
	smp, _ = s.Latest()
	if st := queueOf(t, smp, "q").State; st != QueueStalled {
		t.Fatalf("state %s after 4s without a finished job, want stalled", st)
	}

	// Redis restarts without its data: the queue reads empty, no
	// negative rates, no stale error.
	srv.RestartEmpty()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now = now.Add(time.Second)
		s.sampleOnce(now)
		smp, _ = s.Latest()
		if smp.RedisError == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	qs = queueOf(t, smp, "q")
	if smp.RedisError != "" || qs.State != QueueEmpty || qs.OutRate < 0 || qs.InRate < 0 {
		t.Fatalf("after an empty restart: err %q state %s in %v out %v", smp.RedisError, qs.State, qs.InRate, qs.OutRate)
	}
}

// A Redis that stalls longer than the read timeout yields a sample that
// says so, with the last known figures, and the sampler recovers.
func TestSamplerSurvivesRedisStall(t *testing.T) {
	s, q, srv := samplerFor(t, "q")
	if err := q.Enqueue(context.Background(), "q", payloads(5)...); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(4000, 0)
	s.sampleOnce(now)
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.sampleOnce(now.Add(time.Second))
	took := time.Since(start)
	if err := srv.Thaw(); err != nil {
		t.Fatal(err)
	}
	smp, _ := s.Latest()
	if smp.RedisError == "" || queueOf(t, smp, "q").Depth != 5 {
		t.Fatalf("a stalled Redis: error %q, depth %d; want an error and the last depth 5", smp.RedisError, queueOf(t, smp, "q").Depth)
	}
	if took > 3*time.Second {
		t.Errorf("a sample waited %s on a stalled Redis", took)
	}
	s.sampleOnce(now.Add(2 * time.Second))
	if smp, _ = s.Latest(); smp.RedisError != "" {
		t.Fatalf("still failing after the stall: %s", smp.RedisError)
	}
}

// Per-worker figures: a worker's process tree (a job process included)
// is measured, and its current job comes from Resque's worker record.
func TestSamplerMeasuresWorkerTrees(t *testing.T) {
	s, q, _ := samplerFor(t, "q")
	// A stand-in worker: a shell whose child burns CPU.
	cmd := exec.Command("sh", "-c", "sh -c 'while :; do :; done' & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group we created
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	id := queue.WorkerID("h", pid, []string{"q"})
	rec := fmt.Sprintf(`{"queue":"q","run_at":%q,"payload":{"class":"Burn","args":[]}}`, time.Now().UTC().Add(-3*time.Second).Format(time.RFC3339))
	if err := q.Redis().Set(context.Background(), q.Keys().Worker(id), rec, 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Observe(&poolfs.State{Groups: []poolfs.GroupState{{Queues: "q", Desired: 1}},
		Workers: []poolfs.WorkerState{{PID: pid, Queues: "q", State: "running", Builtin: true}}})
	var w WorkerSample
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s.sampleOnce(time.Now())
		smp, _ := s.Latest()
		w = smp.Workers[0]
		if w.Procs >= 2 && w.CPUPercent > 20 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if w.Procs < 2 || w.CPUPercent < 20 || w.RSSBytes == 0 {
		t.Fatalf("worker tree not measured: %+v", w)
	}
	if w.Job != "Burn" || w.JobQueue != "q" || w.JobSeconds < 2 {
		t.Fatalf("current job: %+v", w)
	}
	smp, _ := s.Latest()
	if qs := queueOf(t, smp, "q"); qs.InFlight != 1 {
		t.Fatalf("in flight %d, want 1", qs.InFlight)
	}
	if smp.Master.PID != os.Getpid() || smp.Master.RSSBytes == 0 {
		t.Fatalf("master figures: %+v", smp.Master)
	}
}
