package redisconn

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
)

func TestOpenRejectsBadURLsWithoutLeakingPasswords(t *testing.T) {
	for url, want := range map[string]string{
		"bogus://:pw@x":                 "redis URL bogus://:xxxxx@x: redis: invalid URL scheme: bogus",
		"redis://:secret@host:notaport": "redis URL redis://:xxxxx@host:notaport: ",
		"":                              "redis URL : ",
	} {
		_, err := Open(url, Options{})
		if err == nil {
			t.Errorf("Open(%q) succeeded", url)
			continue
		}
		if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("Open(%q) error = %q, want prefix %q and no password", url, err, want)
		}
	}
}

func TestSentinelURLFindsTheMaster(t *testing.T) {
	master := redistest.Start(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	// A sentinel is redis-server in sentinel mode; it rewrites its config.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	host, mport, _ := net.SplitHostPort(master.Addr())
	cfg := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor pool %s %s 1\n", port, dir, host, mport)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := exec.Command(bin, conf, "--sentinel")
	sentinel.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sentinel.Process.Kill(); _ = sentinel.Wait() })

	url := fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=pool", port)
	rdb, err := Open(url, Options{Name: "sentinel-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	testutil.Eventually(t, 10*time.Second, "the sentinel to hand out the master", func() bool {
		return rdb.Set(ctx, "through-sentinel", "yes", 0).Err() == nil
	})
	if got := master.Client().Get(ctx, "through-sentinel").Val(); got != "yes" {
		t.Errorf("the master holds %q, want the value written through the sentinel", got)
	}
	if _, err := Open("redis://:pw@127.0.0.1:1/x?master_name=pool", Options{}); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("bad database in a sentinel URL: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, ok := range []string{"redis://127.0.0.1:6379/0", "rediss://h:6380", "unix:///tmp/r.sock", "redis://:pw@h:26379/0?master_name=m", "redis://h1:6379?addr=h2:6379"} {
		if err := Validate(ok); err != nil {
			t.Errorf("Validate(%q) = %v", ok, err)
		}
	}
	for url, want := range map[string]string{
		"http://x":                `redis URL http://x: scheme "http" is not one of redis://, rediss://, unix://`,
		"localhost:6379":          `redis URL localhost:6379: scheme "localhost" is not one of redis://, rediss://, unix://`,
		"127.0.0.1":               `redis URL 127.0.0.1: no scheme (want redis://HOST:PORT/DB, rediss://... or unix:///PATH)`,
		"redis://:secret@h:bad/0": `redis URL redis://:xxxxx@h:bad/0: parse "redis://:xxxxx@h:bad/0": invalid port ":bad" after host`,
		"redis://h:6379/x":        `redis URL redis://h:6379/x: redis: invalid database number: "x"`,
	} {
		err := Validate(url)
		if err == nil || err.Error() != want {
			t.Errorf("Validate(%q) = %v, want %s", url, err, want)
		}
	}
}

// A client name is a worker id, which holds queue names: any printable
// UTF-8. Redis refuses names with bytes outside '!'..'~' (and so every
// command of a connection whose CLIENT SETNAME failed): such bytes are
// replaced, so a worker of queue "q:ü/1" can talk to Redis.
func TestOpenClientNameRedisAccepts(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := Open(srv.URL(), Options{Name: "poolctl-worker:vm:1:q:ü/1,a b\tc"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	name, err := rdb.Do(ctx, "CLIENT", "GETNAME").Text()
	if err != nil || name != "poolctl-worker:vm:1:q:%C3%BC/1,a_b%09c" {
		t.Errorf("client name %q, %v", name, err)
	}
}

// A Lean client (a built-in worker's) runs its commands and its
// transactions on one named connection: go-redis would otherwise dial a
// second, from its pipeline pool, for the first MULTI. Its connections
// carry the client name all the same.
func TestLeanClientPipelinesOnItsOwnConnection(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, lean := range []bool{false, true} {
		name := fmt.Sprintf("lean-%v", lean)
		rdb, err := Open(srv.URL(), Options{Name: name, PoolSize: 2, Lean: lean})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		pipe := rdb.TxPipeline()
		pipe.Incr(ctx, "n")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		conns := strings.Count(srv.Client().ClientList(ctx).Val(), "name="+name+" ")
		rdb.Close()
		if want := map[bool]int{false: 2, true: 1}[lean]; conns != want {
			t.Errorf("Lean=%v: %d connections named %s after a command and a transaction, want %d", lean, conns, name, want)
		}
	}
}
