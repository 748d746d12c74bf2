package pool

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"
)

// slowWriter is a log destination that takes a while per line, as a log
// on a slow disk, or a master descheduled on a loaded host, does.
type slowWriter struct {
	testutil.Buffer
	delay time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return w.Buffer.Write(p)
}

// drainMaster is a master reduced to what drainOutput uses: its logger
// and its pumps.
func drainMaster(out io.Writer) *Master {
	return &Master{log: &Logger{out: out, pid: 1, now: time.Now, errOutput: io.Discard}}
}

// A stopping master logs every line its reaped workers left in their
// pipes, however long the copying takes while lines keep coming: here
// 3 s of them, more than the drain's 2 s bound on silence. (It gave up
// after 2 s in all, losing the rest, when a loaded CI host made 60
// workers' last lines slow to copy.)
func TestDrainOutputWaitsWhileLinesFlow(t *testing.T) {
	out := &slowWriter{delay: 5 * time.Millisecond}
	m := drainMaster(out)
	const workers, lines = 3, 200 // 600 lines at 5 ms: 3 s
	for pid := 1; pid <= workers; pid++ {
		var b strings.Builder
		for i := 1; i <= lines; i++ {
			fmt.Fprintf(&b, "line %d of %d\n", i, pid)
		}
		m.pumps.Add(1)
		go func() {
			defer m.pumps.Done()
			m.log.pump(pid, strings.NewReader(b.String()))
		}()
	}
	m.drainOutput()
	got := out.String()
	for pid := 1; pid <= workers; pid++ {
		if last := fmt.Sprintf("poolctl-worker[%d]: line %d of %d\n", pid, lines, pid); !strings.Contains(got, last) {
			t.Errorf("worker %d's last line is not in the log (%d lines logged of %d)", pid, strings.Count(got, "\n"), workers*lines)
		}
	}
}

// A pipe that stays open and silent (something the orphan sweep could
// not end still holds it) is waited for only outputDrainIdle, and the log
// says so.
func TestDrainOutputGivesUpOnASilentPipe(t *testing.T) {
	out := &slowWriter{}
	m := drainMaster(out)
	r, w := io.Pipe()
	defer w.Close()
	m.pumps.Add(1)
	go func() {
		defer m.pumps.Done()
		m.log.pump(7, r)
	}()
	if _, err := io.WriteString(w, "still here\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.drainOutput()
	if took := time.Since(start); took < outputDrainIdle || took > outputDrainIdle+5*time.Second {
		t.Errorf("drainOutput returned after %s on a silent open pipe, want about %s", took, outputDrainIdle)
	}
	if got := out.String(); !strings.Contains(got, "poolctl-worker[7]: still here\n") || !strings.Contains(got, "the rest of it is not logged") {
		t.Errorf("log:\n%s", got)
	}
}
