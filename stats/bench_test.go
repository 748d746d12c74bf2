package stats

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
)

// BenchmarkSampleOnce is one sample of a pool of 100 workers (real
// processes) over 50 queues against a real redis-server: what the master
// pays every sample_interval. make bench's cockpit row is the same cost
// seen from outside.
func BenchmarkSampleOnce(b *testing.B) {
	s, q, _ := samplerFor(b, "")
	st := &poolfs.State{}
	for g := 0; g < 10; g++ {
		var qs []string
		for i := 0; i < 5; i++ {
			qs = append(qs, fmt.Sprintf("q%02d", g*5+i))
		}
		st.Groups = append(st.Groups, poolfs.GroupState{Queues: strings.Join(qs, ","), Desired: 10})
		for w := 0; w < 10; w++ {
			cmd := exec.Command("sleep", "600")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			st.Workers = append(st.Workers, poolfs.WorkerState{PID: cmd.Process.Pid, Queues: st.Groups[g].Queues, State: "running", Builtin: true})
		}
	}
	s.Observe(st)
	for i := 0; i < 50; i++ {
		if err := q.Enqueue(context.Background(), fmt.Sprintf("q%02d", i), payloads(3)...); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	for i := 0; i < 150; i++ { // a full published history
		now = now.Add(time.Second)
		s.sampleOnce(now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		s.sampleOnce(now)
	}
}
