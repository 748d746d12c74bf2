package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// scaleRows are issue 16's "1,000 sleep workers" row and its "0 → 100
// and stop 100 against the machine's floor" row. The floor is measured in
// the same run as poolctl, and the ratio rows compare each run with its
// own floor.
func scaleRows(z sizes) []row {
	n, big := z.Workers, z.Scale
	return []row{
		{key: "floor_start_small", label: fmt.Sprintf("floor: %d serial os/exec starts of `sleep`", n), unit: "s", info: true},
		{key: "floor_stop_small", label: fmt.Sprintf("  … TERM + reap of those %d", n), unit: "s", info: true},
		{key: "floor_start_big", label: fmt.Sprintf("floor: %d serial os/exec starts of `sleep`", big), unit: "s", info: true},
		{key: "floor_stop_big", label: fmt.Sprintf("  … TERM + reap of those %d", big), unit: "s", info: true},
		{key: "scale_spawn_small", label: fmt.Sprintf("0 → %d `sleep` workers (HUP), same run as the floor", n), unit: "s", info: true},
		{key: "scale_spawn_small_x", label: "  … as a multiple of the floor's starts", unit: "×", target: "≤ 1.25×", limit: 1.25},
		{key: "scale_stop_small", label: fmt.Sprintf("stop %d `sleep` workers (TERM to the master, until all are reaped)", n), unit: "s", info: true},
		{key: "scale_stop_small_x", label: "  … as a multiple of the floor's TERM + reap", unit: "×", target: "≤ 2×", limit: 2},
		{key: "scale_spawn_big", label: fmt.Sprintf("0 → %d `sleep` workers (HUP; state + /proc)", big), unit: "s", target: "≤ 0.6 s", limit: 0.6},
		{key: "scale_spawn_big_x", label: "  … as a multiple of the floor's starts", unit: "×", info: true},
		{key: "scale_spawn_big_per", label: fmt.Sprintf("  … time per worker, as a multiple of the %d-worker time per worker", n), unit: "×", info: true},
		{key: "scale_cpu_spawn", label: "  … master CPU per worker, HUP until every worker is promoted", unit: "ms", info: true, zeroOK: true},
		{key: "scale_writes_spawn", label: "  … state-file writes during the spawn", unit: "count", info: true, zeroOK: true},
		{key: "scale_writes_rate", label: "  … state-file writes/s, HUP until every worker is promoted", unit: "/s", info: true, zeroOK: true},
		{key: "scale_state_kb", label: "  … state file size", unit: "KiB", info: true},
		{key: "scale_idle_cpu", label: fmt.Sprintf("master, %d idle `sleep` workers, %s: CPU", big, z.ScaleIdle), unit: "%", info: true, zeroOK: true},
		{key: "scale_rss", label: "  … master RSS", unit: "MiB", info: true},
		{key: "scale_status", label: fmt.Sprintf("`status --json`, %d workers, in a running shell", big), unit: "ms", target: "≤ 50 ms", limit: 50},
		{key: "scale_status_kb", label: "  … its size", unit: "KiB", info: true},
		{key: "scale_quit", label: fmt.Sprintf("QUIT, %d `sleep` workers, until every process is gone", big), unit: "s", target: "≤ 0.3 s", limit: 0.3},
	}
}

// scale measures the floor (a plain serial os/exec loop starting `sleep`,
// then TERM to all and reap) for the small and the big size, then the
// same with poolctl: a HUP from 0 to N `sleep` workers, stop; and at the
// big size the state file, the idle master, `status --json` and QUIT.
func scale(e *env, z sizes, _ int) ([]metric, error) {
	n, big := z.Workers, z.Scale
	var out []metric
	fs, ft, err := floor(n)
	if err != nil {
		return nil, err
	}
	fbs, fbt, err := floor(big)
	if err != nil {
		return nil, err
	}
	out = append(out,
		metric{key: "floor_start_small", value: fs.Seconds()}, metric{key: "floor_stop_small", value: ft.Seconds()},
		metric{key: "floor_start_big", value: fbs.Seconds()}, metric{key: "floor_stop_big", value: fbt.Seconds()})

	// 0 → n and stop n.
	sp, err := scaleSleepPool(e, n)
	if err != nil {
		return nil, err
	}
	stopT, err := sp.stopAll(syscall.SIGTERM)
	if err != nil {
		return nil, err
	}
	out = append(out,
		metric{key: "scale_spawn_small", value: sp.spawn.Seconds()},
		metric{key: "scale_spawn_small_x", value: sp.spawn.Seconds() / fs.Seconds()},
		metric{key: "scale_stop_small", value: stopT.Seconds()},
		metric{key: "scale_stop_small_x", value: stopT.Seconds() / ft.Seconds()})

	// 0 → big, and the rest at that size.
	bp, err := scaleSleepPool(e, big)
	if err != nil {
		return nil, err
	}
	defer bp.m.stop()
	out = append(out,
		metric{key: "scale_spawn_big", value: bp.spawn.Seconds()},
		metric{key: "scale_spawn_big_x", value: bp.spawn.Seconds() / fbs.Seconds()},
		metric{key: "scale_spawn_big_per", value: (bp.spawn.Seconds() / float64(big)) / (sp.spawn.Seconds() / float64(n))},
		metric{key: "scale_cpu_spawn", value: bp.cpuPromoted * 1000 / float64(big)},
		metric{key: "scale_writes_spawn", value: float64(bp.writesSpawn)},
		metric{key: "scale_writes_rate", value: float64(bp.writesPromoted) / bp.promoted.Seconds()})
	if fi, err := os.Stat(bp.m.paths.State); err == nil {
		out = append(out, metric{key: "scale_state_kb", value: float64(fi.Size()) / 1024})
	}
	m := bp.m
	c0, t0 := cpuTicks(m.pid), time.Now()
	time.Sleep(z.ScaleIdle)
	c1, el := cpuTicks(m.pid), time.Since(t0)
	out = append(out,
		metric{key: "scale_idle_cpu", value: float64(c1-c0) / clkTck / el.Seconds() * 100},
		metric{key: "scale_rss", value: float64(rssBytes(m.pid)) / (1 << 20)})
	st, err := statusInShell(e, m.runtime, big, z.Runs)
	if err != nil {
		return nil, err
	}
	for _, x := range st {
		if x.key == "status_shell" {
			out = append(out, metric{key: "scale_status", value: x.value})
		}
		if x.key == "status_bytes" {
			out = append(out, metric{key: "scale_status_kb", value: x.value / 1024})
		}
	}
	q, err := bp.stopAll(syscall.SIGQUIT)
	if err != nil {
		return nil, err
	}
	return append(out, metric{key: "scale_quit", value: q.Seconds()}), nil
}

// floor starts n `sleep` processes one after the other with os/exec (each
// Start returns once the exec happened), then sends TERM to all of them
// and reaps them: the least any process manager can take on this machine.
func floor(n int) (start, stop time.Duration, err error) {
	cmds := make([]*exec.Cmd, 0, n)
	defer func() {
		for _, c := range cmds {
			if c.ProcessState == nil {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		c := exec.Command("sleep", "1000")
		if err := c.Start(); err != nil {
			return 0, 0, fmt.Errorf("floor: start sleep %d: %w", i+1, err)
		}
		cmds = append(cmds, c)
	}
	start = time.Since(t0)
	t1 := time.Now()
	for _, c := range cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range cmds {
		_ = c.Wait()
	}
	return start, time.Since(t1), nil
}

// sleepPool is a master brought from 0 to n `sleep` workers by a HUP.
type sleepPool struct {
	m              *master
	pids           map[int]string
	spawn          time.Duration // HUP until n live workers exec'd into sleep
	writesSpawn    int           // state-file replacements during spawn
	promoted       time.Duration // HUP until every worker is "running"
	writesPromoted int           // state-file replacements during promoted
	cpuPromoted    float64       // master CPU seconds during promoted
}

func scaleSleepPool(e *env, n int) (*sleepPool, error) {
	m, _, err := e.startMaster(e.config(nil, nil, sleepCommand))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.stop()
		}
	}()
	if _, err := pollUntil(10*time.Second, func() bool { return m.state() != nil }); err != nil {
		return nil, m.failure("no state file")
	}
	time.Sleep(200 * time.Millisecond)
	writes, stopCount, err := countRenames(filepath.Dir(m.paths.State), filepath.Base(m.paths.State))
	if err != nil {
		return nil, err
	}
	defer stopCount()
	execd := map[int]bool{}
	c0 := cpuTicks(m.pid)
	t0, err := m.reconfigure(e.config(map[string]int{"foo": n}, []string{"foo"}, sleepCommand))
	if err != nil {
		return nil, err
	}
	var st = m.state()
	t1, err := pollUntil(60*time.Second, func() bool {
		st = m.state()
		if st == nil || len(st.Workers) != n || len(st.Groups) != 1 || st.Groups[0].Live != n {
			return false
		}
		for _, w := range st.Workers {
			if !execd[w.PID] {
				if comm(w.PID) != "sleep" {
					return false
				}
				execd[w.PID] = true
			}
		}
		return true
	})
	if err != nil {
		return nil, m.failure("sleep workers did not come up")
	}
	// The write that showed the workers is queued in inotify by now; let
	// the reader goroutine count it.
	_, _ = pollUntil(200*time.Millisecond, func() bool { return writes.Load() > 0 })
	p := &sleepPool{m: m, pids: pidsOf(st), spawn: t1.Sub(t0), writesSpawn: int(writes.Load())}
	t2, err := pollUntil(60*time.Second, func() bool {
		st := m.state()
		if st == nil || len(st.Workers) != n {
			return false
		}
		for _, w := range st.Workers {
			if w.State != "running" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, m.failure("sleep workers were not promoted to running")
	}
	p.promoted, p.writesPromoted = t2.Sub(t0), int(writes.Load())
	p.cpuPromoted = float64(cpuTicks(m.pid)-c0) / clkTck
	ok = true
	return p, nil
}

// stopAll sends sig to the master and times until it has exited and none
// of its workers is left in /proc (reaped).
func (p *sleepPool) stopAll(sig syscall.Signal) (time.Duration, error) {
	t0 := time.Now()
	if err := syscall.Kill(p.m.pid, sig); err != nil {
		return 0, err
	}
	t1, err := pollUntil(30*time.Second, func() bool {
		if p.m.alive() {
			return false
		}
		for pid := range p.pids {
			if procExists(pid) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return 0, p.m.failure(fmt.Sprintf("%s did not end every process", signalText(sig)))
	}
	return t1.Sub(t0), nil
}

func signalText(sig syscall.Signal) string { return unix.SignalName(sig) }

// countRenames counts the files renamed to name in dir (an atomic replace
// of the state file is one rename) until stop is called. It uses inotify,
// so no replacement is missed however fast they come.
func countRenames(dir, name string) (count *atomic.Int64, stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	// A non-blocking fd in an *os.File goes through the poller, so Close
	// ends the blocked Read.
	f := os.NewFile(uintptr(fd), "inotify")
	count = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			k, err := f.Read(buf)
			if err != nil {
				return
			}
			for b := buf[:k]; len(b) >= unix.SizeofInotifyEvent; {
				l := binary.NativeEndian.Uint32(b[12:16])
				end := unix.SizeofInotifyEvent + int(l)
				if end > len(b) {
					break
				}
				if string(bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")) == name {
					count.Add(1)
				}
				b = b[end:]
			}
		}
	}()
	return count, func() { f.Close(); <-done }, nil
}
