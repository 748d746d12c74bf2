package masterd

import (
	"context"
	"slices"
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
// `sleep` workers took 1.08 s, 0.08 s without them). Five rounds, each
// closing at another point of the waits (100 to 700 ms in): the old Close
// took what was left of the poll, 900 down to 300 ms, a median of 600.
// The bound is on the median: a single Close can also take a loaded CI
// host's stall of a few hundred milliseconds, which says nothing about
// the waits.
func TestFleetMemberClosesWithoutWaitingOutItsPolls(t *testing.T) {
	srv := redistest.Start(t)
	took := make([]time.Duration, 5)
	for round := range took {
		paths := pool.Paths(poolfs.PathsFor(t.TempDir(), "close"))
		f, err := startFleetMember(srv.URL(), "resque:", paths, fleetOptions{host: "h", heartbeat: time.Second}, nil, nil, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the listener waiting in its blocking pop", func() bool {
			return strings.Contains(srv.Client().ClientList(context.Background()).Val(), "cmd=blmove")
		})
		time.Sleep(time.Duration(100+round*150) * time.Millisecond) // somewhere inside the 1 s polls
		start := time.Now()
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		took[round] = time.Since(start)
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	t.Logf("Close took %v", took)
	if median := sorted[len(sorted)/2]; median > 400*time.Millisecond {
		t.Errorf("Close took a median %s (%v), want well under the 1 s poll", median, took)
	}
}
