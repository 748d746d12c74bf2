package pool

import (
	"fmt"
	"syscall"
	"time"
)

// reapAll collects every exited child without blocking.
func (m *Master) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		m.onExit(pid, ws)
	}
}

func (m *Master) onExit(pid int, ws syscall.WaitStatus) {
	status := exitStatus(ws)
	if fn, ok := m.others[pid]; ok {
		delete(m.others, pid)
		fn(status)
		return
	}
	w := m.workers[pid]
	if w == nil {
		return // an orphan we adopted as subreaper: reaped, nothing more to do
	}
	delete(m.workers, pid)
	m.dirty = true
	if w.stopTimer != nil {
		w.stopTimer.Stop()
	}
	if w.promote != nil {
		w.promote.Stop()
	}
	// Whatever the worker left in its process group goes with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	m.scheduleOrphanScan()
	m.log.Printf("Reaped worker[%d] (status: %s) queues: %s", pid, status, w.queues)
	// A built-in worker that exits 0 has unregistered itself and requeued
	// anything it held; any other end needs the janitor.
	if w.builtin && m.janitor != nil && !(ws.Exited() && ws.ExitStatus() == 0) {
		m.janitor.WorkerExited(pid, w.queues, w.started)
	}
	if w.state == workerStopping || m.stopping != notStopping {
		return
	}
	g := m.groups[w.queues]
	if g == nil || g.fingerprint != w.fingerprint {
		return
	}
	g.lastExit = status
	if g.recycle.maxJobs > 0 && ws.Exited() && ws.ExitStatus() == 0 {
		// A worker of a max_jobs group that ends cleanly unasked has run
		// its jobs: a recycle, not a crash, however fast its jobs were.
		m.countRecycle(g, RecycleJobs)
		m.log.Printf("recycled worker[%d] (%s): jobs (max_jobs %d)", pid, w.queues, g.recycle.maxJobs)
		return
	}
	g.restarts++
	ran := time.Since(w.started)
	if ran < g.startAfter {
		m.failedStart(g, fmt.Sprintf("worker[%d] exited after %s (%s)", pid, ran.Round(time.Millisecond), status))
		return
	}
	g.failures = 0
}

// Orphan clean-up. Killing an adopted orphan can orphan its own children
// (in other sessions or groups), which the kernel then hands to the master
// too: a clean-up therefore rescans after every kill, until a scan finds
// nothing, within these bounds.
const (
	orphanScanDelay   = 50 * time.Millisecond // after a worker exit, and between rounds
	orphanRounds      = 20                    // scans per clean-up at most
	finalSweepTimeout = 5 * time.Second       // how long a stopping master waits for orphans to die
)

// scheduleOrphanScan arranges a clean-up of adopted orphans shortly after a
// burst of worker exits, instead of one scan per exit. A scan that finds
// orphans schedules another round, so that processes adopted only when
// those die are found too.
func (m *Master) scheduleOrphanScan() {
	m.orphanRound = 0 // a clean-up under way starts its count again
	if m.orphanDue {
		return
	}
	m.orphanDue = true
	m.orphansKilled = map[int]bool{}
	m.armOrphanScan()
}

func (m *Master) armOrphanScan() {
	time.AfterFunc(orphanScanDelay, func() {
		m.post(func() {
			m.reapAll()
			m.orphanRound++
			if m.killOrphans() > 0 && m.orphanRound < orphanRounds {
				m.armOrphanScan()
				return
			}
			if m.orphanRound >= orphanRounds {
				m.log.Printf("orphaned processes keep appearing after %d rounds of clean-up; scanning again after the next worker exit", orphanRounds)
			}
			m.orphanDue = false
		})
	})
}

// killOrphans kills the children of the master that it did not start (job
// processes and daemons of workers, reparented here because the master is
// a subreaper) together with their process groups. It returns how many
// such children are still there, dying or not yet reaped; 0 means the
// scan found none.
func (m *Master) killOrphans() int {
	kids, err := ownChildren()
	if err != nil {
		m.log.Printf("cannot look for orphaned processes: %v", err)
		return 0
	}
	ownGroup := syscall.Getpgrp()
	found := 0
	for _, pid := range kids {
		if _, ok := m.workers[pid]; ok {
			continue
		}
		if _, ok := m.others[pid]; ok {
			continue
		}
		found++
		pgid, zombie, ok := procGroup(pid)
		if !ok || zombie {
			continue // gone, or dead and waiting for reapAll
		}
		if !m.orphansKilled[pid] {
			m.orphansKilled[pid] = true
			m.log.Printf("killing orphaned process %d (left behind by a dead worker)", pid)
		}
		// Its whole group, unless that group is the master's own or a live
		// worker's (a worker's double-forked child stays in the worker's
		// group): those lose only this process.
		if _, isWorker := m.workers[pgid]; pgid > 1 && pgid != ownGroup && !isWorker {
			if _, isOther := m.others[pgid]; !isOther {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return found
}

// sweepOrphans is the clean-up of a stopping master: it kills adopted
// orphans and reaps them, round after round, until a scan finds none (or
// the bounds are reached), so that nothing of the pool survives the master
// and nothing is left a zombie.
func (m *Master) sweepOrphans() {
	deadline := time.Now().Add(finalSweepTimeout)
	m.orphansKilled = map[int]bool{}
	for round := 1; ; round++ {
		m.reapAll()
		left := m.killOrphans()
		if left == 0 {
			return
		}
		if round >= orphanRounds*10 || time.Now().After(deadline) {
			m.log.Printf("%d orphaned processes still not gone after %s; leaving them to init", left, finalSweepTimeout)
			return
		}
		// Give the killed processes a moment to die before reaping them.
		time.Sleep(orphanScanDelay / 5)
	}
}

// A stopping master waits for its workers' output to be read to its end
// while lines keep coming, up to outputDrainIdle without one (a pipe held
// open by something the orphan sweep could not end), and outputDrainMax
// in all (one that writes forever).
const (
	outputDrainIdle = 2 * time.Second
	outputDrainMax  = 30 * time.Second
)

// drainOutput waits until every worker's output has been copied into the
// log. A worker can exit with lines still in its pipe (up to the pipe's
// buffer, e.g. a stack dump at QUIT); a master that exited at the last
// reap closed its log before the last workers' lines were read. Each pipe
// ends once the worker and what it left behind are dead, which
// sweepOrphans has made sure of, so this waits only for the reading,
// which on a loaded host or a slow log disk can take seconds for many
// workers: a bound on the whole wait lost lines still being copied.
func (m *Master) drainOutput() {
	done := make(chan struct{})
	go func() {
		m.pumps.Wait()
		close(done)
	}()
	tick := time.NewTicker(outputDrainIdle / 20)
	defer tick.Stop()
	start := time.Now()
	seen, lastLine := m.log.workerLines(), start
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			if n := m.log.workerLines(); n != seen {
				seen, lastLine = n, now
			}
			if now.Sub(lastLine) < outputDrainIdle && now.Sub(start) < outputDrainMax {
				continue
			}
			m.log.Printf("workers' output still open %s after the last worker was reaped (%s without a line): the rest of it is not logged",
				now.Sub(start).Round(time.Millisecond), now.Sub(lastLine).Round(time.Millisecond))
			return
		}
	}
}
