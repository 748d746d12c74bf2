package pool

import (
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/spec"
)

var planNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func grp(queues string, desired int, fingerprint string) *group {
	return &group{queues: queues, desired: desired, fingerprint: fingerprint}
}

// wk is a worker of queues started age ago.
func wk(pid int, queues, fingerprint string, age time.Duration, st workerState) *worker {
	return &worker{pid: pid, queues: queues, fingerprint: fingerprint, started: planNow.Add(-age), state: st}
}

func worldOf(groups []*group, workers ...*worker) world {
	w := world{groups: map[string]*group{}, workers: map[int]*worker{}, now: planNow}
	for _, g := range groups {
		w.order = append(w.order, g.queues)
		w.groups[g.queues] = g
	}
	for _, x := range workers {
		w.workers[x.pid] = x
	}
	return w
}

func spawnN(queues string, n int) action { return action{kind: actSpawn, queues: queues, n: n} }

func quit(pid int, queues string) action {
	return action{kind: actStop, queues: queues, pid: pid, sig: syscall.SIGQUIT}
}

func TestPlan(t *testing.T) {
	backingOff := grp("foo", 2, "F")
	backingOff.failures, backingOff.backoffUntil = 2, planNow.Add(time.Second)
	probing := grp("foo", 3, "F")
	probing.failures, probing.backoffUntil = 2, planNow.Add(-time.Millisecond)
	fatal := grp("foo", 2, "F")
	fatal.failures, fatal.fatal = 5, true
	stopping := func(mode stopMode, paused bool, ws ...*worker) world {
		w := worldOf([]*group{grp("foo", 2, "F"), grp("bar", 1, "B")}, ws...)
		w.stopping, w.paused = mode, paused
		return w
	}

	for _, tc := range []struct {
		name  string
		world world
		want  []action
	}{{
		name:  "fresh pool: spawn every group in config order",
		world: worldOf([]*group{grp("foo", 2, "F"), grp("bar", 3, "B")}),
		want:  []action{spawnN("foo", 2), spawnN("bar", 3)},
	}, {
		name: "unchanged groups keep their pids",
		world: worldOf([]*group{grp("foo", 2, "F"), grp("bar", 1, "B")},
			wk(10, "foo", "F", time.Minute, workerRunning),
			wk(11, "foo", "F", time.Second, workerStarting),
			wk(12, "bar", "B", time.Minute, workerRunning)),
		want: nil,
	}, {
		name: "changed launch settings: old workers stopped, new ones spawned",
		world: worldOf([]*group{grp("foo", 2, "F2"), grp("bar", 1, "B")},
			wk(10, "foo", "F", time.Minute, workerRunning),
			wk(11, "foo", "F", time.Minute, workerRunning),
			wk(12, "bar", "B", time.Minute, workerRunning)),
		want: []action{quit(10, "foo"), quit(11, "foo"), spawnN("foo", 2)},
	}, {
		name: "removed group: its workers stopped",
		world: worldOf([]*group{grp("bar", 1, "B")},
			wk(10, "foo", "F", time.Minute, workerRunning),
			wk(12, "bar", "B", time.Minute, workerRunning)),
		want: []action{quit(10, "foo")},
	}, {
		name: "surplus stopped oldest first",
		world: worldOf([]*group{grp("foo", 2, "F")},
			wk(10, "foo", "F", 1*time.Minute, workerRunning),
			wk(11, "foo", "F", 4*time.Minute, workerRunning),
			wk(12, "foo", "F", 2*time.Minute, workerRunning),
			wk(13, "foo", "F", 3*time.Minute, workerRunning)),
		want: []action{quit(11, "foo"), quit(13, "foo")},
	}, {
		name: "stopping workers are not live: replaced, not stopped again",
		world: worldOf([]*group{grp("foo", 2, "F")},
			wk(10, "foo", "F", time.Minute, workerStopping),
			wk(11, "foo", "F", time.Minute, workerRunning)),
		want: []action{spawnN("foo", 1)},
	}, {
		name:  "backing off: wait, spawn nothing",
		world: worldOf([]*group{backingOff}),
		want:  []action{{kind: actBackoff, queues: "foo", until: planNow.Add(time.Second)}},
	}, {
		name:  "backoff over after failed starts: one probe",
		world: worldOf([]*group{probing}),
		want:  []action{spawnN("foo", 1)},
	}, {
		name:  "probe alive: nothing more until it survives start_secs",
		world: worldOf([]*group{probing}, wk(10, "foo", "F", 0, workerStarting)),
		want:  nil,
	}, {
		name:  "FATAL: nothing",
		world: worldOf([]*group{fatal}),
		want:  nil,
	}, {
		name: "FATAL group still loses its surplus",
		world: worldOf([]*group{fatal},
			wk(10, "foo", "F", 2*time.Minute, workerRunning),
			wk(11, "foo", "F", 3*time.Minute, workerRunning),
			wk(12, "foo", "F", 1*time.Minute, workerRunning)),
		want: []action{quit(11, "foo")},
	}, {
		name: "stopping: nothing done for workers already told",
		world: stopping(gracefulStop, false,
			wk(10, "foo", "F", time.Minute, workerStopping),
			wk(12, "bar", "B", time.Minute, workerStopping)),
		want: nil,
	}, {
		name:  "stopping: no spawn although every group is short",
		world: stopping(fastStop, false),
		want:  nil,
	}, {
		name: "stopping: a worker not yet told is stopped, none spawned",
		world: stopping(gracefulStop, false,
			wk(10, "foo", "F", time.Minute, workerStopping),
			wk(11, "foo", "F", time.Second, workerStarting)),
		want: []action{quit(11, "foo")},
	}, {
		name: "paused: every worker stopped, none spawned",
		world: stopping(notStopping, true,
			wk(10, "foo", "F", time.Minute, workerRunning),
			wk(12, "bar", "B", time.Minute, workerRunning)),
		want: []action{quit(10, "foo"), quit(12, "bar")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := plan(tc.world); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan =\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}
}

func TestBackoffDoublesThenGoesFatalAfterStartRetries(t *testing.T) {
	wait := func(d time.Duration) action { return action{kind: actBackoff, queues: "foo", until: planNow.Add(d)} }
	fatal := action{kind: actFatal, queues: "foo"}
	for _, tc := range []struct {
		failures, retries int
		longest           time.Duration
		want              action
	}{
		{1, 5, 2 * time.Second, wait(250 * time.Millisecond)},
		{2, 5, 2 * time.Second, wait(500 * time.Millisecond)},
		{3, 5, 2 * time.Second, wait(time.Second)},
		{4, 5, 2 * time.Second, wait(2 * time.Second)},
		{5, 5, 2 * time.Second, fatal},
		{2, 5, 300 * time.Millisecond, wait(300 * time.Millisecond)},
		{40, 100, 24 * time.Hour, wait(250 * time.Millisecond << 16)}, // the doubling stops at 2^16
		{1, 1, time.Second, fatal},
	} {
		if got := backoff("foo", tc.failures, tc.retries, tc.longest, planNow); got != tc.want {
			t.Errorf("backoff(failures %d, retries %d, longest %s) = %+v, want %+v", tc.failures, tc.retries, tc.longest, got, tc.want)
		}
	}
}

// A reload goes through applyConfig, which fingerprints each group: a
// change of one queue list's count leaves the others' workers alone, a
// change of the command replaces every worker.
func TestReloadDecisionKeepsUnchangedGroupsPids(t *testing.T) {
	m := &Master{opts: Options{Executable: "/bin/sh"}, groups: map[string]*group{}, workers: map[int]*worker{}}
	load := func(yaml string) {
		t.Helper()
		cfg, err := spec.ParseConfig([]byte(yaml), "pool.yml", "")
		if err != nil {
			t.Fatal(err)
		}
		m.applyConfig(cfg)
	}
	decide := func() []action {
		return plan(world{order: m.order, groups: m.groups, workers: m.workers, now: planNow})
	}
	load("workers: {foo: 2, bar: 1}\ncommand: [sleep, '1000']\n")
	pid := 100
	for _, q := range m.order {
		g := m.groups[q]
		for range g.desired {
			pid++
			m.workers[pid] = wk(pid, q, g.fingerprint, time.Minute, workerRunning)
		}
	}
	if got := decide(); got != nil {
		t.Fatalf("settled pool: plan = %+v, want nothing", got)
	}

	load("workers: {foo: 3, bar: 1}\ncommand: [sleep, '1000']\n")
	if got, want := decide(), []action{spawnN("foo", 1)}; !reflect.DeepEqual(got, want) {
		t.Errorf("after foo 2 -> 3: plan = %+v, want %+v", got, want)
	}

	load("workers: {foo: 2, bar: 1}\ncommand: [sleep, '2000']\n")
	want := []action{quit(101, "foo"), quit(102, "foo"), quit(103, "bar"), spawnN("foo", 2), spawnN("bar", 1)}
	if got := decide(); !reflect.DeepEqual(got, want) {
		t.Errorf("after a command change: plan = %+v, want %+v", got, want)
	}
}
