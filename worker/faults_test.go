package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
)

// These tests try hardest to break the worker's delivery guarantees:
// Redis stalls longer than the client timeout, empty restarts, and
// payloads that defeat identity.

// faultWorker starts a worker whose bookkeeping client times out after
// 300 ms and never retries inside go-redis, the way production workers
// are configured, so a stalled Redis loses replies.
func faultWorker(t *testing.T, srv *redistest.Server, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, srv: srv, rdb: srv.Client(), out: &syncBuffer{}, err: make(chan error, 1)}
	fast := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, DialTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = fast.Close() })
	h.q = queue.New(fast, "")
	blocking := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1, MaxRetries: -1,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: DefaultBlockTimeout + 5*time.Second})
	if cfg.Host == "" {
		cfg.Host = "testhost"
	}
	cfg.Stdout, cfg.Stderr = h.out, h.out
	h.w = New(h.q, blocking, cfg)
	go func() { h.err <- h.w.Run(bg); blocking.Close() }()
	t.Cleanup(func() {
		_ = syscall.Kill(srv.PID(), syscall.SIGCONT)
		h.w.Terminate()
		h.wait()
		if t.Failed() {
			t.Logf("worker output:\n%s", h.out.String())
		}
	})
	testutil.Eventually(t, 10*time.Second, "worker registered", func() bool {
		return h.rdb.SIsMember(bg, "resque:workers", h.w.ID()).Val()
	})
	return h
}

func lineCount(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// processState is the state letter of /proc/PID/stat ('T' when stopped).
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// Six byte-identical payloads; the fourth job stops redis-server itself
// (SIGSTOP) just before it ends, so the worker's ack-and-reserve of job 4
// times out while Redis still has it queued. When Redis resumes, the
// script runs (job 4 acked, job 5 reserved) and the worker retries the
// ack: that retry must not remove job 5, which has the same bytes.
func TestLostAckReplyNeverRemovesAnIdenticalJob(t *testing.T) {
	srv := redistest.Start(t)
	runs := filepath.Join(t.TempDir(), "runs")
	script := fmt.Sprintf(`echo run >> %s; if [ "$(wc -l < %s)" -eq 4 ]; then kill -STOP %d; fi`, runs, runs, srv.PID())
	h := faultWorker(t, srv, Config{Queues: []string{"foo"}, Jobs: map[string][]string{"Mark": {"sh", "-c", script}}})

	same := `{"class":"Mark","args":[]}`
	h.push("foo", same, same, same, same, same, same)

	testutil.Eventually(t, 10*time.Second, "job 4 to stop redis-server", func() bool {
		return lineCount(runs) >= 4 && processState(srv.PID()) == 'T'
	})
	testutil.Eventually(t, 10*time.Second, "the worker to notice the stall", func() bool {
		return strings.Contains(h.out.String(), "Redis unavailable")
	})
	if err := syscall.Kill(srv.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the queue and the in-flight list to empty", func() bool {
		inflight, _ := h.rdb.Keys(bg, "resque:poolctl:inflight:*").Result()
		busy := 0
		for _, k := range inflight {
			busy += int(h.rdb.LLen(bg, k).Val())
		}
		return h.rdb.LLen(bg, "resque:queue:foo").Val() == 0 && busy == 0 && !h.running()
	})
	if n := lineCount(runs); n != 6 {
		t.Fatalf("%d of 6 identical jobs ran; a retried ack removed a different job", n)
	}
	if got := h.stat("resque:stat:processed"); got != "6" {
		t.Errorf("stat:processed = %s, want 6", got)
	}
}
