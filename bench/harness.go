package main

import (
	"github.com/poolctl/poolctl/internal/proc"
	"github.com/poolctl/poolctl/pool/poolfs"

	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// env is what every scenario needs: the binary, a Redis, a scratch dir.
type env struct {
	bin  string
	srv  *redistest.Process
	rdb  *redis.Client
	tmp  string
	seq  int
	logf func(format string, args ...any)
}

var bg = context.Background()

// flush empties Redis between runs.
func (e *env) flush() error { return e.rdb.FlushAll(bg).Err() }

// master is one `poolctl master` process under test.
type master struct {
	e       *env
	cmd     *exec.Cmd
	pid     int
	cfgPath string
	runtime string
	log     string
	paths   poolfs.Paths
	stderr  bytes.Buffer
	done    chan struct{}
	known   map[int]bool // every worker pid seen, for the final clean-up
}

// workersConfig renders a config file: groups is "queue: count" lines.
func (e *env) config(groups map[string]int, order []string, extra string) string {
	var b strings.Builder
	b.WriteString("workers:")
	if len(order) == 0 {
		b.WriteString(" {}")
	}
	b.WriteString("\n")
	for _, q := range order {
		fmt.Fprintf(&b, "  %q: %d\n", q, groups[q])
	}
	fmt.Fprintf(&b, "redis: %s\n%s", e.srv.URL(), extra)
	return b.String()
}

// startMaster writes cfg and execs the master. It returns the time taken
// just before the exec.
func (e *env) startMaster(cfg string) (*master, time.Time, error) {
	e.seq++
	dir := filepath.Join(e.tmp, "pool"+strconv.Itoa(e.seq))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, time.Time{}, err
	}
	m := &master{e: e, cfgPath: filepath.Join(dir, "pool.yml"), runtime: filepath.Join(dir, "run"),
		log: filepath.Join(dir, "pool.log"), done: make(chan struct{}), known: map[int]bool{}}
	m.paths = poolfs.PathsFor(m.runtime, "bench")
	if err := os.WriteFile(m.cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, time.Time{}, err
	}
	m.cmd = exec.Command(e.bin, "master", "-c", m.cfgPath, "--name", "bench", "--log", m.log)
	m.cmd.Env = append(os.Environ(), "POOLCTL_RUNTIME_DIR="+m.runtime, "REDIS_URL=")
	m.cmd.Stderr = &m.stderr
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := m.cmd.Start(); err != nil {
		return nil, t0, err
	}
	m.pid = m.cmd.Process.Pid
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	return m, t0, nil
}

func (m *master) alive() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// state reads the state file; nil while there is none.
func (m *master) state() *poolfs.State {
	s, err := poolfs.ReadState(m.paths.State)
	if err != nil {
		return nil
	}
	for _, w := range s.Workers {
		m.known[w.PID] = true
	}
	return s
}

// reconfigure rewrites the config file and sends HUP; it returns the time
// of the signal.
func (m *master) reconfigure(cfg string) (time.Time, error) {
	if err := os.WriteFile(m.cfgPath, []byte(cfg), 0o600); err != nil {
		return time.Time{}, err
	}
	t0 := time.Now()
	return t0, syscall.Kill(m.pid, syscall.SIGHUP)
}

// stop shuts the master down (TERM, then KILL by pid) and kills any
// worker pid it ever reported that is still alive.
func (m *master) stop() {
	if m == nil {
		return
	}
	if m.alive() {
		_ = syscall.Kill(m.pid, syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(m.pid, syscall.SIGKILL)
			<-m.done
		}
	}
	for pid := range m.known {
		if procExists(pid) && ppidOf(pid) == 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (m *master) failure(what string) error {
	b, _ := os.ReadFile(m.log)
	s := string(b)
	if len(s) > 1500 {
		s = "…" + s[len(s)-1500:]
	}
	return fmt.Errorf("%s (master stderr: %q; log tail:\n%s)", what, m.stderr.String(), s)
}

var errTimeout = errors.New("timed out")

// pollUntil calls cond every ~1ms until it is true; it returns the time
// it first held.
func pollUntil(timeout time.Duration, cond func() bool) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, errTimeout
		}
		time.Sleep(time.Millisecond)
	}
}

// waitWorkers waits until the state file lists n live workers of settled
// groups, every one of them present in /proc, and (when registered) n ids
// in resque:workers. It returns the time both held.
func (m *master) waitWorkers(n int, registered bool, timeout time.Duration) (*poolfs.State, time.Time, error) {
	var st *poolfs.State
	t, err := pollUntil(timeout, func() bool {
		if registered && m.e.rdb.SCard(bg, "resque:workers").Val() != int64(n) {
			return false
		}
		st = m.state()
		if st == nil || len(st.Workers) != n || !st.Settled() {
			return false
		}
		for _, w := range st.Workers {
			if !procExists(w.PID) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, t, m.failure(fmt.Sprintf("waiting for %d workers (registered=%v)", n, registered))
	}
	return st, t, nil
}

// ---- /proc helpers ----

const clkTck = proc.ClockTicks

func procExists(pid int) bool {
	_, err := proc.ReadStat(pid)
	return err == nil
}

func ppidOf(pid int) int {
	st, _ := proc.ReadStat(pid)
	return st.PPID
}

// cpuTicks is utime+stime of pid in clock ticks (-1 when gone).
func cpuTicks(pid int) int64 {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return -1
	}
	return int64(st.CPUTicks)
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// rssBytes is VmRSS of pid.
func rssBytes(pid int) int64 { return statusBytes(pid, "VmRSS:") }

// statusBytes reads a kB field of /proc/PID/status.
func statusBytes(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
