package embedredis

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// startPrivate starts a private redis-server in a fresh directory (short
// enough for a unix socket path).
func startPrivate(t *testing.T) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	// The parent-death signal follows the thread that forked the server.
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	dir, err := os.MkdirTemp("", "embedredis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var logged []string
	srv, err := Start(context.Background(), Options{
		Dir:     dir,
		Socket:  filepath.Join(dir, "redis.sock"),
		Private: true,
		Logf:    func(format string, _ ...any) { logged = append(logged, format) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if srv.PID <= 0 || !strings.HasPrefix(srv.URL, "unix://") {
		srv.Stop()
		t.Fatalf("Start = %+v, want a private redis-server on a unix socket (log: %q)", srv, logged)
	}
	return srv
}

func TestPrivateServerAnswersAndStops(t *testing.T) {
	srv := startPrivate(t)
	sock := strings.TrimPrefix(srv.URL, "unix://")
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		srv.Stop()
		t.Fatalf("ping %s: %v", srv.URL, err)
	}
	srv.Stop()
	if err := syscall.Kill(srv.PID, 0); err != syscall.ESRCH {
		t.Errorf("redis-server[%d] still there after Stop (kill 0: %v)", srv.PID, err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind (%v)", sock, err)
	}
}

// The host's reaper may collect the server before Stop runs: Stop must
// then neither wait nor signal the pid again.
func TestStopAfterTheCallerReapedTheServer(t *testing.T) {
	srv := startPrivate(t)
	if err := syscall.Kill(srv.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(srv.PID, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
}
