package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/stats"
)

// fakeSource is a Source a test changes between scrapes.
type fakeSource struct {
	mu     sync.Mutex
	sample *stats.Sample
	state  *poolfs.State
}

func (f *fakeSource) Latest() (*stats.Sample, *poolfs.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sample, f.state
}

func (f *fakeSource) set(s *stats.Sample, st *poolfs.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sample, f.state = s, st
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ptr[T any](v T) *T { return &v }

// fixture is a pool with two queue lists (one backing off), three
// queues, two job classes and three workers.
func fixture(now time.Time) (*stats.Sample, *poolfs.State) {
	st := &poolfs.State{
		Name: "batch", PID: 100, Status: poolfs.MasterRunning,
		Groups: []poolfs.GroupState{
			{Queues: "foo", Desired: 2, Live: 2, State: poolfs.GroupOK, Spawns: 3, Restarts: 1,
				Recycle: &poolfs.RecycleSettings{MaxJobs: 10}, Recycled: map[string]int{"jobs": 4, "rss": 1}},
			{Queues: "bar,baz", Desired: 4, Live: 1, State: poolfs.GroupBackoff, Spawns: 9, Restarts: 7},
		},
		Workers: []poolfs.WorkerState{
			{PID: 201, Queues: "foo"}, {PID: 202, Queues: "foo"}, {PID: 203, Queues: "bar,baz"},
		},
	}
	timing := stats.Histogram{Count: 6, Sum: 4.5, Counts: make([]int64, queue.NumBuckets)}
	timing.Counts[0] = 1                  // <= 1ms
	timing.Counts[2] = 2                  // <= 5ms
	timing.Counts[9] = 1                  // <= 1s
	timing.Counts[len(queue.Buckets)] = 2 // > 1h
	s := &stats.Sample{
		TS: now, Pool: "batch", Interval: 1,
		Host: stats.HostSample{Load1: 1.5, Load5: 1.25, Load15: 0.75, CPUPercent: 37.5, CPUs: 2, MemFreeBytes: 1 << 30, MemTotal: 4 << 30},
		Queues: []stats.QueueSample{
			{Name: "foo", Depth: 120, InFlight: 2, Processed: 1000, Failed: 3, InRate: 4.5, OutRate: 6.25,
				State: stats.QueueDraining, ETASeconds: ptr(68.5), WaitSeconds: &stats.Wait{Seconds: 19.2, Estimated: true}},
			{Name: "bar", Depth: 0, InFlight: 0, Processed: 7, Failed: 0, State: stats.QueueEmpty},
			{Name: "baz", Depth: 5, InFlight: 1, Processed: 0, Failed: 0, InRate: 1, OutRate: 0, State: stats.QueueStalled},
		},
		Workers: []stats.WorkerSample{
			{PID: 201, Queues: "foo", CPUSeconds: 1.5, RSSBytes: 10 << 20, Procs: 2},
			{PID: 202, Queues: "foo", CPUSeconds: 2.25, RSSBytes: 12 << 20, Procs: 1},
			{PID: 203, Queues: "bar,baz", CPUSeconds: 0.5, RSSBytes: 8 << 20, Procs: 1},
		},
		Classes: []stats.ClassSample{
			{Class: "Archive", Failed: 2, Timing: timing},
			{Class: "Poolctl::Sleep", Timing: stats.Histogram{}},
		},
	}
	return s, st
}

// startServer serves src on a loopback port until the test ends, and
// checks that nothing of it is left running then.
func startServer(t *testing.T, src Source) *Server {
	t.Helper()
	srv, err := NewServer("127.0.0.1:0", src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// scrape fetches /metrics and parses it with the client library's text
// parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series renders a family's samples as "label=value,... => value" lines,
// sorted, for exact comparison.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string) []string {
	t.Helper()
	f := fams[name]
	if f == nil {
		return nil
	}
	var out []string
	for _, m := range f.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		var v float64
		switch f.GetType() {
		case dto.MetricType_GAUGE:
			v = m.GetGauge().GetValue()
		case dto.MetricType_COUNTER:
			v = m.GetCounter().GetValue()
		default:
			t.Fatalf("%s is a %v", name, f.GetType())
		}
		out = append(out, fmt.Sprintf("%s => %g", strings.Join(labels, ","), v))
	}
	sort.Strings(out)
	return out
}

func wantSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, want ...string) {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Errorf("no %s in /metrics", name)
		return
	}
	if f.GetType() != typ {
		t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
	}
	if f.GetHelp() == "" {
		t.Errorf("%s has no help", name)
	}
	sort.Strings(want)
	got := series(t, fams, name)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", name, got, want)
	}
}

func TestCollectorExportsTheSampleExactly(t *testing.T) {
	src := &fakeSource{}
	src.set(fixture(time.Unix(1_800_000_000, 250_000_000)))
	srv := startServer(t, src)
	fams := scrape(t, srv.Addr())
	G, C := dto.MetricType_GAUGE, dto.MetricType_COUNTER

	wantSeries(t, fams, "poolctl_workers_desired", G, "queues=foo => 2", "queues=bar,baz => 4")
	wantSeries(t, fams, "poolctl_workers_live", G, "queues=foo => 2", "queues=bar,baz => 1")
	wantSeries(t, fams, "poolctl_group_state", G,
		"queues=foo,state=ok => 1", "queues=foo,state=backoff => 0", "queues=foo,state=fatal => 0",
		"queues=bar,baz,state=ok => 0", "queues=bar,baz,state=backoff => 1", "queues=bar,baz,state=fatal => 0")
	wantSeries(t, fams, "poolctl_spawns_total", C, "queues=foo => 3", "queues=bar,baz => 9")
	wantSeries(t, fams, "poolctl_restarts_total", C, "queues=foo => 1", "queues=bar,baz => 7")
	// Only for queue lists with recycling limits, every reason.
	wantSeries(t, fams, "poolctl_worker_recycles_total", C,
		"queues=foo,reason=rss => 1", "queues=foo,reason=jobs => 4", "queues=foo,reason=lifetime => 0")

	wantSeries(t, fams, "poolctl_queue_depth", G, "queue=foo => 120", "queue=bar => 0", "queue=baz => 5")
	wantSeries(t, fams, "poolctl_queue_in_flight", G, "queue=foo => 2", "queue=bar => 0", "queue=baz => 1")
	wantSeries(t, fams, "poolctl_jobs_processed_total", C, "queue=foo => 1000", "queue=bar => 7", "queue=baz => 0")
	wantSeries(t, fams, "poolctl_jobs_failed_total", C, "queue=foo => 3", "queue=bar => 0", "queue=baz => 0")
	wantSeries(t, fams, "poolctl_queue_in_rate", G, "queue=foo => 4.5", "queue=bar => 0", "queue=baz => 1")
	wantSeries(t, fams, "poolctl_queue_out_rate", G, "queue=foo => 6.25", "queue=bar => 0", "queue=baz => 0")
	wantSeries(t, fams, "poolctl_queue_eta_seconds", G, "queue=foo => 68.5") // only while draining
	wantSeries(t, fams, "poolctl_queue_wait_seconds", G, "queue=foo => 19.2")
	var states []string
	for q, state := range map[string]string{"foo": "draining", "bar": "empty", "baz": "stalled"} {
		for _, s := range queueStates {
			states = append(states, fmt.Sprintf("queue=%s,state=%s => %g", q, s, bool01(s == state)))
		}
	}
	wantSeries(t, fams, "poolctl_queue_state", G, states...)

	wantSeries(t, fams, "poolctl_worker_cpu_seconds_total", C, "queues=foo => 3.75", "queues=bar,baz => 0.5")
	wantSeries(t, fams, "poolctl_worker_resident_memory_bytes", G,
		fmt.Sprintf("queues=foo => %g", float64(22<<20)), fmt.Sprintf("queues=bar,baz => %g", float64(8<<20)))
	wantSeries(t, fams, "poolctl_worker_processes", G, "queues=foo => 3", "queues=bar,baz => 1")
	wantSeries(t, fams, "poolctl_job_class_failed_total", C, "class=Archive => 2", "class=Poolctl::Sleep => 0")

	wantSeries(t, fams, "poolctl_host_load1", G, " => 1.5")
	wantSeries(t, fams, "poolctl_host_load5", G, " => 1.25")
	wantSeries(t, fams, "poolctl_host_load15", G, " => 0.75")
	wantSeries(t, fams, "poolctl_host_cpu_busy_ratio", G, " => 0.375")
	wantSeries(t, fams, "poolctl_host_memory_free_bytes", G, fmt.Sprintf(" => %g", float64(1<<30)))
	wantSeries(t, fams, "poolctl_host_memory_total_bytes", G, fmt.Sprintf(" => %g", float64(4<<30)))
	wantSeries(t, fams, "poolctl_sample_timestamp_seconds", G, " => 1.80000000025e+09")
	wantSeries(t, fams, "poolctl_redis_up", G, " => 1")

	// The master's own process and Go runtime.
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "go_goroutines", "go_memstats_heap_alloc_bytes"} {
		if fams[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}
	// Bounded labels only.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "queues", "queue", "class", "state", "le", "version", "reason":
				default:
					if strings.HasPrefix(name, "poolctl_") {
						t.Errorf("%s has label %q", name, l.GetName())
					}
				}
			}
		}
		if strings.HasPrefix(name, "poolctl_") && f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s lacks _total", name)
		}
	}
}

func TestJobDurationHistogramIsCumulative(t *testing.T) {
	src := &fakeSource{}
	src.set(fixture(time.Now()))
	srv := startServer(t, src)
	f := scrape(t, srv.Addr())["poolctl_job_duration_seconds"]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("poolctl_job_duration_seconds: %v", f)
	}
	byClass := map[string]*dto.Histogram{}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "class" {
			t.Fatalf("labels %v", m.GetLabel())
		}
		byClass[m.GetLabel()[0].GetValue()] = m.GetHistogram()
	}
	h := byClass["Archive"]
	if h == nil {
		t.Fatalf("no Archive histogram: %v", byClass)
	}
	if h.GetSampleCount() != 6 || h.GetSampleSum() != 4.5 {
		t.Errorf("count %d sum %g, want 6 and 4.5", h.GetSampleCount(), h.GetSampleSum())
	}
	// Counts: 1 in <=1ms, 2 in <=5ms, 1 in <=1s, 2 above the last bound.
	want := map[float64]uint64{0.001: 1, 0.002: 1, 0.005: 3, 0.01: 3, 0.5: 3, 1: 4, 2: 4, 3600: 4}
	if n := len(h.GetBucket()); n != len(queue.Buckets)+1 {
		t.Errorf("%d buckets, want %d (queue.Buckets and +Inf)", n, len(queue.Buckets)+1)
	} else if inf := h.GetBucket()[n-1]; !math.IsInf(inf.GetUpperBound(), 1) || inf.GetCumulativeCount() != 6 {
		t.Errorf("last bucket le=%g %d, want +Inf 6", inf.GetUpperBound(), inf.GetCumulativeCount())
	}
	for i, b := range h.GetBucket() {
		if i < len(queue.Buckets) && b.GetUpperBound() != queue.Buckets[i].Seconds() {
			t.Errorf("bucket %d le=%g, want %g", i, b.GetUpperBound(), queue.Buckets[i].Seconds())
		}
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("le=%g: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
		if i > 0 && b.GetCumulativeCount() < h.GetBucket()[i-1].GetCumulativeCount() {
			t.Errorf("bucket le=%g decreases", b.GetUpperBound())
		}
	}
	if e := byClass["Poolctl::Sleep"]; e == nil || e.GetSampleCount() != 0 {
		t.Errorf("empty class: %v", e)
	}
}

func TestPromBucketsOfTornAndCorruptCounters(t *testing.T) {
	cases := []struct {
		name      string
		h         stats.Histogram
		count     uint64
		lastBound uint64
	}{
		// Count read before a bucket was incremented: +Inf must not be
		// below the finite buckets.
		{"count behind buckets", stats.Histogram{Count: 1, Counts: []int64{2, 3}}, 5, 5},
		{"count ahead of buckets", stats.Histogram{Count: 9, Counts: []int64{2}}, 9, 2},
		{"negative bucket", stats.Histogram{Count: 2, Counts: []int64{-4, 2}}, 2, 2},
		{"no buckets", stats.Histogram{}, 0, 0},
		{"huge", stats.Histogram{Count: math.MaxInt64, Counts: []int64{math.MaxInt64}}, math.MaxInt64, math.MaxInt64},
	}
	for _, c := range cases {
		count, _, b := promBuckets(c.h)
		if count != c.count || b[queue.Buckets[len(queue.Buckets)-1].Seconds()] != c.lastBound {
			t.Errorf("%s: count %d, last bucket %d; want %d, %d", c.name, count, b[3600], c.count, c.lastBound)
		}
		for le, n := range b {
			if n > count {
				t.Errorf("%s: bucket le=%g holds %d > count %d", c.name, le, n, count)
			}
		}
	}
}

func TestNastyNamesSurviveTheTextFormat(t *testing.T) {
	names := []string{
		"reports/daily", "mail:high", "日本語のキュー", `quo"te\back` + "\nslash",
		"bad\xff\xfeutf8", `bad\xff` + "\xfeutf8", // the escape must not merge these two
		strings.Repeat("long", 128),
	}
	s, st := fixture(time.Now())
	s.Queues = nil
	for i, n := range names {
		s.Queues = append(s.Queues, stats.QueueSample{Name: n, Depth: int64(i) + 1<<52})
	}
	s.Queues = append(s.Queues, stats.QueueSample{Name: "mail:high", Depth: 99}) // a duplicate: first wins
	s.Classes = []stats.ClassSample{{Class: "Mod::Class\xff"}}
	st.Groups = append(st.Groups, poolfs.GroupState{Queues: "mail:high,reports/daily,日本語のキュー", Desired: 1, State: poolfs.GroupFatal})
	src := &fakeSource{}
	src.set(s, st)
	srv := startServer(t, src)
	fams := scrape(t, srv.Addr())
	got := map[string]float64{}
	for _, m := range fams["poolctl_queue_depth"].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	if len(got) != len(names) {
		t.Errorf("%d depth series, want %d: %v", len(got), len(names), got)
	}
	for i, n := range names {
		if v, ok := got[labelValue(n)]; !ok || v != float64(int64(i)+1<<52) {
			t.Errorf("depth of %q = %v, %v; want %d", n, v, ok, int64(i)+1<<52)
		}
	}
	for _, spelt := range []string{`bad\xff\xfeutf8`, `bad\\xff\xfeutf8`} {
		if _, ok := got[spelt]; !ok {
			t.Errorf("no series %s: %v", spelt, got)
		}
	}
	if fams["poolctl_job_duration_seconds"].GetMetric()[0].GetLabel()[0].GetValue() != `Mod::Class\xff` {
		t.Errorf("class label: %v", fams["poolctl_job_duration_seconds"])
	}
	wantSeries(t, fams, "poolctl_group_state", dto.MetricType_GAUGE,
		"queues=foo,state=ok => 1", "queues=foo,state=backoff => 0", "queues=foo,state=fatal => 0",
		"queues=bar,baz,state=ok => 0", "queues=bar,baz,state=backoff => 1", "queues=bar,baz,state=fatal => 0",
		"queues=mail:high,reports/daily,日本語のキュー,state=ok => 0",
		"queues=mail:high,reports/daily,日本語のキュー,state=backoff => 0",
		"queues=mail:high,reports/daily,日本語のキュー,state=fatal => 1")
}

func TestWorkerCPUCounterNeverGoesBack(t *testing.T) {
	s, st := fixture(time.Now())
	src := &fakeSource{}
	srv := startServer(t, src)
	cpu := func(workers ...stats.WorkerSample) string {
		t.Helper()
		x := *s
		x.Workers = workers
		src.set(&x, st)
		return strings.Join(series(t, scrape(t, srv.Addr()), "poolctl_worker_cpu_seconds_total"), "; ")
	}
	w := func(pid int, queues string, cpu float64) stats.WorkerSample {
		return stats.WorkerSample{PID: pid, Queues: queues, CPUSeconds: cpu}
	}
	steps := []struct {
		workers []stats.WorkerSample
		want    string
	}{
		{[]stats.WorkerSample{w(201, "foo", 5), w(203, "bar,baz", 1)}, "queues=bar,baz => 1; queues=foo => 5"},
		// A job process of 201 exited: its tree's CPU drops; the counter holds.
		{[]stats.WorkerSample{w(201, "foo", 3), w(203, "bar,baz", 1)}, "queues=bar,baz => 1; queues=foo => 5"},
		{[]stats.WorkerSample{w(201, "foo", 4.5), w(203, "bar,baz", 1)}, "queues=bar,baz => 1; queues=foo => 6.5"},
		// 201 exited, 202 started: 201's time stays in foo's total.
		{[]stats.WorkerSample{w(202, "foo", 0.25), w(203, "bar,baz", 2)}, "queues=bar,baz => 2; queues=foo => 6.75"},
		// Every foo worker gone, foo still configured: the total stays.
		{[]stats.WorkerSample{w(203, "bar,baz", 2)}, "queues=bar,baz => 2; queues=foo => 6.75"},
		// A worker of a queue list no longer configured is still counted...
		{[]stats.WorkerSample{w(203, "bar,baz", 2), w(204, "old", 1)}, "queues=bar,baz => 2; queues=foo => 6.75; queues=old => 1"},
		// ...and once it is gone, its series ends.
		{[]stats.WorkerSample{w(203, "bar,baz", 2)}, "queues=bar,baz => 2; queues=foo => 6.75"},
		// pid 203 reused by a worker of another queue list.
		{[]stats.WorkerSample{w(203, "foo", 0.5)}, "queues=bar,baz => 2; queues=foo => 7.25"},
	}
	for i, step := range steps {
		if got := cpu(step.workers...); got != step.want {
			t.Errorf("step %d: %s, want %s", i, got, step.want)
		}
	}
}

func TestNothingBeforeTheFirstSample(t *testing.T) {
	src := &fakeSource{}
	srv := startServer(t, src)
	fams := scrape(t, srv.Addr())
	for name := range fams {
		if strings.HasPrefix(name, "poolctl_") {
			t.Errorf("%s exported without a sample", name)
		}
	}
	if fams["process_cpu_seconds_total"] == nil {
		t.Error("no process metrics")
	}
	_, st := fixture(time.Now())
	src.set(nil, st) // state published, no sample yet
	fams = scrape(t, srv.Addr())
	if fams["poolctl_workers_desired"] == nil || fams["poolctl_queue_depth"] != nil {
		t.Errorf("state without sample: %v", fams)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthz(t *testing.T) {
	src := &fakeSource{}
	srv := startServer(t, src)
	now := time.Unix(1_800_000_000, 0)
	srv.now = func() time.Time { return now }
	url := "http://" + srv.Addr() + "/healthz"
	s, st := fixture(now)
	s.Interval = 0.5
	cases := []struct {
		name   string
		sample *stats.Sample
		state  *poolfs.State
		code   int
		body   string
	}{
		{"nothing yet", nil, nil, 503, "the master has published no state yet\n"},
		{"no sample yet", nil, st, 503, "no sample yet\n"},
		{"fresh", s, st, 200, "ok\n"},
		{"paused master (WINCH) still samples", s, &poolfs.State{Status: poolfs.MasterPaused}, 200, "ok\n"},
		{"stopping", s, &poolfs.State{Status: poolfs.MasterStopping}, 503, "the master is stopping\n"},
	}
	for _, c := range cases {
		src.set(c.sample, c.state)
		if code, body := get(t, url); code != c.code || body != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.code, c.body)
		}
	}
	src.set(s, st)
	now = s.TS.Add(1500 * time.Millisecond) // exactly 3 intervals: still fine
	if code, _ := get(t, url); code != 200 {
		t.Errorf("3 intervals old: %d", code)
	}
	now = s.TS.Add(1501 * time.Millisecond)
	code, body := get(t, url)
	if want := "the latest sample is 1.501s old (sampling every 500ms): the sampler is stalled\n"; code != 503 || body != want {
		t.Errorf("stale: %d %q, want 503 %q", code, body, want)
	}
}

func TestNewServerRefusesABadOrTakenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	_, err = NewServer(taken, &fakeSource{})
	if err == nil || !strings.Contains(err.Error(), taken) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("taken port: %v", err)
	}
	if n := strings.Count(err.Error(), taken); n != 1 {
		t.Errorf("address said %d times: %v", n, err)
	}
	for _, bad := range []string{"9187", "localhost:http", ":70000", "", "[::1"} {
		if _, err := NewServer(bad, &fakeSource{}); err == nil || !strings.Contains(err.Error(), "metrics") {
			t.Errorf("NewServer(%q): %v", bad, err)
		}
	}
	goleak.VerifyNone(t)
}

func TestBarePortBindsLoopbackOnly(t *testing.T) {
	srv := startServer(t, &fakeSource{})
	srv2, err := NewServer(":0", &fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	host, _, _ := net.SplitHostPort(srv2.Addr())
	if host != "127.0.0.1" {
		t.Errorf("bare :0 bound %s", srv2.Addr())
	}
	if _, port, _ := net.SplitHostPort(srv.Addr()); port == "0" {
		t.Errorf("Addr %s does not report the chosen port", srv.Addr())
	}
}

func TestCloseEndsEverythingEvenWithAStuckClient(t *testing.T) {
	src := &fakeSource{}
	src.set(fixture(time.Now()))
	for i := 0; i < 2; i++ {
		srv, err := NewServer("127.0.0.1:0", src)
		if err != nil {
			t.Fatal(err)
		}
		scrape(t, srv.Addr())
		// A client that sent half a request and waits, one that keeps
		// an idle connection, and one that reads a scrape slowly.
		half, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(half, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
		slow, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(slow, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := bufio.NewReader(slow).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if d := time.Since(start); d > shutdownTimeout+time.Second {
			t.Errorf("Close took %s", d)
		}
		if _, err := http.Get("http://" + srv.Addr() + "/metrics"); err == nil {
			t.Error("server still answers after Close")
		}
		half.Close()
		slow.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t)
}

func TestScrapesRaceWithNewSamples(t *testing.T) {
	src := &fakeSource{}
	srv := startServer(t, src)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s, st := fixture(time.Now())
			s.Workers[0].CPUSeconds = float64(i)
			src.set(s, st)
		}
	}()
	var prev float64
	for i := 0; i < 10; i++ {
		for _, m := range scrape(t, srv.Addr())["poolctl_worker_cpu_seconds_total"].GetMetric() {
			if m.GetLabel()[0].GetValue() == "foo" {
				v := m.GetCounter().GetValue()
				if v < prev {
					t.Errorf("counter went back: %g after %g", v, prev)
				}
				prev = v
			}
		}
	}
	close(stop)
	wg.Wait()
}

// Scrapers that hang up mid-response leave the server serving, with a
// sample big enough that the response outgrows the socket buffers.
func TestScrapersHangingUpEarly(t *testing.T) {
	s, st := fixture(time.Now())
	s.Queues = nil
	for i := 0; i < 1000; i++ {
		s.Queues = append(s.Queues, stats.QueueSample{Name: fmt.Sprintf("q%05d:%s", i, strings.Repeat("x", 40)), Depth: int64(i), State: stats.QueueBusy})
	}
	src := &fakeSource{}
	src.set(s, st)
	srv := startServer(t, src)
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := io.ReadFull(c, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	fams := scrape(t, srv.Addr())
	if n := len(fams["poolctl_queue_depth"].GetMetric()); n != 1000 {
		t.Errorf("%d depth series, want 1000", n)
	}
	if n := len(fams["poolctl_queue_state"].GetMetric()); n != 1000*len(queueStates) {
		t.Errorf("%d state series, want %d", n, 1000*len(queueStates))
	}
}

// Autoscaled queue lists carry their mode, bounds and target wait; a
// plain one has none of these series, and a pinned one shows 0.
func TestAutoscaleGauges(t *testing.T) {
	s, st := fixture(time.Now())
	st.Groups[0].Autoscale = &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOn, Min: 1, Max: 16, TargetWait: 2, DownAfter: 30, Configured: 1}
	st.Groups = append(st.Groups, poolfs.GroupState{Queues: "mail:hi,ü/x", Desired: 3, Live: 3, State: poolfs.GroupOK,
		Autoscale: &poolfs.AutoscaleState{Mode: poolfs.AutoscaleOff, Min: 0, Max: 8, TargetWait: 0.5, Configured: 3}})
	src := &fakeSource{}
	src.set(s, st)
	srv := startServer(t, src)
	fams := scrape(t, srv.Addr())
	G := dto.MetricType_GAUGE
	wantSeries(t, fams, "poolctl_autoscale_enabled", G, "queues=foo => 1", "queues=mail:hi,ü/x => 0")
	wantSeries(t, fams, "poolctl_autoscale_min_workers", G, "queues=foo => 1", "queues=mail:hi,ü/x => 0")
	wantSeries(t, fams, "poolctl_autoscale_max_workers", G, "queues=foo => 16", "queues=mail:hi,ü/x => 8")
	wantSeries(t, fams, "poolctl_autoscale_target_wait_seconds", G, "queues=foo => 2", "queues=mail:hi,ü/x => 0.5")
	wantSeries(t, fams, "poolctl_workers_desired", G, "queues=foo => 2", "queues=bar,baz => 4", "queues=mail:hi,ü/x => 3")
}
