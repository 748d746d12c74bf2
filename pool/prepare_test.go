package pool

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// runningIn counts the running workers of a queue list.
func runningIn(s *State, queues string) int {
	n := 0
	for _, w := range s.Workers {
		if w.Queues == queues && w.State == WorkerRunning {
			n++
		}
	}
	return n
}

// PrepareRedis (the master loading the workers' scripts once) runs with
// the pool's Redis before the first worker starts: here each worker
// checks for the hook's file at its start, and lives only if it found
// the URL there.
func TestPrepareRedisRunsOnceBeforeTheFirstWorker(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "prepared")
	const url = "redis://127.0.0.1:1/0" // never dialled: the hook only records it
	tm := startMasterWith(t, "redis: \""+url+"\"\nworkers: {foo: 2}\nstart_secs: 0.2\n"+
		"command: [\"sh\", \"-c\", \"grep -qxF '"+url+"' '"+marker+"' && exec sleep 1000\"]\n",
		envTestPrepareMarker+"="+marker)
	tm.waitState("2 workers running", func(s *State) bool { return runningIn(s, "foo") == 2 })
	if b, err := os.ReadFile(marker); err != nil || string(b) != url {
		t.Fatalf("hook's file = %q, %v; want the pool's Redis URL", b, err)
	}
	// Once per pool: a later spawn does not call it again.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	tm.writeConfig("redis: \"" + url + "\"\nworkers: {foo: 3}\ncommand: [\"sleep\", \"1000\"]\n")
	tm.signal(syscall.SIGHUP)
	tm.waitState("3 workers running", func(s *State) bool { return runningIn(s, "foo") == 3 })
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("PrepareRedis ran again after a reload (%v)", err)
	}
}
