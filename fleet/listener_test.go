package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// fakeExec is an Executor that records its calls. A verb in block waits
// for release, ignoring its context, as a wedged master would.
type fakeExec struct {
	remote atomic.Bool

	mu      sync.Mutex
	calls   []string
	block   map[string]bool
	entered chan string   // receives the verb of a blocking call
	release chan struct{} // closed at the end of the test
}

func newFakeExec(t *testing.T) *fakeExec {
	f := &fakeExec{block: map[string]bool{}, entered: make(chan string, 10), release: make(chan struct{})}
	t.Cleanup(func() { close(f.release) })
	return f
}

func (f *fakeExec) record(ctx context.Context, verb string, args ...string) error {
	f.mu.Lock()
	f.calls = append(f.calls, strings.TrimSpace(verb+" "+strings.Join(args, " ")))
	blocks := f.block[verb]
	f.mu.Unlock()
	if blocks {
		f.entered <- verb
		<-f.release
	}
	return nil
}

func (f *fakeExec) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeExec) setBlock(verb string) {
	f.mu.Lock()
	f.block[verb] = true
	f.mu.Unlock()
}

func (f *fakeExec) Status(ctx context.Context) (any, error) {
	f.record(ctx, "status")
	return map[string]any{"state": "running", "live": 3}, nil
}

func (f *fakeExec) Config(ctx context.Context, words []string) (any, error) {
	f.record(ctx, "config", words...)
	if len(words) > 0 && words[0] == "bad=x" {
		return nil, errors.New("spec: entry 1 \"bad=x\": count is not a number")
	}
	return map[string]any{"spec": strings.Join(words, ":")}, nil
}

func (f *fakeExec) Reload(ctx context.Context) (any, error) { return nil, f.record(ctx, "reload") }
func (f *fakeExec) Pause(ctx context.Context, q []string) (any, error) {
	return nil, f.record(ctx, "pause", q...)
}
func (f *fakeExec) Resume(ctx context.Context, q []string) (any, error) {
	return nil, f.record(ctx, "resume", q...)
}
func (f *fakeExec) Stop(ctx context.Context) (any, error) { return "stopping", f.record(ctx, "stop") }
func (f *fakeExec) Autoscale(ctx context.Context, on bool, q []string) (any, error) {
	return nil, f.record(ctx, "autoscale", append([]string{fmt.Sprint(on)}, q...)...)
}
func (f *fakeExec) RemoteControl() bool { return f.remote.Load() }

// listenerRun is a Listener running in the background.
type listenerRun struct {
	logs   *testutil.Buffer
	cancel context.CancelFunc
	done   chan struct{}
}

// startListener runs pool id's listener until the test ends.
func startListener(t *testing.T, srv *redistest.Server, id string, exec Executor, o ListenerOptions) *listenerRun {
	t.Helper()
	return startListenerWith(t, srv.Client(), srv.Client(), id, exec, o)
}

// startListenerWith is startListener with the listener's clients.
func startListenerWith(t *testing.T, rdb, blocking redis.UniversalClient, id string, exec Executor, o ListenerOptions) *listenerRun {
	t.Helper()
	run := &listenerRun{logs: &testutil.Buffer{}, done: make(chan struct{})}
	o.Logf = func(f string, a ...any) { fmt.Fprintf(run.logs, f+"\n", a...) }
	if o.PollTimeout == 0 {
		o.PollTimeout = 200 * time.Millisecond
	}
	l := NewListener(rdb, blocking, testNS, id, exec, o)
	var ctx context.Context
	ctx, run.cancel = context.WithCancel(context.Background())
	go func() {
		if err := l.Run(ctx); err != nil {
			fmt.Fprintf(run.logs, "Run: %v\n", err)
		}
		close(run.done)
	}()
	t.Cleanup(func() { run.stop(t, 15*time.Second) })
	return run
}

// stop cancels the listener and fails the test unless Run returns within
// limit.
func (r *listenerRun) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(limit):
		t.Errorf("Listener.Run did not return within %s of its context's end", limit)
	}
	return time.Since(start)
}

var cmdSeq atomic.Int64

// newCmd returns a command with a fresh id and reply list.
func newCmd(verb string, args ...string) Command {
	n := cmdSeq.Add(1)
	return Command{ID: fmt.Sprintf("c%d", n), ReplyTo: fmt.Sprintf("poolctl:reply:test%d", n), Verb: verb, Args: args}
}

func push(t *testing.T, rdb redis.UniversalClient, id string, raw any) {
	t.Helper()
	b, ok := raw.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.RPush(context.Background(), ControlKey(testNS, id), b).Err(); err != nil {
		t.Fatalf("push command: %v", err)
	}
}

// awaitReply pops the next reply from replyTo, failing the test after
// timeout.
func awaitReply(t *testing.T, rdb redis.UniversalClient, replyTo string, timeout time.Duration) Reply {
	t.Helper()
	r, err := popReply(rdb, replyTo, timeout)
	if err != nil {
		t.Fatalf("reply on %s: %v", replyTo, err)
	}
	return r
}

func popReply(rdb redis.UniversalClient, replyTo string, timeout time.Duration) (Reply, error) {
	secs := fmt.Sprintf("%.3f", timeout.Seconds())
	vals, err := rdb.Do(context.Background(), "blpop", testNS+replyTo, secs).StringSlice()
	if err != nil {
		return Reply{}, fmt.Errorf("no reply within %s: %w", timeout, err)
	}
	var r Reply
	if err := json.Unmarshal([]byte(vals[1]), &r); err != nil {
		return Reply{}, fmt.Errorf("reply %q: %w", vals[1], err)
	}
	return r, nil
}

func slowClient(srv *redistest.Server, t *testing.T) *redis.Client {
	// A read timeout above the blocking pops' own timeouts.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 30 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Issue 14: ping answers in under a second, from the master, even while
// every worker is busy. The bound holds for the median of five pings on
// each path: one ping's round trip also counts whatever descheduled this
// test process or redis-server for a second on a loaded CI host, which
// says nothing about the listener; a listener that waits on a poll or
// on the executor is slow on every ping.
func TestListenerPingAnsweredWithinASecond(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	startListener(t, srv, "h/p", exec, ListenerOptions{})

	warm := newCmd(VerbPing)
	push(t, rdb, "h/p", warm)
	awaitReply(t, rdb, warm.ReplyTo, 10*time.Second)

	if d, all := medianPing(t, rdb, func(c Command) { push(t, rdb, "h/p", c) }); d > time.Second {
		t.Errorf("ping on the list answered after a median %s (%v); the issue asks for under 1 s", d, all)
	}

	// Every worker busy is the executor's business: ping never calls it.
	exec.setBlock("status")
	busy := newCmd(VerbStatus)
	push(t, rdb, "h/p", busy)
	<-exec.entered

	broadcast := func(c Command) {
		b, _ := json.Marshal(c)
		if err := rdb.Publish(context.Background(), BroadcastChannel(testNS), b).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if d, all := medianPing(t, rdb, broadcast); d > time.Second {
		t.Errorf("ping answered after a median %s (%v); the issue asks for under 1 s", d, all)
	}
}

// medianPing sends five pings one after another with send, checks each
// reply, and returns the median time to the reply and all five.
func medianPing(t *testing.T, rdb redis.UniversalClient, send func(Command)) (time.Duration, []time.Duration) {
	t.Helper()
	took := make([]time.Duration, 5)
	for i := range took {
		c := newCmd(VerbPing)
		start := time.Now()
		send(c)
		r := awaitReply(t, rdb, c.ReplyTo, 15*time.Second)
		took[i] = time.Since(start)
		if r.ID != c.ID || r.Pool != "h/p" || r.Status != StatusOK || string(r.Result) != `"pong"` {
			t.Errorf("ping reply %+v", r)
		}
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	return sorted[len(sorted)/2], took
}

func TestListenerStatusAndOrder(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	exec.remote.Store(true)

	// Pushed before the listener runs: served once it does, in order.
	var cmds []Command
	for i := range 5 {
		c := newCmd(VerbConfig, fmt.Sprintf("q%d=%d", i, i))
		cmds = append(cmds, c)
		push(t, rdb, "h/p", c)
	}
	st := newCmd(VerbStatus)
	push(t, rdb, "h/p", st)
	startListener(t, srv, "h/p", exec, ListenerOptions{})

	r := awaitReply(t, rdb, st.ReplyTo, 10*time.Second)
	if r.Status != StatusOK || r.Pool != "h/p" {
		t.Fatalf("status reply %+v", r)
	}
	var res map[string]any
	if err := json.Unmarshal(r.Result, &res); err != nil || res["live"] != 3.0 || res["state"] != "running" {
		t.Errorf("status result %s (%v)", r.Result, err)
	}
	for _, c := range cmds {
		r := awaitReply(t, rdb, c.ReplyTo, 15*time.Second)
		if r.Status != StatusOK || r.ID != c.ID {
			t.Errorf("%s: reply %+v", c.ID, r)
		}
	}
	want := []string{"config q0=0", "config q1=1", "config q2=2", "config q3=3", "config q4=4", "status"}
	if got := exec.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("executor calls %q, want %q in that order", got, want)
	}
}

func TestListenerRemoteControl(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	startListener(t, srv, "h/p", exec, ListenerOptions{})

	for _, c := range []Command{newCmd(VerbConfig, "foo=4"), newCmd(VerbStop), newCmd(VerbPause), newCmd(VerbAutoscale, "on"),
		{ID: "vumi-off", ReplyTo: "poolctl:reply:vumi-off", Operation: OpStartWorker, Queues: "foo"}} {
		push(t, rdb, "h/p", c)
		r := awaitReply(t, rdb, c.ReplyTo, 10*time.Second)
		if r.Status != StatusError || r.Error != "remote control is off for this pool: set remote_control: true in its config" {
			t.Errorf("%s with remote control off: %+v", c.what(), r)
		}
	}
	st := newCmd(VerbStatus)
	push(t, rdb, "h/p", st)
	if r := awaitReply(t, rdb, st.ReplyTo, 10*time.Second); r.Status != StatusOK {
		t.Errorf("a read-only verb refused with remote control off: %+v", r)
	}
	if got := exec.Calls(); len(got) != 1 || got[0] != "status" {
		t.Fatalf("refused verbs reached the executor: %q", got)
	}

	// Read at each command: turning it on applies to the next one.
	exec.remote.Store(true)
	two := 2
	cmds := []Command{
		newCmd(VerbConfig, "foo=4", "bar=0"),
		newCmd(VerbAutoscale, "off", "foo"),
		newCmd(VerbPause, "foo"),
		{ID: "vumi-1", ReplyTo: "poolctl:reply:vumi-1", Operation: OpStartWorker, WorkerName: "smpp-1", Queues: "smpp", Count: &two},
		{ID: "vumi-2", ReplyTo: "poolctl:reply:vumi-2", Operation: OpStopWorker, WorkerName: "smpp-1", Queues: "smpp"},
	}
	for _, c := range cmds {
		push(t, rdb, "h/p", c)
		if r := awaitReply(t, rdb, c.ReplyTo, 10*time.Second); r.Status != StatusOK {
			t.Errorf("%s with remote control on: %+v", c.what(), r)
		}
	}
	want := "status|config foo=4 bar=0|autoscale false foo|pause foo|config smpp=2|config smpp=0"
	if got := strings.Join(exec.Calls(), "|"); got != want {
		t.Errorf("executor calls %q, want %q", got, want)
	}

	// An executor error is the reply's error; worker_class is refused.
	bad := newCmd(VerbConfig, "bad=x")
	push(t, rdb, "h/p", bad)
	if r := awaitReply(t, rdb, bad.ReplyTo, 10*time.Second); r.Status != StatusError || !strings.Contains(r.Error, "count is not a number") {
		t.Errorf("executor error: %+v", r)
	}
	wc := Command{ID: "vumi-3", ReplyTo: "poolctl:reply:vumi-3", Operation: OpStartWorker, Queues: "smpp", WorkerClass: "vumi.transports.SmppTransport"}
	push(t, rdb, "h/p", wc)
	if r := awaitReply(t, rdb, wc.ReplyTo, 10*time.Second); r.Status != StatusError || !strings.Contains(r.Error, "worker_class is not supported") {
		t.Errorf("worker_class: %+v", r)
	}
}

func TestListenerRefusesBadMessages(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	exec.remote.Store(true)
	run := startListener(t, srv, "h/p", exec, ListenerOptions{})

	push(t, rdb, "h/p", []byte(`{"id":"evil","reply_to":"poolctl:reply:evil","verb":"config","args":["foo=1"],"argv":["sh","-c","touch /tmp/x"]}`))
	r := awaitReply(t, rdb, "poolctl:reply:evil", 10*time.Second)
	if r.Status != StatusError || r.ID != "evil" || !strings.Contains(r.Error, `"argv"`) || !strings.Contains(r.Error, "command line") {
		t.Errorf("argv reply %+v", r)
	}
	// Nothing to answer: dropped and logged, and the next one is served.
	push(t, rdb, "h/p", []byte(`not json at all`))
	ok := newCmd(VerbStatus)
	push(t, rdb, "h/p", ok)
	awaitReply(t, rdb, ok.ReplyTo, 10*time.Second)
	if !strings.Contains(run.logs.String(), "dropped a control message") {
		t.Errorf("an unanswerable message was not logged:\n%s", run.logs.String())
	}
	if got := exec.Calls(); len(got) != 1 || got[0] != "status" {
		t.Errorf("refused messages reached the executor: %q", got)
	}
	// Nothing was pushed onto a queue or a reserved key.
	if n, _ := rdb.Exists(context.Background(), testNS+"queue:foo").Result(); n != 0 {
		t.Errorf("a reply landed on a queue")
	}
}

func TestListenerExpiredNotExecuted(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	exec.remote.Store(true)
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	old := newCmd(VerbConfig, "foo=9")
	old.ExpiresAt = now.Add(-time.Second)
	push(t, rdb, "h/p", old)
	live := newCmd(VerbConfig, "foo=2")
	live.ExpiresAt = now.Add(time.Hour)
	push(t, rdb, "h/p", live)
	startListener(t, srv, "h/p", exec, ListenerOptions{})

	r := awaitReply(t, rdb, old.ReplyTo, 10*time.Second)
	if r.Status != StatusExpired || !strings.Contains(r.Error, "expired at") {
		t.Errorf("expired command: %+v", r)
	}
	if r := awaitReply(t, rdb, live.ReplyTo, 10*time.Second); r.Status != StatusOK {
		t.Errorf("unexpired command: %+v", r)
	}
	if got := exec.Calls(); len(got) != 1 || got[0] != "config foo=2" {
		t.Errorf("executor calls %q: the expired command must not run", got)
	}
}

func TestListenerSurvivesFreeze(t *testing.T) {
	srv := redistest.Start(t)
	exec := newFakeExec(t)
	// Clients that give up within the stall, so that the listener sees
	// errors rather than go-redis's retries riding it out.
	impatient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: time.Second, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	run := startListenerWith(t, impatient(), impatient(), "h/p", exec, ListenerOptions{})
	rdb := slowClient(srv, t)
	c := newCmd(VerbPing)
	push(t, rdb, "h/p", c)
	awaitReply(t, rdb, c.ReplyTo, 10*time.Second)

	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	// A stall longer than go-redis's 3 s read timeout.
	time.Sleep(5 * time.Second)
	if err := srv.Thaw(); err != nil {
		t.Fatal(err)
	}
	c = newCmd(VerbPing)
	push(t, rdb, "h/p", c)
	if r, err := popReply(rdb, c.ReplyTo, 20*time.Second); err != nil || r.Status != StatusOK {
		t.Fatalf("ping after a stall: %+v, %v; listener log:\n%s", r, err, run.logs.String())
	}
	c = newCmd(VerbPing)
	b, _ := json.Marshal(c)
	testutil.Eventually(t, 20*time.Second, "a broadcast ping answered after the stall", func() bool {
		_ = rdb.Publish(context.Background(), BroadcastChannel(testNS), b).Err()
		_, err := popReply(rdb, c.ReplyTo, 200*time.Millisecond)
		return err == nil
	})
	if !strings.Contains(run.logs.String(), "Redis unavailable") {
		t.Errorf("the stall was not seen (nor logged) by the listener:\n%s", run.logs.String())
	}
	if d := run.stop(t, 15*time.Second); d > 3*time.Second {
		t.Errorf("Run took %s to return after the stall", d)
	}
}

func TestListenerResubscribesAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	exec := newFakeExec(t)
	run := startListener(t, srv, "h/p", exec, ListenerOptions{})
	rdb := slowClient(srv, t)
	broadcastPing := func(what string) {
		t.Helper()
		c := newCmd(VerbPing)
		b, _ := json.Marshal(c)
		testutil.Eventually(t, 20*time.Second, what, func() bool {
			_ = rdb.Publish(context.Background(), BroadcastChannel(testNS), b).Err()
			_, err := popReply(rdb, c.ReplyTo, 200*time.Millisecond)
			return err == nil
		})
	}
	broadcastPing("a broadcast ping answered")
	srv.RestartEmpty()
	broadcastPing("a broadcast ping answered after Redis restarted empty")

	// The list is served again too.
	c := newCmd(VerbPing)
	push(t, rdb, "h/p", c)
	awaitReply(t, rdb, c.ReplyTo, 20*time.Second)
	testutil.Eventually(t, 15*time.Second, "the outage and its end logged", func() bool {
		s := run.logs.String()
		return strings.Contains(s, "Redis unavailable") && strings.Contains(s, "Redis available again")
	})
}

func TestListenerStopsPromptly(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	// The default poll timeout of 1 s.
	run := startListener(t, srv, "h/p", exec, ListenerOptions{PollTimeout: time.Second})
	c := newCmd(VerbPing)
	push(t, rdb, "h/p", c)
	awaitReply(t, rdb, c.ReplyTo, 10*time.Second)
	if d := run.stop(t, 10*time.Second); d > 3*time.Second {
		t.Errorf("Run took %s to return after its context ended", d)
	}
	// Stopped: a command now waits in the list for the next master.
	c = newCmd(VerbPing)
	push(t, rdb, "h/p", c)
	if _, err := popReply(rdb, c.ReplyTo, 1500*time.Millisecond); err == nil {
		t.Error("a stopped listener answered")
	}
	if n, _ := rdb.LLen(context.Background(), ControlKey(testNS, "h/p")).Result(); n != 1 {
		t.Errorf("control list holds %d commands after the listener stopped, want the 1 sent", n)
	}
	if n, _ := rdb.LLen(context.Background(), TakenKey(testNS, "h/p")).Result(); n != 0 {
		t.Errorf("taken list holds %d commands after the listener stopped", n)
	}
}

func TestListenerSlowExecutor(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	exec.remote.Store(true)
	exec.setBlock("reload")
	run := startListener(t, srv, "h/p", exec, ListenerOptions{ExecTimeout: 500 * time.Millisecond})

	// Bounded: the reply says it did not finish.
	c := newCmd(VerbReload)
	push(t, rdb, "h/p", c)
	<-exec.entered
	r := awaitReply(t, rdb, c.ReplyTo, 10*time.Second)
	if r.Status != StatusError || !strings.Contains(r.Error, "did not finish within 500ms") {
		t.Errorf("slow reload: %+v", r)
	}
	// Ping needs no executor: answered while the reload still hangs.
	p := newCmd(VerbPing)
	push(t, rdb, "h/p", p)
	if r := awaitReply(t, rdb, p.ReplyTo, 10*time.Second); r.Status != StatusOK {
		t.Errorf("ping behind a hung executor: %+v", r)
	}
	// The next executor call does not overlap the hung one.
	st := newCmd(VerbStatus)
	push(t, rdb, "h/p", st)
	if r := awaitReply(t, rdb, st.ReplyTo, 10*time.Second); r.Status != StatusError || !strings.Contains(r.Error, "still running") {
		t.Errorf("status behind a hung reload: %+v", r)
	}
	if got := exec.Calls(); strings.Join(got, "|") != "reload" {
		t.Errorf("executor calls %q: a call overlapped the hung one", got)
	}

	// Shutdown with a hung call in flight does not wait for it.
	st = newCmd(VerbReload)
	push(t, rdb, "h/p", st)
	if d := run.stop(t, 10*time.Second); d > 3*time.Second {
		t.Errorf("Run took %s to return with a hung executor", d)
	}
}

func TestListenerShutdownDuringExecution(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	exec := newFakeExec(t)
	exec.remote.Store(true)
	exec.setBlock("stop")
	// The default 5 s exec bound would outlast the check below.
	run := startListener(t, srv, "h/p", exec, ListenerOptions{ExecTimeout: time.Minute})
	c := newCmd(VerbStop)
	push(t, rdb, "h/p", c)
	<-exec.entered
	if d := run.stop(t, 10*time.Second); d > 3*time.Second {
		t.Errorf("Run took %s to return with an executor call of 10 s in flight", d)
	}
	// The sender still hears what became of its command.
	r := awaitReply(t, rdb, c.ReplyTo, 15*time.Second)
	if r.Status != StatusError || !strings.Contains(r.Error, "stopping") {
		t.Errorf("reply to a command interrupted by shutdown: %+v", r)
	}
}

func TestListenerResubscribesWhenTheConnectionGoesSilent(t *testing.T) {
	srv := redistest.Start(t)
	px := startProxy(t, srv.Addr())
	viaProxy := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: px.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	exec := newFakeExec(t)
	run := &listenerRun{logs: &testutil.Buffer{}, done: make(chan struct{})}
	l := NewListener(viaProxy(), viaProxy(), testNS, "h/p", exec, ListenerOptions{
		PollTimeout: 200 * time.Millisecond,
		Logf:        func(f string, a ...any) { fmt.Fprintf(run.logs, f+"\n", a...) },
	})
	l.silence = 2 * time.Second
	var ctx context.Context
	ctx, run.cancel = context.WithCancel(context.Background())
	go func() { _ = l.Run(ctx); close(run.done) }()
	t.Cleanup(func() { run.stop(t, 20*time.Second) })

	rdb := slowClient(srv, t)
	broadcastPing := func(what string) {
		t.Helper()
		c := newCmd(VerbPing)
		b, _ := json.Marshal(c)
		testutil.Eventually(t, 30*time.Second, what, func() bool {
			_ = rdb.Publish(context.Background(), BroadcastChannel(testNS), b).Err()
			_, err := popReply(rdb, c.ReplyTo, 300*time.Millisecond)
			return err == nil
		})
	}
	broadcastPing("a broadcast ping answered")
	px.Blackhole()
	broadcastPing("a broadcast ping answered after the subscription's connection went silent")
	if !strings.Contains(run.logs.String(), "no answer to PING") {
		t.Errorf("the silent connection was not logged:\n%s", run.logs.String())
	}
}

func TestListenerServesACommandWhosePopWasAnsweredToNobody(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	ctx := context.Background()
	// A pop the server answers on a socket nobody reads, as one sent just
	// before a stall whose client gave up: it is first in line.
	zombie, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Close() })
	key, taken := ControlKey(testNS, "h/p"), TakenKey(testNS, "h/p")
	fmt.Fprintf(zombie, "*6\r\n$6\r\nBLMOVE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$4\r\nLEFT\r\n$5\r\nRIGHT\r\n$1\r\n0\r\n", len(key), key, len(taken), taken)
	testutil.Eventually(t, 15*time.Second, "the zombie pop blocked", func() bool {
		info, _ := rdb.Info(ctx, "clients").Result()
		return strings.Contains(info, "blocked_clients:1")
	})
	exec := newFakeExec(t)
	startListener(t, srv, "h/p", exec, ListenerOptions{})
	testutil.Eventually(t, 15*time.Second, "the listener's pop blocked too", func() bool {
		info, _ := rdb.Info(ctx, "clients").Result()
		return strings.Contains(info, "blocked_clients:2")
	})

	c := newCmd(VerbStatus)
	push(t, rdb, "h/p", c)
	if r := awaitReply(t, rdb, c.ReplyTo, 10*time.Second); r.Status != StatusOK {
		t.Errorf("reply %+v", r)
	}
	testutil.Eventually(t, 15*time.Second, "the taken list emptied", func() bool {
		n, err := rdb.LLen(ctx, taken).Result()
		return err == nil && n == 0
	})
	if got := exec.Calls(); len(got) != 1 {
		t.Errorf("executor calls %q, want the status once", got)
	}
}

func TestListenerServesWhatADeadMasterLeftTaken(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	ctx := context.Background()
	// The previous master died between taking these and answering.
	first, second := newCmd(VerbStatus), newCmd(VerbPing)
	for _, c := range []Command{first, second} {
		b, _ := json.Marshal(c)
		if err := rdb.RPush(ctx, TakenKey(testNS, "h/p"), b).Err(); err != nil {
			t.Fatal(err)
		}
	}
	third := newCmd(VerbStatus)
	push(t, rdb, "h/p", third)
	exec := newFakeExec(t)
	startListener(t, srv, "h/p", exec, ListenerOptions{})
	for _, c := range []Command{first, second, third} {
		if r := awaitReply(t, rdb, c.ReplyTo, 10*time.Second); r.Status != StatusOK {
			t.Errorf("%s: %+v", c.ID, r)
		}
	}
	if got := strings.Join(exec.Calls(), "|"); got != "status|status" {
		t.Errorf("executor calls %q", got)
	}
	testutil.Eventually(t, 15*time.Second, "the taken list emptied", func() bool {
		n, err := rdb.LLen(ctx, TakenKey(testNS, "h/p")).Result()
		return err == nil && n == 0
	})
}

func TestListenerNeverServesTwiceForAFailedRemoval(t *testing.T) {
	srv := redistest.Start(t)
	rdb := slowClient(srv, t)
	ctx := context.Background()
	// The listener's own client may not LREM, until the test allows it.
	if err := rdb.Do(ctx, "acl", "setuser", "lis", "on", ">pw", "~*", "&*", "+@all", "-lrem").Err(); err != nil {
		t.Fatal(err)
	}
	lis := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "lis", Password: "pw"})
	t.Cleanup(func() { _ = lis.Close() })
	exec := newFakeExec(t)
	run := startListenerWith(t, lis, srv.Client(), "h/p", exec, ListenerOptions{})

	c := newCmd(VerbStatus)
	push(t, rdb, "h/p", c)
	if r := awaitReply(t, rdb, c.ReplyTo, 10*time.Second); r.Status != StatusOK {
		t.Fatalf("reply %+v", r)
	}
	testutil.Eventually(t, 10*time.Second, "the failed removal seen", func() bool {
		return len(exec.Calls()) > 1 || strings.Contains(run.logs.String(), "Redis unavailable")
	})
	if err := rdb.Do(ctx, "acl", "setuser", "lis", "+lrem").Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the taken list emptied", func() bool {
		n, err := rdb.LLen(ctx, TakenKey(testNS, "h/p")).Result()
		return err == nil && n == 0
	})
	if got := exec.Calls(); len(got) != 1 {
		t.Errorf("executor calls %q: a command was served again because its removal failed", got)
	}
}
