package redistest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of private redis-server processes (masters
// only, no replicas), tied to a test.
type Cluster struct {
	Nodes []*Process
	tb    testing.TB
}

// StartCluster boots n cluster-enabled redis-servers on free loopback
// ports, joins them with `redis-cli --cluster create` (slots split evenly,
// no replicas) and waits until every node reports cluster_state:ok. It
// skips the test when redis-server or redis-cli is missing and stops the
// nodes when the test ends.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Skip("redistest: redis-cli not found in PATH: install the Debian package redis-tools")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Skip("redistest: " + ErrNoRedisServer.Error())
	}
	c := &Cluster{tb: tb}
	for i := 0; i < n; i++ {
		dir := filepath.Join(tb.TempDir(), "node"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.Fatal(err)
		}
		p, err := launchWith(dir, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
		if err != nil {
			tb.Fatalf("redistest: cluster node %d: %v", i, err)
		}
		tb.Cleanup(p.Stop)
		c.Nodes = append(c.Nodes, p)
	}
	args := []string{"--cluster", "create"}
	for _, p := range c.Nodes {
		args = append(args, p.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range c.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		for {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				rdb.Close()
				tb.Fatalf("redistest: cluster node %s not ok after 20 s: %v %s", p.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rdb.Close()
	}
	// Every node must also know every slot's owner, or a client's first
	// MOVED lands on a node still gossiping.
	for _, p := range c.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		for {
			shards, err := rdb.ClusterShards(ctx).Result()
			covered := int64(0)
			for _, sh := range shards {
				for _, r := range sh.Slots {
					covered += r.End - r.Start + 1
				}
			}
			if err == nil && covered == 16384 {
				break
			}
			if time.Now().After(deadline) {
				rdb.Close()
				tb.Fatalf("redistest: cluster node %s covers %d slots after 20 s: %v", p.Addr(), covered, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rdb.Close()
	}
	return c
}

// URL is the cluster's URL in the form redisconn opens as a Cluster:
// redis://FIRST?addr=SECOND&addr=THIRD.
func (c *Cluster) URL() string {
	var b strings.Builder
	b.WriteString("redis://" + c.Nodes[0].Addr())
	for i, p := range c.Nodes[1:] {
		if i == 0 {
			b.WriteString("?")
		} else {
			b.WriteString("&")
		}
		b.WriteString("addr=" + p.Addr())
	}
	return b.String()
}

// Client returns a cluster client over every node, closed when the test
// ends.
func (c *Cluster) Client() *redis.ClusterClient {
	addrs := make([]string, len(c.Nodes))
	for i, p := range c.Nodes {
		addrs[i] = p.Addr()
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	c.tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// launchWith boots a non-persistent redis-server in dir with extra
// arguments on a free port, retrying on a port lost to a race.
func launchWith(dir string, extra ...string) (*Process, error) {
	return launch(&Process{dir: dir, extra: extra})
}

// Kill ends the server with SIGKILL, as a crash or an OOM kill does, and
// waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	p.kill()
}
