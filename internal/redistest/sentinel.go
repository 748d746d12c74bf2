package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the Sentinel set-up monitors.
const SentinelMaster = "pool"

// Sentinel is a master, one replica of it and one sentinel watching them
// (quorum 1, master down after 1 s), tied to a test.
type Sentinel struct {
	Master   *Process
	Replica  *Process
	Sentinel *Process
	tb       testing.TB
}

// StartSentinel boots a master, a replica and a sentinel on free loopback
// ports and waits until the replica is in sync and the sentinel knows it
// (so that a failover can promote it). It skips the test when
// redis-server is missing and stops every process when the test ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Skip("redistest: " + ErrNoRedisServer.Error())
	}
	s := &Sentinel{tb: tb}
	var err error
	if s.Master, err = launchWith(subdir(tb, "master")); err != nil {
		tb.Fatalf("redistest: sentinel master: %v", err)
	}
	tb.Cleanup(s.Master.Stop)
	mhost, mport, _ := net.SplitHostPort(s.Master.Addr())
	if s.Replica, err = launchWith(subdir(tb, "replica"), "--replicaof", mhost, mport); err != nil {
		tb.Fatalf("redistest: sentinel replica: %v", err)
	}
	tb.Cleanup(s.Replica.Stop)

	dir := subdir(tb, "sentinel")
	conf := filepath.Join(dir, "sentinel.conf")
	// The sentinel rewrites its config file: it must be writable.
	cfg := fmt.Sprintf("sentinel monitor %s %s %s 1\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 3000\n"+
		"sentinel parallel-syncs %[1]s 1\n", SentinelMaster, mhost, mport)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	bin, _ := exec.LookPath("redis-server")
	s.Sentinel = &Process{bin: bin, dir: dir, conf: conf, extra: []string{"--sentinel"}}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.Sentinel.port, err = freePort(); err != nil {
			tb.Fatal(err)
		}
		if lastErr = s.Sentinel.boot(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("redistest: sentinel: %v", lastErr)
	}
	tb.Cleanup(s.Sentinel.Stop)

	ctx := context.Background()
	replica := redis.NewClient(&redis.Options{Addr: s.Replica.Addr(), MaxRetries: -1})
	defer replica.Close()
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr(), MaxRetries: -1})
	defer sentinel.Close()
	s.waitFor(20*time.Second, "the replica in sync and known to the sentinel", func() bool {
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return false
		}
		reps, err := sentinel.Replicas(ctx, SentinelMaster).Result()
		if err != nil {
			return false
		}
		for _, r := range reps {
			if r["port"] == strconv.Itoa(s.Replica.port) && !strings.Contains(r["flags"], "disconnected") {
				return true
			}
		}
		return false
	})
	return s
}

// StartReplica boots a redis-server replicating master and waits until it
// is in sync; it stops when the test ends. Promote it with REPLICAOF NO
// ONE; until then, writes to it are refused with READONLY.
func StartReplica(tb testing.TB, master *Process) *Server {
	tb.Helper()
	host, port, _ := net.SplitHostPort(master.Addr())
	p, err := launchWith(subdir(tb, "replica"), "--replicaof", host, port)
	if err != nil {
		tb.Fatalf("redistest: replica: %v", err)
	}
	tb.Cleanup(p.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := rdb.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return &Server{Process: p, tb: tb}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: replica of %s not in sync after 20 s: %v", master.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func subdir(tb testing.TB, name string) string {
	dir := filepath.Join(tb.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// URL is the Sentinel URL of the set-up's master, in the form redisconn
// opens: redis://SENTINEL/0?master_name=pool.
func (s *Sentinel) URL() string {
	return "redis://" + s.Sentinel.Addr() + "/0?master_name=" + SentinelMaster
}

// MasterAddr is the master's address as the sentinel hands it out now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr(), MaxRetries: -1})
	defer sentinel.Close()
	hp, err := sentinel.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// KillMaster SIGKILLs the master, as a crash does, and waits (up to 30 s)
// until the sentinel has promoted the replica: the sentinel hands out the
// replica's address and the replica answers ROLE as a master. Master and
// Replica are swapped; the old master stays down.
func (s *Sentinel) KillMaster() {
	s.tb.Helper()
	s.Master.Kill()
	ctx := context.Background()
	promoted := redis.NewClient(&redis.Options{Addr: s.Replica.Addr(), MaxRetries: -1})
	defer promoted.Close()
	s.waitFor(30*time.Second, "the sentinel to promote the replica", func() bool {
		addr, err := s.MasterAddr(ctx)
		if err != nil || addr != s.Replica.Addr() {
			return false
		}
		role, err := promoted.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	s.Master, s.Replica = s.Replica, s.Master
}

// Switchover has the sentinel fail over with the master alive (SENTINEL
// FAILOVER): the replica is promoted and the old master, still running,
// is made its replica, so clients still writing to it get READONLY. It
// waits (up to 30 s) until both have their new roles; Master and Replica
// are swapped.
func (s *Sentinel) Switchover() {
	s.tb.Helper()
	ctx := context.Background()
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr(), MaxRetries: -1})
	defer sentinel.Close()
	if err := sentinel.Failover(ctx, SentinelMaster).Err(); err != nil {
		s.tb.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	promoted := redis.NewClient(&redis.Options{Addr: s.Replica.Addr(), MaxRetries: -1})
	defer promoted.Close()
	demoted := redis.NewClient(&redis.Options{Addr: s.Master.Addr(), MaxRetries: -1})
	defer demoted.Close()
	s.waitFor(30*time.Second, "the switchover", func() bool {
		addr, err := s.MasterAddr(ctx)
		if err != nil || addr != s.Replica.Addr() {
			return false
		}
		p, err := promoted.Do(ctx, "ROLE").Slice()
		if err != nil || len(p) == 0 || p[0] != "master" {
			return false
		}
		d, err := demoted.Do(ctx, "ROLE").Slice()
		return err == nil && len(d) > 0 && d[0] == "slave"
	})
	s.Master, s.Replica = s.Replica, s.Master
}

func (s *Sentinel) waitFor(timeout time.Duration, what string, cond func() bool) {
	s.tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Sentinel.dir, "redis.log"))
			s.tb.Fatalf("redistest: no %s after %s; sentinel log:\n%s", what, timeout, tail(string(log), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
