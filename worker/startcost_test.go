package worker

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/internal/workerenv"
	"github.com/poolctl/poolctl/queue"
)

// countingProxy forwards TCP connections to a Redis and counts, per
// connection, the round trips its client makes: a round trip starts each
// time the client sends after it has read a reply (a pipeline is one),
// so it counts what a worker waits for, whatever the commands are, the
// ones Redis rejects (and so MONITOR never shows) included.
type countingProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []*proxiedConn
}

type proxiedConn struct {
	mu         sync.Mutex
	roundTrips int
	replied    bool // the server answered since the client last sent
	requests   []string
}

func startCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *countingProxy) URL() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *countingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxiedConn{replied: true}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		go func() { // client -> server
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					pc.mu.Lock()
					if pc.replied {
						pc.roundTrips++
						pc.replied = false
						pc.requests = append(pc.requests, requestSummary(buf[:n]))
					}
					pc.mu.Unlock()
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // server -> client
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					pc.mu.Lock()
					pc.replied = true
					pc.mu.Unlock()
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// requestSummary names the commands of a RESP request chunk: the first
// bulk string of each array ("HELLO", "EVALSHA", ...), with a sub-command.
func requestSummary(b []byte) string {
	var names []string
	r := bufio.NewReader(strings.NewReader(string(b)))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		if !strings.HasPrefix(line, "*") {
			continue
		}
		var args []string
		var n int
		fmt.Sscanf(line, "*%d", &n)
		for i := 0; i < n && i < 2; i++ {
			if _, err := r.ReadString('\n'); err != nil { // $len
				break
			}
			arg, err := r.ReadString('\n')
			if err != nil {
				break
			}
			args = append(args, strings.TrimSpace(arg))
		}
		name := strings.ToUpper(args[0])
		if len(args) > 1 && (name == "CLIENT" || name == "SCRIPT") {
			name += " " + strings.ToUpper(args[1])
		}
		names = append(names, name)
	}
	return strings.Join(names, "+")
}

// report returns the connections' round-trip counts and a description.
func (p *countingProxy) report() (conns, roundTrips int, desc string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for i, c := range p.conns {
		c.mu.Lock()
		roundTrips += c.roundTrips
		fmt.Fprintf(&b, "\n  connection %d: %d round trips: %s", i+1, c.roundTrips, strings.Join(c.requests, " | "))
		c.mu.Unlock()
	}
	return len(p.conns), roundTrips, b.String()
}

// buildWorkerBinary builds cmd/poolctl-worker into a temporary directory.
func buildWorkerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "poolctl-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/poolctl-worker").CombinedOutput(); err != nil {
		t.Fatalf("build poolctl-worker: %v\n%s", err, out)
	}
	return bin
}

// startReadyWorker runs bin as a pool master does (environment, readiness
// pipe) on queue q1 against url, and returns once the worker says it is
// registered. Cleanup stops it with QUIT and reaps it.
func startReadyWorker(t *testing.T, bin, url string) *exec.Cmd {
	t.Helper()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()
	out := &testutil.Buffer{}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), workerenv.Queues+"=q1", workerenv.RedisURL+"="+url,
		workerenv.ReadyFD+"=3", workerenv.HeartbeatInterval+"=10s")
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyW.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker output:\n%s", out.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(readyR) // the worker closes it once registered
		ready <- string(b)
	}()
	select {
	case said := <-ready:
		if want := workerenv.ReadySignals + "\n" + workerenv.ReadyRegistered + "\n"; said != want {
			t.Fatalf("readiness pipe said %q, want %q (did the worker exit?)", said, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not say it was ready within 10s")
	}
	return cmd
}

// A built-in worker's start is a round trip budget: from its first
// connection until it waits for its first job, it makes at most
// maxStartRoundTrips round trips over at most 2 connections (the
// bookkeeping one and the blocking one), with the pool's scripts loaded
// (the master loads them before it spawns workers). Every round trip
// added here is paid by each of a pool's workers at every start, on a
// machine busy starting a hundred of them; this fails if one comes back.
func TestWorkerStartRoundTrips(t *testing.T) {
	const maxStartRoundTrips = 7
	srv := redistest.Start(t)
	if err := queue.New(srv.Client(), "").LoadScripts(bg); err != nil {
		t.Fatal(err)
	}
	proxy := startCountingProxy(t, srv.Addr())
	startReadyWorker(t, buildWorkerBinary(t), proxy.URL())
	testutil.Eventually(t, 10*time.Second, "the worker to wait for a job", func() bool {
		return strings.Contains(srv.Client().ClientList(bg).Val(), "cmd=blmove")
	})
	conns, rts, desc := proxy.report()
	t.Logf("to the first blocking wait: %d connections, %d round trips:%s", conns, rts, desc)
	if conns > 2 {
		t.Errorf("the worker opened %d connections before its first blocking wait, want ≤ 2:%s", conns, desc)
	}
	if rts > maxStartRoundTrips {
		t.Errorf("the worker made %d round trips before its first blocking wait, want ≤ %d:%s", rts, maxStartRoundTrips, desc)
	}
	if calls := commandCalls(t, srv, "eval"); calls != 0 {
		t.Errorf("the worker sent %d script bodies (EVAL) although the scripts were loaded", calls)
	}
}

// commandCalls is Redis's count of calls of a command (INFO commandstats).
func commandCalls(t *testing.T, srv *redistest.Server, name string) int {
	t.Helper()
	for _, line := range strings.Split(srv.Client().Info(bg, "commandstats").Val(), "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls="); ok {
			var n int
			fmt.Sscanf(rest, "%d", &n)
			return n
		}
	}
	return 0
}

// A worker started against a Redis whose script cache is empty (SCRIPT
// FLUSH, or restarted empty, so the master's loading is lost) still
// registers and works: every script falls back on its body.
func TestWorkerStartsOnAnEmptyScriptCache(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	q := queue.New(rdb, "")
	bin := buildWorkerBinary(t)
	if err := q.LoadScripts(bg); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(bg, "q1", []byte(`{"class":"Poolctl::Noop","args":[]}`)); err != nil {
		t.Fatal(err)
	}
	cmd := startReadyWorker(t, bin, srv.URL())
	host, _ := os.Hostname()
	id := queue.WorkerID(host, cmd.Process.Pid, []string{"q1"})
	if !rdb.SIsMember(bg, "resque:workers", id).Val() || rdb.HGet(bg, "resque:workers:heartbeat", id).Val() == "" {
		t.Fatalf("worker %s said it was ready but is not registered: %v", id, rdb.Keys(bg, "*").Val())
	}
	testutil.Eventually(t, 10*time.Second, "the job to be processed", func() bool {
		return rdb.Get(bg, "resque:stat:processed").Val() == "1"
	})
	if n := commandCalls(t, srv, "eval"); n == 0 {
		t.Error("no script body was sent: the script cache was not empty after all")
	}
}

// A dead predecessor with the worker's id (a reused pid, the same queues)
// left a job in flight: the new worker puts it back at the head of its
// queue as it registers, before it reserves anything, and then runs it
// as the next job of that queue, once.
func TestWorkerStartRequeuesItsDeadPredecessorsJobFirst(t *testing.T) {
	srv := redistest.Start(t)
	q := queue.New(srv.Client(), "")
	id := queue.WorkerID("testhost", 4242, []string{"q1"})
	if err := q.Enqueue(bg, "q1", []byte(`{"class":"Poolctl::Noop","args":["first"]}`), []byte(`{"class":"Poolctl::Noop","args":["second"]}`)); err != nil {
		t.Fatal(err)
	}
	if j, err := q.Reserve(bg, id, []string{"q1"}, time.Now()); j == nil || err != nil {
		t.Fatalf("the predecessor's Reserve = %v, %v", j, err)
	}
	// The queue holds only "second" now; "first" is in the dead
	// predecessor's in-flight list, which the new worker would take for
	// its own (and never run) were it not requeued first.
	h := startWorker(t, srv, Config{Queues: []string{"q1"}, PID: 4242, HeartbeatInterval: time.Hour})
	h.eventually("both jobs processed", func() bool { return h.rdb.Get(bg, "resque:stat:processed").Val() == "2" })
	out := h.out.String()
	if !strings.Contains(out, "requeued 1 job(s) a dead worker with this id left in flight") {
		t.Errorf("the worker did not say it requeued its predecessor's job:\n%s", out)
	}
	if n := h.rdb.LLen(bg, "resque:poolctl:inflight:"+id+":q1").Val(); n != 0 {
		t.Errorf("%d job(s) still in flight", n)
	}
}
