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
// (quorum 1, master down after 3 s), tied to a test. Down after 1 s let a
// loaded host's stall of a live master (or of the sentinel) start a
// failover no test asked for, after which Master and Replica no longer
// named the servers' roles; 3 s costs each KillMaster 2 s more.
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
		"sentinel down-after-milliseconds %[1]s 3000\n"+
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

	s.awaitReplica()
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
	s.awaitPromotion()
}

// KillMasterLagging is KillMaster with a replica that lags by lag: the
// replica is frozen (SIGSTOP) and its link to the master cut, so the
// master's writes of its last lag are never replicated, as when
// asynchronous replication is behind at a crash. Then the master is
// SIGKILLed, the replica thawed, and the promotion awaited.
func (s *Sentinel) KillMasterLagging(lag time.Duration) {
	s.tb.Helper()
	if err := s.Replica.Freeze(); err != nil {
		s.tb.Fatalf("redistest: freeze the replica: %v", err)
	}
	master := redis.NewClient(&redis.Options{Addr: s.Master.Addr(), MaxRetries: -1})
	err := master.Do(context.Background(), "CLIENT", "KILL", "TYPE", "replica").Err()
	_ = master.Close()
	if err != nil {
		_ = s.Replica.Thaw()
		s.tb.Fatalf("redistest: cut the replica's link: %v", err)
	}
	time.Sleep(lag)
	s.Master.Kill()
	if err := s.Replica.Thaw(); err != nil {
		s.tb.Fatalf("redistest: thaw the replica: %v", err)
	}
	s.awaitPromotion()
}

// awaitPromotion waits until the sentinel has promoted the replica of a
// dead master, and swaps Master and Replica.
func (s *Sentinel) awaitPromotion() {
	s.tb.Helper()
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

// Rejoin restarts the dead old master (Replica, after KillMaster) on its
// port as a replica of the master, and waits (up to 30 s) until it is in
// sync and the sentinel counts it as a connected replica again, so that
// another failover can promote it.
func (s *Sentinel) Rejoin() {
	s.tb.Helper()
	host, port, _ := net.SplitHostPort(s.Master.Addr())
	s.Replica.extra = []string{"--replicaof", host, port}
	if err := s.Replica.Restart(); err != nil {
		s.tb.Fatalf("redistest: restart the old master as a replica: %v", err)
	}
	s.awaitReplica()
}

// awaitReplica waits until the replica is in sync and the sentinel lists
// it as a connected replica of the master.
func (s *Sentinel) awaitReplica() {
	s.tb.Helper()
	ctx := context.Background()
	replica := redis.NewClient(&redis.Options{Addr: s.Replica.Addr(), MaxRetries: -1})
	defer replica.Close()
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr(), MaxRetries: -1})
	defer sentinel.Close()
	s.waitFor(30*time.Second, "the replica in sync and known to the sentinel", func() bool {
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return false
		}
		reps, err := sentinel.Replicas(ctx, SentinelMaster).Result()
		if err != nil {
			return false
		}
		for _, r := range reps {
			if r["port"] == strconv.Itoa(s.Replica.port) && !strings.Contains(r["flags"], "disconnected") && !strings.Contains(r["flags"], "s_down") {
				return true
			}
		}
		return false
	})
}

// Switchover has the sentinel fail over with the master alive (SENTINEL
// FAILOVER): the replica is promoted and the old master, still running,
// is made its replica, so clients still writing to it get READONLY. It
// waits (up to 30 s) until both have their new roles and the demoted
// master is in sync and known to the sentinel as a replica; Master and
// Replica are swapped.
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
	// Then the demoted master must be a replica the sentinel would
	// promote, for the next failover.
	s.awaitReplica()
}

func (s *Sentinel) waitFor(timeout time.Duration, what string, cond func() bool) {
	s.tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: no %s after %s\n%s", what, timeout, s.evidence())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// evidence is what a failed wait shows: each server's own view of its
// role and link, the sentinel's view of the master and its replicas, and
// the three logs. A CI-like run once timed out waiting for a rejoined
// replica with only 2 KB of the sentinel log to go on, which did not say
// which server was which.
func (s *Sentinel) evidence() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	for _, x := range []struct {
		name string
		p    *Process
	}{{"master", s.Master}, {"replica", s.Replica}} {
		rdb := redis.NewClient(&redis.Options{Addr: x.p.Addr(), MaxRetries: -1})
		info, err := rdb.Info(ctx, "replication").Result()
		_ = rdb.Close()
		fmt.Fprintf(&b, "%s %s: INFO replication: %s\n", x.name, x.p.Addr(), oneLine(info, err))
	}
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr(), MaxRetries: -1})
	defer sentinel.Close()
	addr, err := sentinel.GetMasterAddrByName(ctx, SentinelMaster).Result()
	fmt.Fprintf(&b, "sentinel: master %v (%v)\n", addr, err)
	reps, err := sentinel.Replicas(ctx, SentinelMaster).Result()
	for _, r := range reps {
		fmt.Fprintf(&b, "sentinel: replica %s:%s flags %s master-link-status %s master %s:%s role-reported %s\n",
			r["ip"], r["port"], r["flags"], r["master-link-status"], r["master-host"], r["master-port"], r["role-reported"])
	}
	if err != nil {
		fmt.Fprintf(&b, "sentinel: replicas: %v\n", err)
	}
	for _, x := range []struct {
		name string
		p    *Process
	}{{"sentinel", s.Sentinel}, {"master", s.Master}, {"replica", s.Replica}} {
		log, _ := os.ReadFile(filepath.Join(x.p.dir, "redis.log"))
		fmt.Fprintf(&b, "%s %s log:\n%s\n", x.name, x.p.Addr(), tail(string(log), 6000))
	}
	return b.String()
}

// oneLine is an INFO section on one line, or the error that replaced it.
func oneLine(info string, err error) string {
	if err != nil {
		return err.Error()
	}
	var kept []string
	for _, l := range strings.Split(info, "\r\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, " ")
}
