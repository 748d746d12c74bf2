// Package embedredis gives a program a Redis when none is configured: the
// local one on 127.0.0.1:6379 if it answers, else a private redis-server
// on a unix socket in a directory of the caller's, else an in-process
// miniredis on a loopback port.
//
// It knows nothing of its host. A private redis-server is a child process
// of the caller, in a process group of its own and killed when the thread
// that started it dies; Server.PID tells the caller which process to reap.
package embedredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/redis/go-redis/v9"
)

// Embedded is the redis: value that forces a private Redis even when one
// answers on the default port.
const Embedded = "embedded"

// Options says where a private Redis keeps its files.
type Options struct {
	// Dir is the private redis-server's working directory; its log is
	// Dir/redis.log.
	Dir string
	// Socket is the unix socket the private redis-server listens on (at
	// most 100 bytes; no TCP port).
	Socket string
	// Private skips the Redis on the default port (redis: embedded).
	Private bool
	// Logf, when set, is told which Redis was chosen and why a fallback
	// was taken.
	Logf func(format string, args ...any)
}

// Server is the Redis that Start found or started.
type Server struct {
	// URL is where clients connect.
	URL string
	// PID is the private redis-server, a child of the caller, or 0 when
	// none was started. The caller may reap it when it exits; Stop copes
	// either way.
	PID  int
	stop func()
}

// Stop stops what Start started (nothing for the local Redis) and waits
// for it to end.
func (s *Server) Stop() {
	if s.stop != nil {
		s.stop()
	}
}

// Start finds or starts a Redis: the local one on 127.0.0.1:6379 unless
// o.Private, else a private redis-server in o.Dir, else an in-process
// miniredis. A private redis-server has the caller's thread as its parent
// for the parent-death signal: call Start from a goroutine locked to its
// thread for the server's life.
func Start(ctx context.Context, o Options) (*Server, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if !o.Private && answers(ctx, "127.0.0.1:6379") {
		logf("no Redis configured: using the local Redis at %s", redisconn.DefaultURL)
		return &Server{URL: redisconn.DefaultURL}, nil
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		srv, err := startServer(ctx, bin, o.Dir, o.Socket)
		if err == nil {
			logf("no Redis configured: using a private redis-server at %s; nothing persists", srv.URL)
			return srv, nil
		}
		logf("cannot start a private redis-server (%v); falling back to an in-process Redis", err)
	}
	mini, err := miniredis.Run() // listens on 127.0.0.1, a free port
	if err != nil {
		return nil, fmt.Errorf("start in-process Redis: %w", err)
	}
	srv := &Server{URL: "redis://" + mini.Addr() + "/0", stop: mini.Close}
	logf("no Redis configured: using a private in-memory Redis at %s; nothing persists", srv.URL)
	return srv, nil
}

func answers(ctx context.Context, addr string) bool {
	conn, err := (&net.Dialer{Timeout: 200 * time.Millisecond}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return ping(ctx, &redis.Options{Addr: addr})
}

func ping(ctx context.Context, o *redis.Options) bool {
	o.MaxRetries = -1
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

// startServer runs redis-server on the unix socket sock, with dir as its
// working directory, no TCP port and no persistence.
func startServer(ctx context.Context, bin, dir, sock string) (*Server, error) {
	if len(sock) > 100 {
		return nil, fmt.Errorf("socket path %s is too long for a unix socket", sock)
	}
	_ = os.Remove(sock)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	args := []string{bin,
		"--port", "0",
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no",
	}
	proc, err := os.StartProcess(bin, args, &os.ProcAttr{
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	pid := proc.Pid
	_ = proc.Release()
	srv := &Server{URL: "unix://" + sock, PID: pid, stop: func() {
		if !reaped(pid, 0) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			if !reaped(pid, 3*time.Second) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				reaped(pid, 3*time.Second)
			}
		}
		_ = os.Remove(sock)
	}}
	deadline := time.Now().Add(5 * time.Second)
	for !ping(ctx, &redis.Options{Network: "unix", Addr: sock}) {
		if time.Now().After(deadline) {
			srv.Stop()
			return nil, errors.New("redis-server did not answer on its socket within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv, nil
}

// reaped reaps pid once it has exited, waiting up to timeout, and reports
// whether it is gone: reaped now, or earlier by the caller's own reaper
// (then it is no child any more).
func reaped(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid || err == syscall.ECHILD {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
