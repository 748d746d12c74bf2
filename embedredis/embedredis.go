// Package embedredis gives a pool a Redis when none is configured: the
// local one on 127.0.0.1:6379 if it answers, else a private redis-server
// on a unix socket in the pool's runtime directory (killed with the
// master), else an in-process miniredis on a loopback port.
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
	"github.com/poolctl/poolctl/pool"
	"github.com/poolctl/poolctl/redisconn"
	"github.com/redis/go-redis/v9"
)

// Embedded is the redis: value that forces a private Redis even when one
// answers on the default port.
const Embedded = "embedded"

// Resolve is a pool.Options.RedisResolver.
func Resolve(ctx context.Context, configured string, m *pool.Master) (string, func(), error) {
	switch {
	case configured != "" && configured != Embedded:
		return configured, nil, nil
	case configured == "" && answers(ctx, "127.0.0.1:6379"):
		m.Log().Printf("no Redis configured: using the local Redis at %s", redisconn.DefaultURL)
		return redisconn.DefaultURL, nil, nil
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		url, stop, err := startServer(ctx, bin, m)
		if err == nil {
			m.Log().Printf("no Redis configured: using a private redis-server at %s; nothing persists", url)
			return url, stop, nil
		}
		m.Log().Printf("cannot start a private redis-server (%v); falling back to an in-process Redis", err)
	}
	srv, err := miniredis.Run() // listens on 127.0.0.1, a free port
	if err != nil {
		return "", nil, fmt.Errorf("start in-process Redis: %w", err)
	}
	url := "redis://" + srv.Addr() + "/0"
	m.Log().Printf("no Redis configured: using a private in-memory Redis at %s; nothing persists", url)
	return url, srv.Close, nil
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

// startServer runs redis-server on a unix socket in the runtime directory,
// with no TCP port and no persistence. The caller is the master's event
// loop goroutine, which holds its OS thread for life, so the parent-death
// signal stays armed.
func startServer(ctx context.Context, bin string, m *pool.Master) (string, func(), error) {
	paths := m.Paths()
	sock := paths.Redis
	if len(sock) > 100 {
		return "", nil, fmt.Errorf("socket path %s is too long for a unix socket", sock)
	}
	_ = os.Remove(sock)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return "", nil, err
	}
	defer devnull.Close()
	args := []string{bin,
		"--port", "0",
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", paths.Dir,
		"--logfile", filepath.Join(paths.Dir, "redis.log"),
		"--daemonize", "no",
	}
	proc, err := os.StartProcess(bin, args, &os.ProcAttr{
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	pid := proc.Pid
	_ = proc.Release()
	exited := make(chan string, 1)
	stopping := false
	m.Adopt(pid, func(status string) {
		exited <- status
		if !stopping {
			m.Log().Printf("private redis-server[%d] exited (%s): workers cannot reach Redis until the pool restarts", pid, status)
		}
	})
	stop := func() {
		stopping = true
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if !waitPid(pid, exited, 3*time.Second) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitPid(pid, exited, 3*time.Second)
		}
		_ = os.Remove(sock)
	}
	url := "unix://" + sock
	deadline := time.Now().Add(5 * time.Second)
	for !ping(ctx, &redis.Options{Network: "unix", Addr: sock}) {
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("redis-server did not answer on its socket within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return url, stop, nil
}

// waitPid reaps pid once it exits, whether the master's reaper saw it
// first (exited receives) or this call does.
func waitPid(pid int, exited <-chan string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return true
		default:
		}
		var ws syscall.WaitStatus
		if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid || err == syscall.ECHILD {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
