package pool

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

// notifySocket listens where a master run with NOTIFY_SOCKET=path sends
// its sd_notify datagrams, and collects them.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	ns := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	return ns
}

func (ns *notifySocket) all() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.msgs...)
}

// index is the position of the first message from `from` on that
// starts with prefix, -1 when none.
func (ns *notifySocket) index(prefix string, from int) int {
	for i, m := range ns.all() {
		if i >= from && strings.HasPrefix(m, prefix) {
			return i
		}
	}
	return -1
}

// Under systemd (Type=notify, WatchdogSec=): READY=1 only once the first
// workers are spawned, a STATUS line with the counts, watchdog pings from
// the event loop, RELOADING=1 then READY=1 around a HUP, STOPPING=1 on
// QUIT; and the workers do not inherit the socket.
func TestMasterSpeaksSystemdNotify(t *testing.T) {
	ns := listenNotify(t)
	cfg := strings.Replace(sleepConfig, `command: ["sleep", "1000"]`, `command: ["sh", "-c", "echo NOTIFY_SOCKET=$NOTIFY_SOCKET; exec sleep 1000"]`, 1)
	tm := startMasterWith(t, cfg, "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=200000")
	tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	testutil.Eventually(t, 5*time.Second, "READY=1", func() bool { return ns.index("READY=1", 0) >= 0 })
	ready := ns.index("READY=1", 0)
	if st := ns.index("STATUS=", 0); st < 0 || st > ready || !strings.Contains(ns.all()[st], "workers live") {
		t.Fatalf("want a STATUS line with the counts before READY=1: %q", ns.all())
	}
	testutil.Eventually(t, 5*time.Second, "two watchdog pings", func() bool {
		first := ns.index("WATCHDOG=1", 0)
		return first >= 0 && ns.index("WATCHDOG=1", first+1) >= 0
	})
	testutil.Eventually(t, 5*time.Second, "status 5 of 5", func() bool {
		for _, m := range ns.all() {
			if strings.Contains(m, "STATUS=running: 5 of 5 workers live") {
				return true
			}
		}
		return false
	})

	mark := len(ns.all())
	tm.signal(syscall.SIGHUP)
	testutil.Eventually(t, 5*time.Second, "RELOADING=1 then READY=1", func() bool {
		r := ns.index("RELOADING=1", mark)
		return r >= 0 && ns.index("READY=1", r+1) >= 0
	})
	if m := ns.all()[ns.index("RELOADING=1", mark)]; !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m)
	}

	tm.signal(syscall.SIGQUIT)
	tm.waitExit(15 * time.Second)
	if ns.index("STOPPING=1", mark) < 0 {
		t.Fatalf("no STOPPING=1: %q", ns.all())
	}
	log, _ := os.ReadFile(tm.log)
	if strings.Contains(string(log), "NOTIFY_SOCKET="+ns.path) || !strings.Contains(string(log), "NOTIFY_SOCKET=") {
		t.Fatalf("a worker inherited NOTIFY_SOCKET (or printed nothing):\n%s", log)
	}
}
