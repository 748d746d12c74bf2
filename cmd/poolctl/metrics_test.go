package main

// End-to-end tests of the master's Prometheus endpoint (issue 12 §5):
// a real redis-server, a real master and real built-in workers.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// metricsConfig writes a config of built-in workers on redisURL with a
// fast sampler, plus extra lines.
func metricsConfig(t *testing.T, redisURL, workers, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pool.yml")
	data := fmt.Sprintf("workers:\n%sredis: %s\nsample_interval: 200ms\nstart_secs: 200ms\nterm_timeout: 5s\n%s", workers, redisURL, extra)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// metricsAddrOf waits for the master of pool name to publish its metrics
// address in state.json.
func (e *shellEnv) metricsAddrOf(t *testing.T, name string, pid int) string {
	t.Helper()
	var addr string
	waitFor(t, 30*time.Second, "the master to publish its metrics address", func() bool {
		st, err := poolfs.ReadState(e.paths(name).State)
		if err == nil && st.PID == pid {
			addr = st.Metrics
		}
		return addr != ""
	})
	return addr
}

// scrapeMetrics fetches and parses /metrics with the client library's
// text parser.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// gaugeOf returns the value of family name's series whose label has
// value, and whether there is one.
func gaugeOf(fams map[string]*dto.MetricFamily, name, label, value string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func healthz(addr string) (int, string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// The proof: /metrics parses with the client library's text
// parser and poolctl_queue_depth{queue="foo"} equals LLEN, for a queue
// whose name needs no care and for one that does.
func TestMasterMetricsQueueDepthIsLLEN(t *testing.T) {
	redis := redistest.Start(t)
	rdb := redis.Client()
	e := newShellEnv(t)
	// ASCII only: a built-in worker of a non-ASCII queue cannot set its
	// Redis client name yet (CLIENT SETNAME refuses it); the collector's
	// unit tests cover unicode names.
	const nasty = "mail:high/reports"
	cfg := metricsConfig(t, redis.URL(), "  foo: 1\n  \""+nasty+"\": 1\n", "")
	e.reap("mx")
	master, _ := e.startMaster(t, "-c", cfg, "--name", "mx", "--metrics", "127.0.0.1:0")
	addr := e.metricsAddrOf(t, "mx", master.Process.Pid)
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("state.json metrics = %q, want 127.0.0.1 and the real port", addr)
	}

	// Long jobs (Poolctl::Sleep takes ms): each worker takes one and the
	// rest wait.
	for q, n := range map[string]string{"foo": "12", nasty: "5"} {
		if r := e.run("", "enqueue", "--redis", redis.URL(), "-q", "-n", n, q, "Poolctl::Sleep", "600000"); r.code != 0 { // 10 minutes
			t.Fatalf("enqueue: %+v", r)
		}
	}
	ctx := context.Background()
	for q, want := range map[string]int64{"foo": 11, nasty: 4} {
		var llen int64
		var last string
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("queue %s: %s", q, last)
			}
		})
		waitFor(t, 30*time.Second, "poolctl_queue_depth{queue="+q+"} to equal LLEN once a worker took a job", func() bool {
			var err error
			if llen, err = rdb.LLen(ctx, "resque:queue:"+q).Result(); err != nil {
				t.Fatal(err)
			}
			fams := scrapeMetrics(t, addr)
			d, ok := gaugeOf(fams, "poolctl_queue_depth", "queue", q)
			last = fmt.Sprintf("LLEN %d, poolctl_queue_depth %v (%v), in flight %v", llen, d, ok, fams["poolctl_queue_in_flight"].GetMetric())
			return ok && llen == want && int64(d) == llen
		})
		fams := scrapeMetrics(t, addr)
		if v, _ := gaugeOf(fams, "poolctl_queue_in_flight", "queue", q); v != 1 {
			t.Errorf("in flight of %s = %g, want 1", q, v)
		}
		if v, _ := gaugeOf(fams, "poolctl_workers_live", "queues", q); v != 1 {
			t.Errorf("live workers of %s = %g, want 1", q, v)
		}
		if v, _ := gaugeOf(fams, "poolctl_spawns_total", "queues", q); v != 1 {
			t.Errorf("spawns of %s = %g, want 1", q, v)
		}
		if v, ok := gaugeOf(fams, "poolctl_worker_resident_memory_bytes", "queues", q); !ok || v < 1<<20 {
			t.Errorf("worker RSS of %s = %g", q, v)
		}
	}
	fams := scrapeMetrics(t, addr)
	if m := fams["process_start_time_seconds"].GetMetric(); len(m) != 1 {
		t.Errorf("no process collector")
	}

	// status shows where; status --json carries it.
	r := e.run("status\nstatus --json\n", "attach", "mx")
	if want := "metrics: http://" + addr + "/metrics\n"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("status lacks %q: exit %d\n%s\n%s", want, r.code, r.stdout, r.stderr)
	}
	if m := lastJSON(t, r.stdout); m["metrics"] != addr {
		t.Errorf("status --json metrics = %v, want %s", m["metrics"], addr)
	}
}

// Jobs that finish are counted per queue and timed per class, from the
// stats the workers record in Redis.
func TestMasterMetricsJobsAndTimings(t *testing.T) {
	redis := redistest.Start(t)
	rdb := redis.Client()
	ctx := context.Background()
	e := newShellEnv(t)
	cfg := metricsConfig(t, redis.URL(), "  done: 1\n", "")
	e.reap("mj")
	master, _ := e.startMaster(t, "-c", cfg, "--name", "mj", "--metrics", "127.0.0.1:0")
	addr := e.metricsAddrOf(t, "mj", master.Process.Pid)

	if r := e.run("", "enqueue", "--redis", redis.URL(), "-q", "-n", "5", "done", "Poolctl::Noop"); r.code != 0 {
		t.Fatalf("enqueue: %+v", r)
	}
	if r := e.run("", "enqueue", "--redis", redis.URL(), "-q", "-n", "2", "done", "Poolctl::Fail", "boom"); r.code != 0 {
		t.Fatalf("enqueue: %+v", r)
	}
	waitFor(t, 30*time.Second, "the jobs of done to finish", func() bool {
		n, err := rdb.LLen(ctx, "resque:queue:done").Result()
		return err == nil && n == 0 && rdb.LLen(ctx, "resque:failed").Val() == 2
	})
	if rdb.Exists(ctx, "resque:poolctl:stats:done").Val() == 0 {
		t.Skip("the built-in worker does not record per-queue stats yet (issue 12 §2)")
	}
	var fams map[string]*dto.MetricFamily
	waitFor(t, 30*time.Second, "poolctl_jobs_processed_total{queue=done} to reach 7", func() bool {
		fams = scrapeMetrics(t, addr)
		v, _ := gaugeOf(fams, "poolctl_jobs_processed_total", "queue", "done")
		return v == 7
	})
	if v, _ := gaugeOf(fams, "poolctl_jobs_failed_total", "queue", "done"); v != 2 {
		t.Errorf("failed of done = %g, want 2", v)
	}
	var noop *dto.Histogram
	for _, m := range fams["poolctl_job_duration_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "Poolctl::Noop" {
			noop = m.GetHistogram()
		}
	}
	if noop == nil || noop.GetSampleCount() != 5 || noop.GetBucket()[len(noop.GetBucket())-1].GetCumulativeCount() != 5 {
		t.Errorf("job duration of Poolctl::Noop: %v", noop)
	}
}

// A master whose metrics address is taken does not start, and says why;
// --metrics overrides the config's metrics:.
func TestMasterMetricsAddressTaken(t *testing.T) {
	redis := redistest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	e := newShellEnv(t)
	cfg := metricsConfig(t, redis.URL(), "  foo: 1\n", "")
	e.reap("mt")
	r := e.run("", "master", "-c", cfg, "--name", "mt", "--metrics", taken)
	if r.code == 0 || !strings.Contains(r.stderr, taken) || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("master on a taken metrics port: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if st, err := poolfs.ReadState(e.paths("mt").State); err == nil && len(st.Workers) > 0 {
		t.Errorf("workers started: %+v", st.Workers)
	}

	// The same from the config file...
	inCfg := metricsConfig(t, redis.URL(), "  foo: 1\n", "metrics: "+taken+"\n")
	r = e.run("", "master", "-c", inCfg, "--name", "mt")
	if r.code == 0 || !strings.Contains(r.stderr, taken) {
		t.Errorf("config metrics: on a taken port: exit %d\n%s", r.code, r.stderr)
	}
	// ...which --metrics overrides.
	master, _ := e.startMaster(t, "-c", inCfg, "--name", "mt", "--metrics", "127.0.0.1:0")
	if addr := e.metricsAddrOf(t, "mt", master.Process.Pid); addr == taken {
		t.Errorf("--metrics did not override the config: %s", addr)
	}
}

func TestMasterMetricsFlagUsage(t *testing.T) {
	e := newShellEnv(t)
	cfg := sleepConfig(t, "  foo: 1\n")
	for _, bad := range []string{"9187", "localhost", ":99999", "[::1"} {
		r := e.run("", "master", "-c", cfg, "--name", "mu", "--metrics", bad)
		if r.code != 2 || !strings.Contains(r.stderr, "--metrics") || !strings.Contains(r.stderr, bad) {
			t.Errorf("--metrics %q: exit %d\n%s", bad, r.code, r.stderr)
		}
		if poolfs.MasterAlive(e.paths("mu")) {
			t.Fatalf("a master started with --metrics %q", bad)
		}
	}
}

// /healthz is 200 while the master samples, 503 with the reason once the
// samples stop (the master is SIGSTOPped: a request queued meanwhile is
// answered as soon as it resumes, before its next sample), and 200 again.
func TestMasterHealthzGoesStaleWhenSamplesStop(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	cfg := metricsConfig(t, redis.URL(), "  foo: 1\n", "")
	e.reap("mh")
	master, _ := e.startMaster(t, "-c", cfg, "--name", "mh", "--metrics", "127.0.0.1:0")
	pid := master.Process.Pid
	addr := e.metricsAddrOf(t, "mh", pid)
	waitFor(t, 30*time.Second, "/healthz to say ok", func() bool {
		code, body, err := healthz(addr)
		return err == nil && code == 200 && body == "ok\n"
	})
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	// The sampler's tick and the queued request race when the master
	// resumes: the request nearly always wins; a few tries make sure.
	var code int
	var body string
	for try := 0; try < 5 && code != 503; try++ {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the master to stop", func() bool { return processState(pid) == 'T' })
		type answer struct {
			code int
			body string
			err  error
		}
		got := make(chan answer, 1)
		go func() {
			c, b, err := healthz(addr)
			got <- answer{c, b, err}
		}()
		// Let the latest sample age past 3 intervals (600 ms): this is
		// the time that must pass, not a synchronisation.
		time.Sleep(time.Second)
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		a := <-got
		if a.err != nil {
			t.Fatalf("GET /healthz across SIGSTOP: %v", a.err)
		}
		code, body = a.code, a.body
	}
	if code != 503 || !strings.Contains(body, "the sampler is stalled") {
		t.Errorf("/healthz after a stop: %d %q, want 503 and the reason", code, body)
	}
	waitFor(t, 10*time.Second, "/healthz to say ok again", func() bool {
		code, body, err := healthz(addr)
		return err == nil && code == 200 && body == "ok\n"
	})
}

// processState is pid's state letter in /proc (R, S, T, Z...), 0 if none.
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}
