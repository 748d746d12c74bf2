package pool

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

// Under systemd (Type=notify, WatchdogSec=): READY=1 only once the first
// workers are spawned, a STATUS line with the counts, watchdog pings from
// the event loop, RELOADING=1 then READY=1 around a HUP, STOPPING=1 on
// QUIT; and the workers do not inherit the socket.
func TestMasterSpeaksSystemdNotify(t *testing.T) {
	ns := testutil.ListenNotify(t)
	cfg := strings.Replace(sleepConfig, `command: ["sleep", "1000"]`, `command: ["sh", "-c", "echo NOTIFY_SOCKET=$NOTIFY_SOCKET; exec sleep 1000"]`, 1)
	tm := startMasterWith(t, cfg, "NOTIFY_SOCKET="+ns.Path, "WATCHDOG_USEC=200000")
	tm.waitState("5 workers", func(s *State) bool { return len(s.Workers) == 5 })
	testutil.Eventually(t, 15*time.Second, "READY=1", func() bool { return ns.Index("READY=1", 0) >= 0 })
	ready := ns.Index("READY=1", 0)
	if st := ns.Index("STATUS=", 0); st < 0 || st > ready || !strings.Contains(ns.All()[st], "workers live") {
		t.Fatalf("want a STATUS line with the counts before READY=1: %q", ns.All())
	}
	testutil.Eventually(t, 15*time.Second, "two watchdog pings", func() bool {
		first := ns.Index("WATCHDOG=1", 0)
		return first >= 0 && ns.Index("WATCHDOG=1", first+1) >= 0
	})
	testutil.Eventually(t, 15*time.Second, "status 5 of 5", func() bool {
		for _, m := range ns.All() {
			if strings.Contains(m, "STATUS=running: 5 of 5 workers live") {
				return true
			}
		}
		return false
	})

	mark := len(ns.All())
	tm.signal(syscall.SIGHUP)
	testutil.Eventually(t, 15*time.Second, "RELOADING=1 then READY=1", func() bool {
		r := ns.Index("RELOADING=1", mark)
		return r >= 0 && ns.Index("READY=1", r+1) >= 0
	})
	if m := ns.All()[ns.Index("RELOADING=1", mark)]; !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m)
	}

	tm.signal(syscall.SIGQUIT)
	tm.waitExit(15 * time.Second)
	if ns.Index("STOPPING=1", mark) < 0 {
		t.Fatalf("no STOPPING=1: %q", ns.All())
	}
	log, _ := os.ReadFile(tm.log)
	if strings.Contains(string(log), "NOTIFY_SOCKET="+ns.Path) || !strings.Contains(string(log), "NOTIFY_SOCKET=") {
		t.Fatalf("a worker inherited NOTIFY_SOCKET (or printed nothing):\n%s", log)
	}
}
