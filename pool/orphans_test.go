package pool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

// escapeTreeScript is a worker that leaves a tree of processes which a
// kill of its own process group does not reach:
//
//   - daemon: a double fork through setsid (the intermediate shell exits
//     at once, so the sleep is adopted by the master while the worker
//     still runs);
//   - a chain p -> q -> r, each in a session of its own: only p is a
//     child of the master when the worker dies; q and r are adopted
//     later, when their parent is killed;
//   - o and its child c share a process group whose leader exited: o is
//     adopted, c is adopted only once o is gone, unless the whole group is
//     killed.
//
// Every process writes its pid to a file in DIR (given as $1).
const escapeTreeScript = `d=$1
if [ "$2" = chain ]; then
  name=$3; shift 3
  if [ $# -gt 0 ]; then setsid sh "$0" "$d" chain "$@" & fi
  echo $$ > "$d/$name.pid"; exec sleep 300
fi
setsid sh -c 'sleep 300 & echo $! > "$1/daemon.pid"' sh "$d"
setsid sh "$0" "$d" chain p q r &
setsid sh -c '(sleep 300 & echo $! > "$1/c.pid"; exec sleep 300) & echo $! > "$1/o.pid"' sh "$d"
exec sleep 300
`

var escapeTreeNames = []string{"daemon", "p", "q", "r", "o", "c"}

// startEscapeTree starts a master whose one worker runs escapeTreeScript
// and waits until every process of the tree has written its pid and
// exec'd sleep.
func startEscapeTree(t *testing.T) (*testMaster, int, map[string]testutil.Proc) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "worker.sh")
	if err := os.WriteFile(script, []byte(escapeTreeScript), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := startMaster(t, fmt.Sprintf(`
workers: {foo: 1}
command: ["sh", %q, %q]
start_secs: 0.1
term_timeout: 2s
`, script, dir))
	s := tm.waitState("1 running worker", func(s *State) bool { return len(s.Workers) == 1 && s.Workers[0].State == WorkerRunning })
	tree := map[string]testutil.Proc{}
	testutil.Eventually(t, 10*time.Second, "every process of the tree to start", func() bool {
		for _, name := range escapeTreeNames {
			if _, ok := tree[name]; ok {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
			if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
				return false
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("%s.pid holds %q", name, b)
			}
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			p, ok := testutil.ProcOf(pid)
			if !ok || !bytes.HasPrefix(cmdline, []byte("sleep\x00")) {
				return false
			}
			tree[name] = p
		}
		return true
	})
	return tm, s.Workers[0].PID, tree
}

// describeLeft names the processes of tree that still exist, with their
// state (Z = zombie) and parent.
func describeLeft(tree map[string]testutil.Proc) []string {
	var left []string
	for _, name := range escapeTreeNames {
		p := tree[name]
		if !p.Gone() {
			left = append(left, name+" ("+p.String()+")")
		}
	}
	return left
}

func TestOrphanTreeOfAKilledWorkerIsKilledAndReaped(t *testing.T) {
	tm, worker, tree := startEscapeTree(t)
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone entirely: killed and reaped by the master (a zombie still exists).
	var left []string
	testutil.Eventually(t, 10*time.Second, "the whole tree of the killed worker to be killed and reaped", func() bool {
		left = describeLeft(tree)
		return len(left) == 0
	})
	tm.waitState("a replacement worker", func(s *State) bool { return len(s.Workers) == 1 && s.Workers[0].PID != worker })
}

func TestGracefulQuitLeavesNothingOfAWorkersTree(t *testing.T) {
	tm, _, tree := startEscapeTree(t)
	tm.signal(syscall.SIGQUIT)
	tm.waitExit(15 * time.Second)
	if tm.Err() != nil {
		t.Errorf("master exit: %v, want status 0", tm.Err())
	}
	// The master reaps before it exits: once it has exited, nothing of the
	// tree may exist, not even as a zombie.
	if left := describeLeft(tree); len(left) > 0 {
		t.Errorf("left behind after the master exited: %s", strings.Join(left, ", "))
	}
}
