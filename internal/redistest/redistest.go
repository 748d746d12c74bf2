// Package redistest starts private redis-server processes for tests and
// tools (the benchmark harness).
//
// Every server listens on a free loopback port (never 6379) and keeps its
// data in a directory of the caller's; Start ties one to a test and stops
// it when the test ends, Launch leaves stopping to the caller.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoRedisServer says redis-server is not installed.
var ErrNoRedisServer = errors.New("redis-server not found in PATH: install the Debian package redis-server (apt-get install -y redis-server)")

// Process is a running private redis-server.
type Process struct {
	bin     string
	dir     string
	port    int
	persist bool
	conf    string   // a config file to start with (sentinels), "" for none
	extra   []string // more arguments (cluster or replica settings)
	cmd     *exec.Cmd
	done    chan struct{}
}

// Launch boots a redis-server with its data in dir; with persist, the
// append-only file is on so that the data survives Restart. The caller
// must Stop it.
func Launch(dir string, persist bool) (*Process, error) {
	return launch(&Process{dir: dir, persist: persist})
}

// launch boots p (its bin and port filled in here) on a free port,
// retrying on a port lost to a race.
func launch(p *Process) (*Process, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	p.bin = bin
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if p.port, err = freePort(); err != nil {
			return nil, err
		}
		if lastErr = p.boot(); lastErr == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("could not start redis-server: %w", lastErr)
}

func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 6379 {
			return port, nil
		}
	}
}

func (p *Process) boot() error {
	var args []string
	if p.conf != "" {
		args = append(args, p.conf) // redis-server wants its config file first
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(p.port),
		"--dir", p.dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--logfile", filepath.Join(p.dir, "redis.log"),
	)
	if p.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, p.extra...)
	cmd := exec.Command(p.bin, args...)
	// If our process dies, take the server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done

	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
			return fmt.Errorf("redis-server exited at start: %s", tail(string(log), 400))
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("redis-server on port %d did not answer PING: %w", p.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Addr is host:port of the server.
func (p *Process) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// URL is a redis:// URL for the server.
func (p *Process) URL() string { return "redis://" + p.Addr() + "/0" }

// PID is the server's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Restart stops the server and starts it again on the same port and data
// directory.
func (p *Process) Restart() error {
	p.Stop()
	var err error
	for i := 0; i < 50; i++ {
		if err = p.boot(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restart redis-server: %w", err)
}

// RestartEmpty stops the server, throws its data away and starts it again
// on the same port: a restart without persistence, as a Redis that lost
// its data (or never had any persistence) does.
func (p *Process) RestartEmpty() error {
	p.Stop()
	for _, f := range []string{"appendonlydir", "appendonly.aof", "dump.rdb"} {
		if err := os.RemoveAll(filepath.Join(p.dir, f)); err != nil {
			return fmt.Errorf("remove redis data: %w", err)
		}
	}
	return p.Restart()
}

// Freeze stops the server with SIGSTOP: connections stay open and
// commands hang, as in a stall longer than a client timeout. Thaw ends
// it.
func (p *Process) Freeze() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a server stopped by Freeze.
func (p *Process) Thaw() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Stop shuts the server down (TERM, then KILL after 5 s) and waits for it.
func (p *Process) Stop() {
	if p == nil || p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a frozen server cannot act on TERM
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

func (p *Process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Server is a Process tied to a test.
type Server struct {
	*Process
	tb testing.TB
}

// Option changes how a Server is started.
type Option func(*options)

type options struct{ persist bool }

// WithPersistence turns on the append-only file so that the data survives
// Restart.
func WithPersistence() Option { return func(o *options) { o.persist = true } }

// Start boots a redis-server for tb in a temporary directory and stops it
// when the test ends. It fails the test when redis-server is not
// installed.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	p, err := Launch(tb.TempDir(), o.persist)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(p.Stop)
	return &Server{Process: p, tb: tb}
}

// Client returns a new client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Restart stops the server and starts it again on the same port and data
// directory (use WithPersistence to keep the data); it fails the test if
// the server does not come back.
func (s *Server) Restart() {
	s.tb.Helper()
	if err := s.Process.Restart(); err != nil {
		s.tb.Fatalf("redistest: %v", err)
	}
}

// RestartEmpty is Process.RestartEmpty; it fails the test if the server
// does not come back.
func (s *Server) RestartEmpty() {
	s.tb.Helper()
	if err := s.Process.RestartEmpty(); err != nil {
		s.tb.Fatalf("redistest: %v", err)
	}
}
