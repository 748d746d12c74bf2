package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"syscall"
	"time"

	prompt "github.com/c-bata/go-prompt"
	"github.com/poolctl/poolctl/autoscale"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/spec"
	"github.com/poolctl/poolctl/stats"
)

// autoscaleCommand is the autoscale row of the command table.
func autoscaleCommand() *Command {
	return &Command{
		Name: "autoscale", Args: "[--json] | on|off [QUEUES ...] | explain [--json] [QUEUES ...]", MaxArgs: -1, Arg: argAutoscale,
		Summary: "show, switch on or off, or explain the autoscaling of queue lists",
		Help: `Without arguments, shows each autoscaled queue list (autoscale: {min, max,
target_wait, down_after} under workers: in the config): its mode (on, or off:
pinned at its configured count), bounds, target wait, down_after, the
configured count, the desired and live counts, the inputs of the current
sample (backlog, arrival rate, job time, host CPU and free memory) and the
master's last decision with its reason and age. --json prints it as one
JSON object.

autoscale off [QUEUES ...] pins the queue lists (default: every autoscaled
one) at their configured count: the autoscaler leaves them alone until
autoscale on. autoscale on [QUEUES ...] hands them back to the autoscaler,
which starts from the configured count. config QUEUES=N on an autoscaled
list pins it too, at N. A pin lasts across reloads and restarts of the
pool by this shell; a new shell starting the pool starts unpinned. Both
return once the master shows the new mode. A name that is not an
autoscaled queue list is an error and changes nothing.

autoscale explain [QUEUES ...] prints the policy's computation for the
current sample: λ (arrival rate), S (mean job time), B (backlog), T
(target wait), λ·S + B·S/T, the clamp to the bounds, the room each machine
limit (limits: in the config) leaves, and what the policy would decide.

Examples:
  autoscale
  autoscale --json
  autoscale off reports,default
  autoscale on
  autoscale explain mail`,
		Run: cmdAutoscale,
	}
}

func cmdAutoscale(ctx context.Context, s *Session, args []string) error {
	sub := ""
	if len(args) > 0 && (args[0] == "on" || args[0] == "off" || args[0] == "explain") {
		sub, args = args[0], args[1:]
	}
	asJSON, opts := false, true
	var names []string
	for _, a := range args {
		switch {
		case opts && a == "--":
			opts = false // the rest are queue lists, even "-high"
		case opts && a == "--json" && sub != "on" && sub != "off":
			asJSON = true
		case opts && strings.HasPrefix(a, "-"):
			return &UsageError{Lookup("autoscale"), fmt.Sprintf("unknown option %q", a)}
		case sub == "":
			return &UsageError{Lookup("autoscale"), fmt.Sprintf("unknown sub-command %q (want on, off or explain)", a)}
		default:
			names = append(names, a)
		}
	}
	switch sub {
	case "on", "off":
		return s.switchAutoscale(ctx, sub == "on", names)
	case "explain":
		return s.explainAutoscale(ctx, names, asJSON)
	}
	return s.showAutoscale(ctx, asJSON)
}

// AutoscaleReport is what autoscale --json prints.
type AutoscaleReport struct {
	Pool    string `json:"pool"`
	Running bool   `json:"running"`
	// SampleAt is when the sample the inputs come from was taken; absent
	// when there is no recent one (the inputs are then null).
	SampleAt *time.Time       `json:"sample_at,omitempty"`
	Limits   *poolfs.Limits   `json:"limits,omitempty"`
	Groups   []AutoscaleGroup `json:"groups"`
}

// AutoscaleGroup is one autoscaled queue list.
type AutoscaleGroup struct {
	Queues     string  `json:"queues"`
	Mode       string  `json:"mode"` // on | off (pinned at configured)
	Min        int     `json:"min"`
	Max        int     `json:"max"`
	TargetWait float64 `json:"target_wait_seconds"`
	DownAfter  float64 `json:"down_after_seconds"`
	Configured int     `json:"configured"`
	Desired    int     `json:"desired"`
	Live       int     `json:"live"`
	// Inputs are the policy's inputs from the latest sample, null when
	// there is no recent one.
	Inputs *AutoscaleInputs `json:"inputs"`
	// Last is the master's last decision, null before the first.
	Last *AutoscaleDecision `json:"last_decision"`
}

// AutoscaleInputs are the figures of one sample the policy looks at.
type AutoscaleInputs struct {
	Backlog int64   `json:"backlog"`
	InRate  float64 `json:"in_rate"`
	OutRate float64 `json:"out_rate"`
	// JobSeconds is the mean job time, null until a job finished.
	JobSeconds   *float64 `json:"job_seconds"`
	Idle         int      `json:"idle"`
	CPUPercent   float64  `json:"host_cpu_percent"`
	MemFreeBytes uint64   `json:"host_mem_free_bytes"`
}

// AutoscaleDecision is the master's last decision for a queue list.
type AutoscaleDecision struct {
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
	AgeSeconds float64   `json:"age_seconds"`
}

// autoscaleView is what the master publishes that autoscale reads: its
// state and, when there is a recent one, its sample.
type autoscaleView struct {
	pid    int
	state  *poolfs.State
	sample *stats.Sample
}

// readAutoscaleView reads the running master's state and a recent sample
// (waiting up to wait for one: the master publishes samples only while
// someone reads them).
func (s *Session) readAutoscaleView(ctx context.Context, wait time.Duration) (autoscaleView, error) {
	var v autoscaleView
	pid, err := s.requireMaster()
	if err != nil {
		return v, err
	}
	st, live, err := s.pool().State()
	if err != nil {
		return v, err
	}
	if !live {
		return v, fmt.Errorf("pool %s: the state file is not the running master's yet; try again", s.paths.Name)
	}
	v.pid, v.state = pid, st
	v.sample = s.recentSample(ctx, pid, wait)
	return v, nil
}

// recentSample returns the latest sample of master pid if it is recent
// (at most three sampling intervals old), waiting up to wait for one; nil
// when there is none.
func (s *Session) recentSample(ctx context.Context, pid int, wait time.Duration) *stats.Sample {
	deadline := time.Now().Add(wait)
	for {
		smp, err := stats.ReadFile(s.paths.Sample)
		if err == nil && (smp.Master.PID == 0 || smp.Master.PID == pid) {
			interval := time.Duration(smp.Interval * float64(time.Second))
			if interval <= 0 {
				interval = s.cfg.SampleInterval
			}
			if age := time.Since(smp.TS); age >= -time.Second && age <= 3*interval+500*time.Millisecond {
				return smp
			}
		}
		if !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pollInterval):
		}
	}
}

// sampleWait is how long autoscale and explain wait for a recent sample:
// the master starts publishing within one interval of being asked.
func (s *Session) sampleWait() time.Duration {
	return min(2*s.cfg.SampleInterval+time.Second, 5*time.Second)
}

// report builds the autoscale report of v.
func (v autoscaleView) report(name string, now time.Time) *AutoscaleReport {
	r := &AutoscaleReport{Pool: name, Running: v.state != nil, Groups: []AutoscaleGroup{}}
	if v.state == nil {
		return r
	}
	r.Limits = v.state.Limits
	if v.sample != nil {
		ts := v.sample.TS
		r.SampleAt = &ts
	}
	for _, g := range v.state.Groups {
		a := g.Autoscale
		if a == nil {
			continue
		}
		ag := AutoscaleGroup{
			Queues: g.Queues, Mode: a.Mode, Min: a.Min, Max: a.Max, TargetWait: a.TargetWait, DownAfter: a.DownAfter,
			Configured: a.Configured, Desired: g.Desired, Live: g.Live,
			Inputs: v.inputs(g),
		}
		if a.Reason != "" {
			ag.Last = &AutoscaleDecision{Reason: a.Reason, At: a.At, AgeSeconds: math.Max(0, now.Sub(a.At).Round(100*time.Millisecond).Seconds())}
		}
		r.Groups = append(r.Groups, ag)
	}
	return r
}

// inputs are g's policy inputs from the sample, nil without one.
func (v autoscaleView) inputs(g poolfs.GroupState) *AutoscaleInputs {
	if v.sample == nil || g.Autoscale == nil {
		return nil
	}
	in, idle := autoscale.InputFor(v.sample, v.state, g)
	x := &AutoscaleInputs{Backlog: in.Backlog, InRate: in.InRate, OutRate: in.OutRate, Idle: len(idle),
		CPUPercent: in.CPUPercent, MemFreeBytes: in.MemFreeBytes}
	if in.JobSeconds > 0 {
		js := in.JobSeconds
		x.JobSeconds = &js
	}
	return x
}

func (s *Session) showAutoscale(ctx context.Context, asJSON bool) error {
	v, err := s.readAutoscaleView(ctx, 0)
	if err != nil {
		return err
	}
	if hasAutoscaled(v.state) && v.sample == nil {
		v.sample = s.recentSample(ctx, v.pid, s.sampleWait())
		if st, live, err := s.pool().State(); err == nil && live {
			v.state = st // the state the sample goes with
		}
	}
	r := v.report(s.paths.Name, time.Now())
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("autoscale --json: %w", err)
		}
		fmt.Fprintf(s.out, "%s\n", b)
		return nil
	}
	printAutoscale(s.out, r)
	return nil
}

func hasAutoscaled(st *poolfs.State) bool {
	if st == nil {
		return false
	}
	for _, g := range st.Groups {
		if g.Autoscale != nil {
			return true
		}
	}
	return false
}

// printAutoscale prints the report for people.
func printAutoscale(w io.Writer, r *AutoscaleReport) {
	if len(r.Groups) == 0 {
		fmt.Fprintf(w, "pool %s has no autoscaled queue lists (give one autoscale: {min: N, max: M} under workers: in the config)\n", r.Pool)
		return
	}
	if l := r.Limits; l != nil {
		fmt.Fprintf(w, "limits: %s\n", limitsText(l))
	}
	for _, g := range r.Groups {
		mode := "autoscale on"
		if g.Mode == poolfs.AutoscaleOff {
			mode = fmt.Sprintf("autoscale off (pinned at %d; `autoscale on %s` resumes)", g.Configured, Quote(g.Queues))
		}
		fmt.Fprintf(w, "%s: %s, %d..%d, target wait %s, down after %s, configured %d\n",
			g.Queues, mode, g.Min, g.Max, fmtSecs(g.TargetWait), fmtSecs(g.DownAfter), g.Configured)
		idle := ""
		if g.Inputs != nil {
			idle = fmt.Sprintf(" (%d idle)", g.Inputs.Idle)
		}
		fmt.Fprintf(w, "  workers: desired %d, live %d%s\n", g.Desired, g.Live, idle)
		if x := g.Inputs; x != nil {
			fmt.Fprintf(w, "  inputs: %s, out %s; host cpu %.0f%%, free memory %s\n",
				inputsText(x), fmtRate(x.OutRate), x.CPUPercent, pstree.HumanBytes(x.MemFreeBytes))
		} else {
			fmt.Fprintln(w, "  inputs: no recent sample")
		}
		if d := g.Last; d != nil {
			fmt.Fprint(w, wrap(fmt.Sprintf("last decision %s ago: %s", humanDuration(time.Duration(d.AgeSeconds*float64(time.Second))), d.Reason), reasonWidth, "  ", "    "))
		} else {
			fmt.Fprintln(w, "  last decision: none yet")
		}
	}
}

// inputsText is "backlog 5400, in 310/s, job 28ms".
func inputsText(x *AutoscaleInputs) string {
	job := "job time not known yet"
	if x.JobSeconds != nil {
		job = "job " + fmtJob(*x.JobSeconds)
	}
	return fmt.Sprintf("backlog %d, in %s, %s", x.Backlog, fmtRate(x.InRate), job)
}

// limitsText renders the limits in force as the config spells them.
func limitsText(l *poolfs.Limits) string {
	var parts []string
	if l.MaxWorkers > 0 {
		parts = append(parts, fmt.Sprintf("max_workers %d", l.MaxWorkers))
	}
	if l.MaxCPU > 0 {
		parts = append(parts, fmt.Sprintf("max_cpu %g%%", l.MaxCPU))
	}
	if l.MinFreeMemory > 0 {
		parts = append(parts, "min_free_memory "+spec.FormatBytes(l.MinFreeMemory))
	}
	if l.MaxWorkerRSS > 0 {
		parts = append(parts, "max_worker_rss "+spec.FormatBytes(l.MaxWorkerRSS))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// fmtRate renders jobs per second: "310/s", "2.5/s".
func fmtRate(r float64) string {
	if r >= 100 || r == math.Trunc(r) {
		return fmt.Sprintf("%.0f/s", r)
	}
	return fmt.Sprintf("%.1f/s", r)
}

// fmtJob renders a job time: "28ms", "1.5s", "450µs".
func fmtJob(sec float64) string { return autoscale.FormatJobTime(sec) }

// fmtSecs renders a setting in seconds as a duration: "2s", "1m30s".
func fmtSecs(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(time.Millisecond).String()
}

// autoscaledLists names the pool's autoscaled queue lists, in config
// order: the running master's (from its state), else those of the
// shell's configuration.
func (s *Session) autoscaledLists() []string {
	var lists []string
	if _, ok := s.pool().MasterPID(); ok {
		if st, live, err := s.pool().State(); err == nil && live {
			for _, g := range st.Groups {
				if g.Autoscale != nil {
					lists = append(lists, g.Queues)
				}
			}
			return lists
		}
	}
	for _, e := range s.cfg.Workers {
		if g, ok := s.cfg.Groups[e.Queues]; ok && g.Autoscale != nil && e.Count > 0 {
			lists = append(lists, e.Queues)
		}
	}
	return lists
}

// pickAutoscaled resolves the names given to autoscale on|off|explain
// against the autoscaled queue lists (all of them when none is given).
// A name that is not one is an error naming it.
func pickAutoscaled(pool string, names, lists []string) ([]string, error) {
	if len(lists) == 0 {
		return nil, fmt.Errorf("pool %s has no autoscaled queue lists (give one autoscale: {min: N, max: M} under workers: in the config)", pool)
	}
	if len(names) == 0 {
		return lists, nil
	}
	known := map[string]bool{}
	for _, q := range lists {
		known[q] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		q := trimQueueList(n)
		if !known[q] {
			return nil, fmt.Errorf("%q is not an autoscaled queue list of pool %s (autoscaled: %s)", n, pool, Join(lists))
		}
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	return out, nil
}

// trimQueueList drops whitespace around the names of a queue list, as
// spec strings do.
func trimQueueList(list string) string {
	names := strings.Split(list, ",")
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
	}
	return strings.Join(names, ",")
}

// modeApplyTimeout bounds how long autoscale on|off and a pinning config
// wait for the master to show the new mode.
var modeApplyTimeout = 10 * time.Second

// switchAutoscale is autoscale on|off [QUEUES...].
func (s *Session) switchAutoscale(ctx context.Context, on bool, names []string) error {
	s.refreshConfig()
	lists, err := pickAutoscaled(s.paths.Name, names, s.autoscaledLists())
	if err != nil {
		return err
	}
	want := poolfs.AutoscaleOff
	if on {
		want = poolfs.AutoscaleOn
	}
	if _, err := s.changePins(func(p map[string]bool) {
		for _, q := range lists {
			if on {
				delete(p, q)
			} else {
				p[q] = true
			}
		}
	}); err != nil {
		return err
	}
	modes := map[string]string{}
	for _, q := range lists {
		modes[q] = want
	}
	pid, running := s.pool().MasterPID()
	if !running {
		for _, q := range lists {
			fmt.Fprintf(s.info, "%s: autoscale %s when the pool starts\n", q, want)
		}
		return nil
	}
	if !s.modesShown(pid, modes) {
		if err := s.hup(pid); err != nil {
			return err
		}
		if err := s.awaitModes(ctx, pid, modes); err != nil {
			return err
		}
	}
	st, _ := poolfs.ReadState(s.paths.State)
	for _, q := range lists {
		if on {
			fmt.Fprintf(s.info, "%s: autoscale on\n", q)
			continue
		}
		n := s.cfg.Workers.Count(q)
		if st != nil {
			for _, g := range st.Groups {
				if g.Queues == q && g.Autoscale != nil {
					n = g.Autoscale.Configured
				}
			}
		}
		fmt.Fprintf(s.info, "%s: autoscale off, pinned at %d; `autoscale on %s` to resume\n", q, n, Quote(q))
	}
	return nil
}

// hup asks the master to reload (it reads the pins at every load).
func (s *Session) hup(pid int) error {
	s.hupAt = time.Now()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal master %d: %w", pid, err)
	}
	return nil
}

// modesShown reports whether master pid's state shows each queue list of
// modes in its mode (a list no longer in force counts as shown).
func (s *Session) modesShown(pid int, modes map[string]string) bool {
	st, err := poolfs.ReadState(s.paths.State)
	if err != nil || st.PID != pid {
		return false
	}
	groups := map[string]poolfs.GroupState{}
	for _, g := range st.Groups {
		groups[g.Queues] = g
	}
	for q, want := range modes {
		g, ok := groups[q]
		if ok && (g.Autoscale == nil || g.Autoscale.Mode != want) {
			return false
		}
	}
	return true
}

// awaitModes waits until the master's state shows the modes.
func (s *Session) awaitModes(ctx context.Context, pid int, modes map[string]string) error {
	deadline := time.NewTimer(modeApplyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval / 5)
	defer tick.Stop()
	for !s.modesShown(pid, modes) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting for the master to apply the autoscale change (it is recorded and applies at its next reload): %w", ctx.Err())
		case <-deadline.C:
			if _, ok := s.pool().MasterPID(); !ok {
				return fmt.Errorf("pool %s: %w", s.paths.Name, errNotRunning)
			}
			return fmt.Errorf("the master has not shown the autoscale change after %v (see log.tail); it is recorded and applies at its next reload", modeApplyTimeout)
		case <-tick.C:
		}
	}
	return nil
}

// pinsOf reads the pool's pins: the file when a master runs (other shells
// may have changed it), else what this shell knows, else the file.
func (s *Session) pinsOf() (map[string]bool, error) {
	if _, running := s.pool().MasterPID(); !running && s.pins != nil {
		return copyPins(s.pins), nil
	}
	return poolfs.ReadAutoscaleOff(s.paths.AutoscaleOff)
}

// changePins applies change to the pool's pins and writes them; it
// returns a function that puts the previous pins back.
func (s *Session) changePins(change func(map[string]bool)) (restore func() error, err error) {
	old, err := s.pinsOf()
	if err != nil {
		return nil, err
	}
	next := copyPins(old)
	change(next)
	if err := s.writePins(next); err != nil {
		return nil, err
	}
	return func() error { return s.writePins(old) }, nil
}

// writePins writes the pins file and remembers its content.
func (s *Session) writePins(p map[string]bool) error {
	if err := s.paths.Ensure(); err != nil {
		return err
	}
	if err := poolfs.WriteAutoscaleOff(s.paths.AutoscaleOff, p); err != nil {
		return fmt.Errorf("autoscale pins: %w", err)
	}
	s.pins = copyPins(p)
	return nil
}

// syncPins takes the pins from the file of a running master, where other
// shells may have changed them.
func (s *Session) syncPins() {
	if _, running := s.pool().MasterPID(); !running {
		return
	}
	if p, err := poolfs.ReadAutoscaleOff(s.paths.AutoscaleOff); err == nil {
		s.pins = p
	}
}

func copyPins(p map[string]bool) map[string]bool {
	out := make(map[string]bool, len(p))
	for q, ok := range p {
		if ok {
			out[q] = true
		}
	}
	return out
}

// pinChanges lists what config's update upd does to the pins of the
// configuration next: an autoscaled queue list given a count is pinned
// at it; a queue list removed (count 0) loses its pin.
func pinChanges(next *spec.Config, upd spec.Spec, pins map[string]bool) (pin []spec.Entry, unpin []string) {
	for _, e := range upd {
		switch {
		case e.Count == 0 && pins[e.Queues]:
			unpin = append(unpin, e.Queues)
		case e.Count > 0 && next.Groups[e.Queues].Autoscale != nil:
			pin = append(pin, e)
		}
	}
	return pin, unpin
}

// explainAutoscale is autoscale explain [QUEUES...].
func (s *Session) explainAutoscale(ctx context.Context, names []string, asJSON bool) error {
	v, err := s.readAutoscaleView(ctx, 0)
	if err != nil {
		return err
	}
	var lists []string
	for _, g := range v.state.Groups {
		if g.Autoscale != nil {
			lists = append(lists, g.Queues)
		}
	}
	picked, err := pickAutoscaled(s.paths.Name, names, lists)
	if err != nil {
		return err
	}
	if v.sample == nil {
		v.sample = s.recentSample(ctx, v.pid, s.sampleWait())
		if st, live, err := s.pool().State(); err == nil && live {
			v.state = st // the state the sample goes with
		}
	}
	if v.sample == nil {
		return fmt.Errorf("pool %s: no recent sample from the master (it samples every %s); try again", s.paths.Name, s.cfg.SampleInterval)
	}
	type explained struct {
		Queues string `json:"queues"`
		Mode   string `json:"mode"`
		autoscale.Explanation
		Last *AutoscaleDecision `json:"last_decision"`
	}
	out := struct {
		Pool     string      `json:"pool"`
		SampleAt time.Time   `json:"sample_at"`
		Groups   []explained `json:"groups"`
	}{Pool: s.paths.Name, SampleAt: v.sample.TS}
	now := time.Now()
	for _, q := range picked {
		for _, g := range v.state.Groups {
			if g.Queues != q || g.Autoscale == nil {
				continue
			}
			x := explained{Queues: q, Mode: g.Autoscale.Mode, Explanation: v.explain(g)}
			if a := g.Autoscale; a.Reason != "" {
				x.Last = &AutoscaleDecision{Reason: a.Reason, At: a.At, AgeSeconds: math.Max(0, now.Sub(a.At).Round(100*time.Millisecond).Seconds())}
			}
			out.Groups = append(out.Groups, x)
		}
	}
	if asJSON {
		b, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("autoscale explain --json: %w", err)
		}
		fmt.Fprintf(s.out, "%s\n", b)
		return nil
	}
	age := now.Sub(v.sample.TS).Round(100 * time.Millisecond)
	for i, x := range out.Groups {
		if i > 0 {
			fmt.Fprintln(s.out)
		}
		printExplanation(s.out, x.Queues, x.Mode, x.Explanation, age)
		if x.Last != nil {
			fmt.Fprint(s.out, wrap(fmt.Sprintf("last decision %s ago: %s", humanDuration(time.Duration(x.Last.AgeSeconds*float64(time.Second))), x.Last.Reason), reasonWidth, "  ", "    "))
		}
	}
	return nil
}

// printExplanation prints one queue list's computation.
func printExplanation(w io.Writer, queues, mode string, e autoscale.Explanation, age time.Duration) {
	fmt.Fprintf(w, "%s: autoscale %s, %d..%d; desired %d, live %d (%d idle); sample %s old\n", queues, mode, e.Min, e.Max, e.Current, e.Live, e.Idle, age)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "  %-14s %s\n", k, fmt.Sprintf(format, args...)) }
	row("λ in rate", "%s", fmtRate(e.Lambda))
	if e.S > 0 {
		row("S job time", "%s", fmtJob(e.S))
	} else {
		row("S job time", "not known yet (no job finished)")
	}
	row("B backlog", "%d", e.B)
	row("T target wait", "%s", fmtSecs(e.T))
	if e.Law != nil {
		row("λ·S + B·S/T", "%.2f + %.2f = %.2f → %d", e.Lambda*e.S, float64(e.B)*e.S/e.T, *e.Law, int(math.Ceil(*e.Law)))
	} else {
		row("λ·S + B·S/T", "does not apply: %s", e.How)
	}
	switch e.Clamp {
	case "":
		row("bounds", "%d..%d: %d", e.Min, e.Max, e.Want)
	default:
		row("bounds", "%d..%d: %s, %d", e.Min, e.Max, e.Clamp, e.Want)
	}
	if len(e.Limits) == 0 {
		row("limits", "none set")
	}
	for _, l := range e.Limits {
		if l.Room == nil {
			row("limit", "%s: no bound yet (%s; the workers' use is not measured yet)", l.Limit, l.Why)
			continue
		}
		row("limit", "%s: room for %d more (%s)", l.Limit, *l.Room, l.Why)
	}
	var verdict string
	switch {
	case e.Desired > e.Current:
		verdict = fmt.Sprintf("scale up %d→%d", e.Current, e.Desired)
	case e.Desired < e.Current:
		verdict = fmt.Sprintf("scale down %d→%d once the surplus has lasted down_after", e.Current, e.Desired)
	case e.Decision.Hold:
		verdict = fmt.Sprintf("hold at %d", e.Current)
	default:
		verdict = fmt.Sprintf("stay at %d", e.Current)
	}
	policy := "policy"
	if mode == poolfs.AutoscaleOff {
		policy = "policy if on (pinned now)"
	}
	fmt.Fprint(w, wrap(fmt.Sprintf("%s: %s: %s", policy, verdict, e.Reason), reasonWidth, "  ", "    "))
}

// writeStartPins writes this shell's pins for a master about to start
// (none runs): a pool started afresh starts unpinned, one this shell
// restarts keeps its pins. A running master's pins are left alone: they
// change only through changePins.
func (s *Session) writeStartPins() error {
	if _, running := s.pool().MasterPID(); running || s.pins == nil {
		return nil
	}
	if _, err := os.Stat(s.paths.AutoscaleOff); len(s.pins) == 0 && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return s.writePins(s.pins)
}

// autoscaleSuggestions completes autoscale's arguments: its sub-commands
// first, then the autoscaled queue lists (from the shell's configuration:
// completion never waits for anything).
func (s *Session) autoscaleSuggestions(args []string, newWord bool) []prompt.Suggest {
	done := len(args)
	if !newWord {
		done-- // the word being typed
	}
	var out []prompt.Suggest
	if done == 0 {
		out = append(out,
			prompt.Suggest{Text: "on", Description: "hand queue lists to the autoscaler"},
			prompt.Suggest{Text: "off", Description: "pin queue lists at their configured count"},
			prompt.Suggest{Text: "explain", Description: "the policy's computation for the current sample"},
			prompt.Suggest{Text: "--json", Description: "one JSON object"})
	}
	if done >= 1 && (args[0] == "on" || args[0] == "off" || args[0] == "explain") {
		for _, e := range s.cfg.Workers {
			if g, ok := s.cfg.Groups[e.Queues]; ok && g.Autoscale != nil {
				out = append(out, prompt.Suggest{Text: e.Queues, Description: "autoscaled queue list"})
			}
		}
	}
	return out
}

// statusSampleWait bounds how long status waits for a recent sample for
// its autoscale lines.
const statusSampleWait = 1500 * time.Millisecond

// addAutoscaleInputs gives status's autoscaled queue lists the inputs of
// a recent sample, if one comes soon enough.
func (s *Session) addAutoscaleInputs(ctx context.Context, st *Status) {
	if !hasAutoscaled(st.state) {
		return
	}
	v := autoscaleView{pid: st.state.PID, state: st.state}
	v.sample = s.recentSample(ctx, st.state.PID, min(s.cfg.SampleInterval+300*time.Millisecond, statusSampleWait))
	groups := map[string]poolfs.GroupState{}
	for _, g := range st.state.Groups {
		groups[g.Queues] = g
	}
	for i, g := range st.Groups {
		if g.Autoscale != nil {
			st.Groups[i].inputs = v.inputs(groups[g.Queues])
		}
	}
}

// autoscaleStatusLine is status's line for an autoscaled queue list:
// "work: autoscale on 1..16 (target wait 2s): 9 — backlog 5400, in 310/s, job 28ms".
func autoscaleStatusLine(g GroupStatus) string {
	a := g.Autoscale
	if a.Mode == poolfs.AutoscaleOff {
		return fmt.Sprintf("%s: autoscale off (pinned at %d; `autoscale on %s` resumes) %d..%d (target wait %s)",
			g.Queues, a.Configured, Quote(g.Queues), a.Min, a.Max, fmtSecs(a.TargetWait))
	}
	line := fmt.Sprintf("%s: autoscale on %d..%d (target wait %s): %d", g.Queues, a.Min, a.Max, fmtSecs(a.TargetWait), g.Desired)
	if g.inputs != nil {
		line += " — " + inputsText(g.inputs)
	}
	return line
}

// explain is the policy's computation for g on the view's sample.
func (v autoscaleView) explain(g poolfs.GroupState) autoscale.Explanation {
	in, _ := autoscale.InputFor(v.sample, v.state, g)
	return autoscale.Explain(in)
}
