package masterd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/pool/poolfs"
)

// A stopping master closes its fleet membership last, after every worker
// is reaped: it must not sit out the listener's one-second blocking pop
// and broadcast wait, which were most of a pool's stop (QUIT of 100
// `sleep` workers took 1.08 s, 0.08 s without them). Three rounds, each
// closing at a random point of the waits: the old Close took 0–1 s.
func TestFleetMemberClosesWithoutWaitingOutItsPolls(t *testing.T) {
	srv := redistest.Start(t)
	for round := 0; round < 3; round++ {
		paths := pool.Paths(poolfs.PathsFor(t.TempDir(), "close"))
		f, err := startFleetMember(srv.URL(), "resque:", paths, fleetOptions{host: "h", heartbeat: time.Second}, nil, nil, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the listener waiting in its blocking pop", func() bool {
			return strings.Contains(srv.Client().ClientList(context.Background()).Val(), "cmd=blmove")
		})
		time.Sleep(time.Duration(100+round*300) * time.Millisecond) // somewhere inside the 1 s polls
		start := time.Now()
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Errorf("round %d: Close took %s, want well under the 1 s poll", round, d)
		}
	}
}
