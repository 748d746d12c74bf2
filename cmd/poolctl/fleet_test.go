package main

// End-to-end tests of the fleet (issue 14 §2, §3): real masters of the
// real binary on one real redis-server, "on two hosts" by --host.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
)

// fleetPool is one master of a fleet test.
type fleetPool struct {
	e      *shellEnv
	host   string
	name   string
	cfg    string
	paths  poolfs.Paths
	exited <-chan struct{}
	pid    int
}

// fleetConfig writes a config of built-in workers on srv.
func fleetConfig(t *testing.T, srv *redistest.Server, workers string, remote bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pool.yml")
	body := "redis: " + srv.URL() + "\nsample_interval: 200ms\nstart_secs: 100ms\nterm_timeout: 2s\nworkers:\n" + workers
	if remote {
		body += "remote_control: true\n"
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startFleetPool starts `poolctl master -c cfg --host host --name name
// --overrides ...` in an environment of its own (its own runtime
// directory: another host) and waits for its workers.
func startFleetPool(t *testing.T, host, name, cfg string, e *shellEnv) *fleetPool {
	t.Helper()
	if e == nil {
		e = newShellEnv(t)
	}
	p := e.paths(name)
	e.reap(name)
	fp := &fleetPool{e: e, host: host, name: name, cfg: cfg, paths: p}
	fp.start(t)
	return fp
}

func (fp *fleetPool) start(t *testing.T) {
	t.Helper()
	p := fp.paths
	_, fp.exited = fp.e.startMaster(t, "-c", fp.cfg, "--name", fp.name, "--host", fp.host, "--log", p.Log,
		"--overrides", p.Overrides, "--fleet-heartbeat", "200ms")
	waitFor(t, 20*time.Second, fp.id()+" running", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Settled() && len(st.Workers) > 0
	})
	fp.pid = readPid(p.Pid)
}

func (fp *fleetPool) id() string { return fp.host + "/" + fp.name }

func (fp *fleetPool) state(t *testing.T) *poolfs.State {
	t.Helper()
	st, err := poolfs.ReadState(fp.paths.State)
	if err != nil {
		t.Fatalf("%s: %v", fp.id(), err)
	}
	return st
}

// stop QUITs the master and waits for it to exit.
func (fp *fleetPool) stop(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(fp.pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fp.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop", fp.id())
	}
}

func (fp *fleetPool) log(t *testing.T) string {
	b, _ := os.ReadFile(fp.paths.Log)
	return string(b)
}

// fleetRun runs `poolctl fleet ARGS --redis URL` from an environment of
// its own.
func fleetRun(t *testing.T, srv *redistest.Server, args ...string) result {
	t.Helper()
	return newShellEnv(t).run("", append(append([]string{"fleet"}, args...), "--redis", srv.URL())...)
}

// listedPools decodes fleet --json.
func listedPools(t *testing.T, out string) map[string]listedEntry {
	t.Helper()
	var all []listedEntry
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("fleet --json: %v\n%s", err, out)
	}
	m := map[string]listedEntry{}
	for _, p := range all {
		m[p.ID] = p
	}
	return m
}

type listedEntry struct {
	fleet.Entry
	Stale bool    `json:"stale"`
	Age   float64 `json:"heartbeat_age_seconds"`
}

func desiredLive(st *poolfs.State, queues string) (int, int) {
	g := groupOf(st, queues)
	return g.Desired, g.Live
}

// rawCommand pushes a control message as another language would, and
// returns the reply that comes on its reply list.
func rawCommand(t *testing.T, srv *redistest.Server, target, msg, replyTo string) fleet.Reply {
	t.Helper()
	rdb := srv.Client()
	ctx := context.Background()
	if err := rdb.RPush(ctx, fleet.ControlKey("resque:", target), msg).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := rdb.BLPop(ctx, 10*time.Second, "resque:"+replyTo).Result()
	if err != nil {
		t.Fatalf("no reply to %s: %v", msg, err)
	}
	var r fleet.Reply
	if err := json.Unmarshal([]byte(res[1]), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFleetTwoHosts: two masters of one name on one Redis, "on two
// hosts": both listed with their counts; ping answered by both within
// 1 s while every worker runs a long job; config to b changes only b,
// applied when the answer comes (within 1 s); Vumi's shape; a message
// carrying argv is refused and changes nothing; bad ids and spec words
// are usage errors; a clean exit removes the entry.
func TestFleetTwoHosts(t *testing.T) {
	srv := redistest.Start(t)
	a := startFleetPool(t, "a", "p", fleetConfig(t, srv, "  foo: 1\n", true), nil)
	b := startFleetPool(t, "b", "p", fleetConfig(t, srv, "  foo: 1\n", true), nil)

	var pools map[string]listedEntry
	waitFor(t, 10*time.Second, "both pools listed", func() bool {
		r := fleetRun(t, srv, "--json")
		if r.code != 0 {
			t.Fatalf("fleet --json: exit %d: %s", r.code, r.stderr)
		}
		pools = listedPools(t, r.stdout)
		return len(pools) == 2 && len(pools["a/p"].Groups) == 1 && len(pools["b/p"].Groups) == 1
	})
	for _, fp := range []*fleetPool{a, b} {
		e := pools[fp.id()]
		if e.Host != fp.host || e.Name != "p" || e.PID != fp.pid || e.State != "running" || !e.RemoteControl || e.Stale ||
			e.Groups[0] != (fleet.Group{Queues: "foo", Desired: 1, Live: 1}) || e.Config != fp.cfg {
			t.Errorf("%s listed as %+v", fp.id(), e)
		}
	}
	if r := fleetRun(t, srv); r.code != 0 || !strings.Contains(r.stdout, "a/p") || !strings.Contains(r.stdout, "foo=1/1") {
		t.Errorf("fleet: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Every worker busy with a 30 s job.
	q := queue.New(srv.Client(), "")
	job := []byte(`{"class":"Poolctl::Sleep","args":[30000]}`)
	if err := q.Enqueue(context.Background(), "foo", job, job); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "every worker busy (fleet top)", func() bool {
		r := fleetRun(t, srv, "top", "--json")
		var f struct {
			Total fleet.Cockpit `json:"total"`
			Pools []struct {
				ID string `json:"id"`
			} `json:"pools"`
		}
		_ = json.Unmarshal([]byte(r.stdout), &f)
		return r.code == 0 && len(f.Pools) == 2 && f.Total.Workers == 2 && f.Total.Busy == 2 && f.Total.InFlight == 2
	})
	// In a pipe, top prints JSON Lines, --count of them.
	if r := fleetRun(t, srv, "top", "--count", "2", "--interval", "100ms"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"busy":2`) {
		t.Errorf("fleet top --count 2 in a pipe: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := fleetRun(t, srv, "ping", "--json")
	if r.code != 0 {
		t.Fatalf("fleet ping: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	answered := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(r.stdout), "\n") {
		var a struct {
			Pool    string  `json:"pool"`
			Status  string  `json:"status"`
			Seconds float64 `json:"seconds"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("ping line %q: %v", line, err)
		}
		if a.Status != "ok" || a.Seconds >= 1 {
			t.Errorf("ping answer %+v: want ok within 1 s", a)
		}
		answered[a.Pool] = true
	}
	if !answered["a/p"] || !answered["b/p"] || len(answered) != 2 {
		t.Errorf("ping answered by %v, want a/p and b/p", answered)
	}

	r = fleetRun(t, srv, "config", "b/p", "foo=3", "--json")
	if r.code != 0 {
		t.Fatalf("fleet config b/p foo=3: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var ans struct {
		Status  string  `json:"status"`
		Pool    string  `json:"pool"`
		Seconds float64 `json:"seconds"`
		Result  struct {
			Spec string `json:"spec"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil || ans.Status != "ok" || ans.Pool != "b/p" || ans.Result.Spec != "foo=3" {
		t.Errorf("fleet config --json = %s (%v)", r.stdout, err)
	}
	// Applied when answered: no waiting here.
	if d, l := desiredLive(b.state(t), "foo"); d != 3 || l != 3 {
		t.Errorf("b after config: foo desired %d live %d, want 3/3", d, l)
	}
	if ans.Seconds >= 1 {
		t.Errorf("fleet config answered in %.2fs, want < 1 s", ans.Seconds)
	}
	if d, l := desiredLive(a.state(t), "foo"); d != 1 || l != 1 {
		t.Errorf("a changed by b's config: foo %d/%d", l, d)
	}
	if got := strings.TrimSpace(readFileT(t, b.paths.Overrides)); got != "foo=3" {
		t.Errorf("b's overrides = %q, want foo=3", got)
	}
	if !strings.Contains(b.log(t), "fleet config foo=3") {
		t.Errorf("b's log does not record the command:\n%s", b.log(t))
	}

	// Vumi's supervisor shape.
	rep := rawCommand(t, srv, "a/p", `{"id":"v1","reply_to":"poolctl:reply:v1","operation":"start_worker","worker_name":"smpp-1","queues":"bar","count":2}`, "poolctl:reply:v1")
	if rep.Status != fleet.StatusOK || rep.Pool != "a/p" {
		t.Errorf("start_worker reply %+v", rep)
	}
	if d, _ := desiredLive(a.state(t), "bar"); d != 2 {
		t.Errorf("a after start_worker bar: desired %d, want 2", d)
	}

	// A command line never runs.
	before := readFileT(t, a.paths.Overrides)
	rep = rawCommand(t, srv, "a/p", `{"id":"x1","reply_to":"poolctl:reply:x1","verb":"config","args":["foo=5"],"argv":["sh","-c","touch /tmp/pwned"]}`, "poolctl:reply:x1")
	if rep.Status != fleet.StatusError || !strings.Contains(rep.Error, "argv") {
		t.Errorf("argv message answered %+v, want an error naming argv", rep)
	}
	if d, _ := desiredLive(a.state(t), "foo"); d != 1 {
		t.Errorf("argv message changed foo to %d", d)
	}
	if after := readFileT(t, a.paths.Overrides); after != before {
		t.Errorf("argv message changed the overrides: %q -> %q", before, after)
	}

	// Mistakes are usage errors, and nothing is sent.
	for _, args := range [][]string{
		{"config", "b", "foo=2"},
		{"config", "b/p/x", "foo=2"},
		{"config", "b/p", "foo=x"},
		{"config", "b/p"},
		{"status"},
		{"frobnicate", "b/p"},
		{"autoscale", "b/p"},
	} {
		r := fleetRun(t, srv, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "poolctl") {
			t.Errorf("fleet %q: exit %d, stderr %q; want 2 with a message", args, r.code, r.stderr)
		}
		if args[0] == "config" && len(args) == 3 && !strings.Contains(r.stderr, args[1]) && !strings.Contains(r.stderr, args[2]) {
			t.Errorf("fleet %q: message %q names neither the id nor the word", args, r.stderr)
		}
	}
	if d, _ := desiredLive(b.state(t), "foo"); d != 3 {
		t.Errorf("a refused command changed b's foo to %d", d)
	}

	// A clean exit removes the entry.
	a.stop(t)
	r = fleetRun(t, srv, "--json")
	if pools := listedPools(t, r.stdout); len(pools) != 1 || pools["b/p"].ID == "" {
		t.Errorf("after a's clean exit: %v", pools)
	}
}

func readFileT(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestFleetRemoteControlOff: a pool without remote_control: true answers
// status but refuses every mutating verb, saying why (exit 1).
func TestFleetRemoteControlOff(t *testing.T) {
	srv := redistest.Start(t)
	h := startFleetPool(t, "h", "q", fleetConfig(t, srv, "  foo: 1\n", false), nil)
	r := fleetRun(t, srv, "status", "h/q", "--json")
	if r.code != 0 {
		t.Fatalf("fleet status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var a struct {
		Status string `json:"status"`
		Result struct {
			Pool   string              `json:"pool"`
			PID    int                 `json:"pid"`
			Groups []poolfs.GroupState `json:"groups"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || a.Status != "ok" || a.Result.Pool != "h/q" || a.Result.PID != h.pid || len(a.Result.Groups) != 1 {
		t.Errorf("fleet status --json = %s (%v)", r.stdout, err)
	}
	for _, args := range [][]string{{"config", "h/q", "foo=2"}, {"pause", "h/q"}, {"stop", "h/q"}, {"reload", "h/q"}} {
		r := fleetRun(t, srv, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "remote_control: true") {
			t.Errorf("fleet %q: exit %d, stderr %q; want 1 naming remote_control: true", args, r.code, r.stderr)
		}
	}
	if d, l := desiredLive(h.state(t), "foo"); d != 1 || l != 1 || h.state(t).Status != "running" {
		t.Errorf("a refused command changed the pool: foo %d/%d, %s", l, d, h.state(t).Status)
	}
	if !strings.Contains(h.log(t), "remote control is off") {
		t.Errorf("the log does not record the refusal:\n%s", h.log(t))
	}
}

// TestFleetCommandWaitsForRestart: a command sent to a stopped master
// waits in its list and is served when it comes back; one whose expiry
// passed meanwhile is answered "expired" and not carried out.
func TestFleetCommandWaitsForRestart(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fleetConfig(t, srv, "  foo: 1\n", true)
	appendFile(t, cfg, "reply_ttl: 30m\n")
	h := startFleetPool(t, "h", "r", cfg, nil)
	h.stop(t)
	if r := fleetRun(t, srv, "--json"); strings.Contains(r.stdout, "h/r") {
		t.Fatalf("stopped pool still listed: %s", r.stdout)
	}

	r := fleetRun(t, srv, "config", "h/r", "foo=2", "--timeout", "1s", "--expire", "60s", "--json")
	if r.code != 1 || !strings.Contains(r.stdout, `"no reply"`) {
		t.Fatalf("config to a stopped master: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = fleetRun(t, srv, "config", "h/r", "foo=4", "--timeout", "200ms", "--expire", "300ms", "--json")
	if r.code != 1 {
		t.Fatalf("short config to a stopped master: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var late struct {
		ReplyTo string `json:"reply_to"`
		ID      string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &late); err != nil || late.ReplyTo == "" {
		t.Fatalf("no reply_to in %q: %v", r.stdout, err)
	}
	rdb := srv.Client()
	expires := waitingCommand(t, srv, "h/r", late.ID).ExpiresAt
	waitFor(t, 10*time.Second, "the short command's expiry to pass", func() bool {
		now, err := rdb.Time(context.Background()).Result()
		return err == nil && now.After(expires)
	})
	if c := waitingCommand(t, srv, "h/r", ""); len(c.Args) != 1 || c.Args[0] != "foo=2" {
		t.Errorf("first command waiting: %+v", c)
	}

	h.start(t)
	waitFor(t, 10*time.Second, "the waiting command served", func() bool {
		d, l := desiredLive(h.state(t), "foo")
		return d == 2 && l == 2
	})
	var ttl time.Duration
	waitFor(t, 10*time.Second, "the expired command's answer", func() bool {
		ttl, _ = rdb.PTTL(context.Background(), "resque:"+late.ReplyTo).Result()
		return ttl > 0
	})
	if ttl > 30*time.Minute || ttl < 29*time.Minute {
		t.Errorf("reply list TTL %s, want the config's reply_ttl: 30m", ttl)
	}
	res, err := rdb.BLPop(context.Background(), 10*time.Second, "resque:"+late.ReplyTo).Result()
	if err != nil {
		t.Fatalf("no answer to the expired command: %v", err)
	}
	var rep fleet.Reply
	if err := json.Unmarshal([]byte(res[1]), &rep); err != nil || rep.Status != fleet.StatusExpired || rep.ID != late.ID {
		t.Errorf("answer to the expired command: %s (%v)", res[1], err)
	}
	if d, _ := desiredLive(h.state(t), "foo"); d != 2 {
		t.Errorf("the expired command was carried out: foo desired %d", d)
	}

	// pause, then stop: answered, then the master stops and leaves the
	// registry.
	if r := fleetRun(t, srv, "pause", "h/r", "foo"); r.code != 0 || !strings.Contains(r.stdout, "h/r: paused foo") {
		t.Errorf("fleet pause: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if g := groupOf(h.state(t), "foo"); !g.Paused {
		t.Errorf("foo not paused in the state: %+v", g)
	}
	waitFor(t, 10*time.Second, "the shell's status shows the paused workers", func() bool {
		r := h.e.run("status\n", "attach", "r")
		return r.code == 0 && strings.Count(r.stdout, "Paused (USR2)") == 2
	})
	if r := fleetRun(t, srv, "pause", "h/r", "nope"); r.code != 1 || !strings.Contains(r.stderr, `"nope" is not a queue list of pool r`) {
		t.Errorf("fleet pause of an unknown list: exit %d\n%s", r.code, r.stderr)
	}
	if r := fleetRun(t, srv, "stop", "h/r"); r.code != 0 || !strings.Contains(r.stdout, "h/r: stopping gracefully") {
		t.Errorf("fleet stop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	select {
	case <-h.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the master did not stop after fleet stop")
	}
	if r := fleetRun(t, srv, "--json"); strings.Contains(r.stdout, "h/r") {
		t.Errorf("stopped pool still listed: %s", r.stdout)
	}
}

// waitingCommand returns the command id (the first when "") waiting in
// pool's control list.
func waitingCommand(t *testing.T, srv *redistest.Server, pool, id string) fleet.Command {
	t.Helper()
	all, err := srv.Client().LRange(context.Background(), fleet.ControlKey("resque:", pool), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range all {
		c, err := fleet.DecodeCommand([]byte(raw))
		if err != nil {
			t.Fatalf("waiting command %s: %v", raw, err)
		}
		if id == "" || c.ID == id {
			return c
		}
	}
	t.Fatalf("command %q not waiting in %s: %q", id, pool, all)
	return fleet.Command{}
}

// TestFleetStaleAfterKill: a master SIGKILLed leaves its entry, which
// shows stale once its heartbeat is older than the threshold.
func TestFleetStaleAfterKill(t *testing.T) {
	srv := redistest.Start(t)
	h := startFleetPool(t, "h", "k", fleetConfig(t, srv, "  foo: 1\n", false), nil)
	waitFor(t, 10*time.Second, "h/k listed fresh", func() bool {
		e, ok := listedPools(t, fleetRun(t, srv, "--json", "--stale-after", "1s").stdout)["h/k"]
		return ok && !e.Stale
	})
	if err := syscall.Kill(h.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-h.exited
	var e listedEntry
	waitFor(t, 10*time.Second, "h/k listed stale", func() bool {
		var ok bool
		e, ok = listedPools(t, fleetRun(t, srv, "--json", "--stale-after", "1s").stdout)["h/k"]
		return ok && e.Stale
	})
	if e.Age < 1 {
		t.Errorf("stale with heartbeat age %.2fs", e.Age)
	}
	if r := fleetRun(t, srv, "--stale-after", "1s"); !strings.Contains(r.stdout, "stale") {
		t.Errorf("fleet does not show h/k stale:\n%s", r.stdout)
	}
	// fleet ping expects no answer from a stale pool.
	if r := fleetRun(t, srv, "ping", "--stale-after", "1s", "--timeout", "500ms"); r.code != 1 || !strings.Contains(r.stderr, "no pool answered") {
		t.Errorf("fleet ping with only a stale pool: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestFleetAttachedShellSeesRemoteConfig: a shell running a pool from
// its -c FILE sees a count changed by fleet config, and its own next
// change keeps it.
func TestFleetAttachedShellSeesRemoteConfig(t *testing.T) {
	srv := redistest.Start(t)
	e := newShellEnv(t)
	e.env = append(e.env, "POOLCTL_HOST=s")
	cfg := fleetConfig(t, srv, "  foo: 1\n", true)
	p := e.paths("sp")
	e.reap("sp")
	sh := e.startPiped(t, "-c", cfg, "--name", "sp", "--no-prompt")
	sh.waitRunning(t, p)
	waitFor(t, 10*time.Second, "s/sp registered", func() bool {
		_, ok := listedPools(t, fleetRun(t, srv, "--json").stdout)["s/sp"]
		return ok
	})
	sh.send(t, "fleet\n")
	waitFor(t, 10*time.Second, "the shell's fleet lists s/sp", func() bool {
		return strings.Contains(sh.out.String(), "s/sp") && strings.Contains(sh.out.String(), "foo=1/1")
	})

	if r := fleetRun(t, srv, "config", "s/sp", "foo=3"); r.code != 0 {
		t.Fatalf("fleet config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sh.send(t, "config\n")
	waitFor(t, 10*time.Second, "the shell shows foo=3", func() bool {
		return strings.Contains(sh.out.String(), "\nfoo=3\n")
	})
	sh.send(t, "config bar=1\n")
	waitFor(t, 10*time.Second, "the shell's change applied", func() bool {
		st, err := poolfs.ReadState(p.State)
		return err == nil && st.Spec == "foo=3:bar=1"
	})
	if got := strings.TrimSpace(readFileT(t, p.Overrides)); got != "foo=3:bar=1" {
		t.Errorf("overrides after the shell's change = %q, want foo=3:bar=1", got)
	}
	if got := readFileT(t, cfg); strings.Contains(got, "foo: 3") {
		t.Errorf("the user's file was rewritten:\n%s", got)
	}
	// The same handler as poolctl fleet: a bad word is refused, and the
	// script's exit status says a command failed.
	sh.send(t, "fleet config s/sp nope\n")
	sh.stdin.Close()
	if err := sh.cmd.Wait(); err == nil || sh.cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("shell exit: %v, want status 1 after a failed command", err)
	}
	if out := sh.out.String(); !strings.Contains(out, `fleet: spec: argument 1: entry 1 "nope"`) {
		t.Errorf("the shell's fleet did not refuse the bad word:\n%s", out)
	}
}

// docACLs returns the ACL SETUSER commands of docs/fleet.md, as words,
// by user.
func docACLs(t *testing.T) map[string][]any {
	t.Helper()
	b, err := os.ReadFile("../../docs/fleet.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]any{}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for line := range strings.SplitSeq(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "ACL" || fields[1] != "SETUSER" {
			continue
		}
		args := make([]any, len(fields))
		for i, f := range fields {
			args[i] = f
		}
		out[fields[2]] = args
	}
	if len(out) != 2 {
		t.Fatalf("docs/fleet.md: want the operators' and the pools' ACL, got %v", out)
	}
	return out
}

// TestFleetDocumentedACLs: the ACLs docs/fleet.md gives are enough: a
// pool runs jobs and serves commands as its user, and an operator lists,
// pings and steers the pool as theirs, but cannot touch a queue.
func TestFleetDocumentedACLs(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	for user, args := range docACLs(t) {
		if err := rdb.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("ACL of %s: %v", user, err)
		}
	}
	addr := strings.TrimPrefix(srv.URL(), "redis://")
	poolURL := "redis://pool:POOL-PASSWORD@" + addr
	opsURL := "redis://fleet-ops:OPS-PASSWORD@" + addr

	cfg := filepath.Join(t.TempDir(), "pool.yml")
	body := "redis: " + poolURL + "\nsample_interval: 200ms\nstart_secs: 100ms\nterm_timeout: 2s\nremote_control: true\nworkers:\n  foo: 1\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startFleetPool(t, "h", "acl", cfg, nil)
	// The pool's user runs jobs.
	if err := queue.New(rdb, "").Enqueue(ctx, "foo", []byte(`{"class":"Poolctl::Sleep","args":[1]}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the job done by the pool's user", func() bool {
		n, err := rdb.Get(ctx, "resque:stat:processed").Int()
		return err == nil && n == 1
	})
	ops := func(args ...string) result {
		return newShellEnv(t).run("", append(append([]string{"fleet"}, args...), "--redis", opsURL)...)
	}
	waitFor(t, 10*time.Second, "the operator lists the pool", func() bool {
		r := ops("--json")
		if r.code != 0 {
			t.Logf("fleet --json: exit %d: %s", r.code, r.stderr)
		}
		return r.code == 0 && strings.Contains(r.stdout, `"h/acl"`)
	})
	for _, args := range [][]string{{"ping"}, {"status", "h/acl"}, {"config", "h/acl", "foo=2"}, {"top", "--json"}} {
		if r := ops(args...); r.code != 0 {
			t.Errorf("operator: fleet %q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if d, _ := desiredLive(h.state(t), "foo"); d != 2 {
		t.Errorf("operator's config not applied: foo desired %d", d)
	}
	if strings.Contains(h.log(t), "NOPERM") {
		t.Errorf("the pool's user lacks a permission:\n%s", h.log(t))
	}
	// The operator cannot run jobs.
	if r := newShellEnv(t).run("", "enqueue", "--redis", opsURL, "foo", "Poolctl::Sleep", "1"); r.code == 0 {
		t.Errorf("the operator enqueued a job:\n%s%s", r.stdout, r.stderr)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
