package pool

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// cmdlineOf is a process's argv as /proc shows it (nil once it is gone).
func cmdlineOf(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// A queue list given as a mapping runs its own command; the others keep
// the config's. Changing only that group's command on HUP replaces only
// its workers; changing its recycling settings replaces nobody.
func TestGroupCommandAndHUP(t *testing.T) {
	cfg := `
workers:
  foo: 1
  "bar:é/x":
    count: 2
    command: [sleep, "1001"]
    job_timeout: 5m
command: ["sleep", "1000"]
start_secs: 0.2
term_timeout: 2s
`
	tm := startMaster(t, cfg)
	st := tm.waitState("3 workers", func(s *State) bool { return len(s.Workers) == 3 })
	for _, w := range st.Workers {
		want := "1000"
		if w.Queues == "bar:é/x" {
			want = "1001"
		}
		if argv := cmdlineOf(w.PID); len(argv) != 2 || argv[1] != want {
			t.Fatalf("worker of %s runs %q, want sleep %s", w.Queues, argv, want)
		}
	}
	foo := pidsOf(st, "foo")

	tm.writeConfig(strings.Replace(cfg, "job_timeout: 5m", "job_timeout: 5m\n    max_rss: 500MB\n    max_lifetime: 6h", 1))
	tm.signal(syscall.SIGHUP)
	tm.waitLog("reloaded configuration")
	same := tm.waitState("settled", func(s *State) bool { return s.Settled() })
	if a, b := pidsOf(same, "bar:é/x"), pidsOf(st, "bar:é/x"); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("a recycling-only change replaced workers: %v -> %v", b, a)
	}

	tm.writeConfig(strings.Replace(cfg, `"1001"`, `"1002"`, 1))
	tm.signal(syscall.SIGHUP)
	after := tm.waitState("bar replaced", func(s *State) bool {
		bar := pidsOf(s, "bar:é/x")
		if !s.Settled() || len(bar) != 2 {
			return false
		}
		argv := cmdlineOf(bar[0])
		return len(argv) == 2 && argv[1] == "1002"
	})
	if got := pidsOf(after, "foo"); len(got) != 1 || got[0] != foo[0] {
		t.Fatalf("foo's worker changed when only bar's command did: %v -> %v", foo, got)
	}
}

// reply_ttl reaches every worker's environment (POOLCTL_REPLY_TTL), so a
// HUP that changes it replaces the workers, as for any setting they run
// with.
func TestHUPReplyTTLReplacesWorkers(t *testing.T) {
	cfg := `
workers:
  foo: 2
command: ["sleep", "1000"]
reply_ttl: 1h
start_secs: 0.2
term_timeout: 2s
`
	tm := startMaster(t, cfg)
	st := tm.waitState("2 workers", func(s *State) bool { return len(s.Workers) == 2 && s.Settled() })
	before := pidsOf(st, "foo")
	tm.writeConfig(strings.Replace(cfg, "reply_ttl: 1h", "reply_ttl: 2h", 1))
	tm.signal(syscall.SIGHUP)
	tm.waitState("foo replaced", func(s *State) bool {
		now := pidsOf(s, "foo")
		if !s.Settled() || len(now) != 2 {
			return false
		}
		for _, p := range now {
			if p == before[0] || p == before[1] {
				return false
			}
		}
		return true
	})
}
