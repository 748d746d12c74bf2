package shell

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/poolctl/poolctl/shell/topview"

	"github.com/poolctl/poolctl/internal/proc"
	"github.com/poolctl/poolctl/internal/redact"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
)

// Status is the document printed by status --json. See the package
// documentation for the meaning of every field.
type Status struct {
	Name       string           `json:"name"`
	State      string           `json:"state"` // running | paused | suspended | stopping | stopped
	PID        int              `json:"pid"`   // the master's; 0 when stopped
	StartedAt  *time.Time       `json:"started_at,omitempty"`
	ConfigPath string           `json:"config_path"`
	LogPath    string           `json:"log_path"`
	Spec       string           `json:"spec"`
	Config     map[string]int   `json:"config"`
	Overrides  string           `json:"overrides,omitempty"` // the shell's changes on top of the -c file
	Error      string           `json:"error,omitempty"`
	Groups     []GroupStatus    `json:"groups"`
	Workers    []WorkerStatus   `json:"workers"`
	Queues     map[string]int64 `json:"queues"`
	Processed  *int64           `json:"processed"`
	Failed     *int64           `json:"failed"`
	Redis      string           `json:"redis,omitempty"`
	RedisError string           `json:"redis_error,omitempty"`
	// Namespace is the key namespace in force: the master's (state.json),
	// else the one this shell reads with; hash-tagged on a Cluster.
	Namespace string `json:"namespace,omitempty"`
	// WorkersPausedAt is when USR2 paused the workers, whoever sent it
	// (the master records it); absent when they are not paused.
	WorkersPausedAt *time.Time `json:"workers_paused_at,omitempty"`
	// Metrics is the address the master serves Prometheus /metrics on
	// (state.json's metrics); absent when off.
	Metrics string `json:"metrics,omitempty"`
	// Restart is the rolling restart under way, else the last one
	// (state.json's restart); absent when none.
	Restart *poolfs.RestartState `json:"restart,omitempty"`

	state *poolfs.State // the master's, nil when it is not running
}

// GroupStatus is one queue list of the configuration in force.
type GroupStatus struct {
	Queues  string `json:"queues"`
	Desired int    `json:"desired"`
	Live    int    `json:"live"`
	State   string `json:"state"` // ok | backoff | fatal
	Reason  string `json:"reason,omitempty"`
	// Autoscale is the queue list's autoscaling as the master publishes
	// it (mode, bounds, target wait, last decision); absent when it is
	// not autoscaled.
	Autoscale *poolfs.AutoscaleState `json:"autoscale,omitempty"`
	// Recycled counts the workers recycled since the master started, by
	// reason (rss, jobs, lifetime); absent when none was.
	Recycled map[string]int `json:"recycled,omitempty"`

	inputs *AutoscaleInputs // from a recent sample, for the text form
}

// WorkerStatus is one live worker process.
type WorkerStatus struct {
	PID           int        `json:"pid"`
	Queues        string     `json:"queues"`
	State         string     `json:"state"`         // "Waiting for foo", "Processing Archive since 12s", "starting", "running", "stopping"
	ProcessState  string     `json:"process_state"` // starting | running | stopping (from the master)
	Job           *JobStatus `json:"job"`
	StartedAt     time.Time  `json:"started_at"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	Restarts      int        `json:"restarts"`
	CPUPercent    float64    `json:"cpu_percent"`
	RSSBytes      uint64     `json:"rss_bytes"`
	LastExit      string     `json:"last_exit,omitempty"`
	Roll          string     `json:"roll,omitempty"` // in a rolling restart: old (to be replaced), new (not ready yet)
}

// JobStatus is the job a worker is processing.
type JobStatus struct {
	Class   string          `json:"class"`
	Queue   string          `json:"queue"`
	RunAt   string          `json:"run_at"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// collectStatus gathers the state file, one process scan and one Redis
// summary.
func (s *Session) collectStatus(ctx context.Context) *Status {
	s.refreshConfig()
	now := time.Now()
	st := &Status{
		Name:       s.paths.Name,
		State:      "stopped",
		ConfigPath: s.configPath,
		LogPath:    s.logPath,
		Spec:       s.cfg.Workers.String(),
		Config:     map[string]int{},
		Groups:     []GroupStatus{},
		Workers:    []WorkerStatus{},
		Queues:     map[string]int64{},
	}
	for _, e := range s.cfg.Workers {
		st.Config[e.Queues] = e.Count
	}
	if s.userFile != "" {
		st.Overrides = s.overrides.UpdateString()
	}
	var ps *poolfs.State
	pausedAt := s.usr2At // what this shell sent, until the master says
	if pid, ok := s.pool().MasterPID(); ok {
		st.PID = pid
		st.State = poolfs.MasterRunning
		if x, live, err := s.pool().State(); err == nil && live {
			ps = x
			if x.Status != "" {
				st.State = x.Status
			}
			t := x.StartedAt
			st.StartedAt = &t
			st.Error = x.Error
			st.Metrics = x.Metrics
			st.Namespace = x.Namespace
			st.Restart = x.Restart
			pausedAt = x.WorkersPausedAt // USR2 from anyone, cleared by CONT
			// What the master runs, not what this shell last asked for or
			// a file edited since: status tells the truth.
			if w, err := spec.Parse(x.Spec); err == nil {
				st.Spec = x.Spec
				clear(st.Config)
				for _, e := range w {
					st.Config[e.Queues] = e.Count
				}
			}
		}
		if !pausedAt.IsZero() {
			st.WorkersPausedAt = &pausedAt
		}
		switch {
		case processStopped(pid):
			st.State = stateSuspended
		case st.State == poolfs.MasterRunning && !pausedAt.IsZero():
			st.State = poolfs.MasterPaused // its workers, by USR2
		}
	}

	// Redis: queue depths, stats, what each worker is doing.
	byPID := map[int]queue.WorkerInfo{}
	if qc, url, err := s.queueClient(); err != nil {
		if url != "" {
			st.Redis = redact.URL(url)
		}
		st.RedisError = err.Error()
	} else {
		st.Redis = redact.URL(url)
		if st.Namespace == "" {
			st.Namespace = qc.Keys().Namespace()
		}
		rctx, cancel := context.WithTimeout(ctx, summaryTimeout)
		sum, err := qc.Summarize(rctx)
		cancel()
		if err != nil {
			st.RedisError = err.Error()
		} else {
			st.Queues = sum.Queues
			st.Processed, st.Failed = &sum.Processed, &sum.Failed
			host, _ := os.Hostname()
			for _, w := range sum.Workers {
				if host == "" || w.Host == host {
					byPID[w.PID] = w
				}
			}
		}
	}

	if ps == nil {
		return st
	}
	st.state = ps
	procs := map[int]*pstree.Proc{}
	if tree, err := s.sampler.Tree(ctx, int32(ps.PID)); err == nil {
		tree.Walk(func(p *pstree.Proc, _ int) { procs[int(p.PID)] = p })
	}
	for _, g := range ps.Groups {
		st.Groups = append(st.Groups, GroupStatus{Queues: g.Queues, Desired: g.Desired, Live: g.Live, State: g.State, Reason: g.Reason, Autoscale: g.Autoscale, Recycled: g.Recycled})
	}
	// Workers grouped by queue list in the order of the configuration in
	// force (the master publishes them by pid), then by pid; workers of
	// queue lists no longer configured (stopping) last.
	rank := map[string]int{}
	for i, g := range ps.Groups {
		rank[g.Queues] = i + 1
	}
	workers := append([]poolfs.WorkerState(nil), ps.Workers...)
	sort.SliceStable(workers, func(i, j int) bool {
		ri, rj := rank[workers[i].Queues], rank[workers[j].Queues]
		if ri == 0 {
			ri = len(rank) + 1
		}
		if rj == 0 {
			rj = len(rank) + 1
		}
		if ri != rj {
			return ri < rj
		}
		return workers[i].PID < workers[j].PID
	})
	for _, w := range workers {
		ws := WorkerStatus{
			PID: w.PID, Queues: w.Queues, ProcessState: w.State, StartedAt: w.StartedAt,
			UptimeSeconds: now.Sub(w.StartedAt).Round(time.Second).Seconds(),
			Restarts:      w.Restarts, LastExit: w.LastExit, Roll: w.Roll,
		}
		if p := procs[w.PID]; p != nil {
			p.Walk(func(q *pstree.Proc, _ int) {
				ws.CPUPercent += q.CPUPercent
				ws.RSSBytes += q.RSSBytes
			})
		}
		info, registered := byPID[w.PID]
		if registered && info.Job != nil {
			ws.Job = &JobStatus{Class: info.Job.Class(), Queue: info.Job.Queue, RunAt: info.Job.RunAt, Payload: info.Job.Payload}
		}
		ws.State = workerStateText(w, registered, info, now)
		if ws.State == "Waiting for "+info.Queues && (w.Paused || (!pausedAt.IsZero() && w.StartedAt.Before(pausedAt))) {
			ws.State = "Paused (USR2)"
		}
		st.Workers = append(st.Workers, ws)
	}
	return st
}

// stateSuspended is the state of a master stopped by SIGSTOP or SIGTSTP:
// it does nothing until CONT.
const stateSuspended = "suspended"

// processStopped reports whether pid is stopped by a signal (state T).
func processStopped(pid int) bool {
	st, err := proc.ReadStat(pid)
	return err == nil && st.State == 'T'
}

// processAlive reports whether pid is a process that has not exited (not
// a zombie).
func processAlive(pid int) bool {
	st, err := proc.ReadStat(pid)
	return err == nil && !st.Dead()
}

// workerStateText is what a worker is doing, in Resque's words.
func workerStateText(w poolfs.WorkerState, registered bool, info queue.WorkerInfo, now time.Time) string {
	switch {
	case w.State == poolfs.WorkerStopping:
		return "stopping"
	case registered && info.Job != nil:
		class := info.Job.Class()
		if class == "" {
			class = "a job"
		}
		if t, err := time.Parse(time.RFC3339, info.Job.RunAt); err == nil {
			return fmt.Sprintf("Processing %s since %s", class, humanDuration(now.Sub(t)))
		}
		return "Processing " + class
	case registered:
		return "Waiting for " + info.Queues
	default:
		return w.State
	}
}

// humanDuration formats d as 12s, 3m04s, 2h05m or 3d04h (top's format).
func humanDuration(d time.Duration) string { return topview.HumanDuration(d) }

func cmdStatus(ctx context.Context, s *Session, args []string) error {
	asJSON := false
	if len(args) == 1 {
		if args[0] != "--json" {
			return &UsageError{Lookup("status"), fmt.Sprintf("unknown option %q", args[0])}
		}
		asJSON = true
	}
	st := s.collectStatus(ctx)
	if asJSON {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.out, "%s\n", b)
		return nil
	}
	s.addAutoscaleInputs(ctx, st)
	s.printStatus(st)
	return nil
}

func (s *Session) printStatus(st *Status) {
	w := s.out
	if st.PID == 0 {
		fmt.Fprintf(w, "pool %s: not running\n", st.Name)
	} else {
		up := ""
		if st.StartedAt != nil {
			up = ", up " + humanDuration(time.Since(*st.StartedAt))
		}
		switch {
		case st.State == stateSuspended:
			fmt.Fprintf(w, "pool %s: stopped by SIGSTOP or SIGTSTP (master pid %d%s); kill! CONT resumes it\n", st.Name, st.PID, up)
		case st.State == poolfs.MasterPaused && st.WorkersPausedAt != nil:
			fmt.Fprintf(w, "pool %s: paused: workers paused by USR2 (master pid %d%s); kill! CONT resumes them\n", st.Name, st.PID, up)
		default:
			fmt.Fprintf(w, "pool %s: %s (master pid %d%s)\n", st.Name, st.State, st.PID, up)
		}
	}
	total := 0
	for _, n := range st.Config {
		total += n
	}
	running, _ := spec.Parse(st.Spec)
	fmt.Fprintf(w, "config: %s (%d worker%s)\n", running.Describe(), total, plural(total))
	if st.PID != 0 && s.cfg.Workers.String() != st.Spec {
		fmt.Fprintf(w, "not applied yet: %s (reload applies it)\n", s.cfg.Workers.Describe())
	}
	if st.Overrides != "" {
		fmt.Fprintf(w, "overrides from the shell: %s (on top of %s)\n", st.Overrides, s.userFile)
	}
	if st.Error != "" {
		fmt.Fprintf(w, "reload error: %s\n", st.Error)
	}
	if line := restartStatusLine(st.Restart); line != "" && st.PID != 0 {
		fmt.Fprintln(w, line)
	}
	if st.PID != 0 {
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  PID\tQUEUES\tSTATE\tUPTIME\tRESTARTS\tCPU%\tRSS")
		for _, x := range st.Workers {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%.1f\t%s\n", x.PID, x.Queues, x.State+rollText(x.Roll),
				humanDuration(time.Duration(x.UptimeSeconds)*time.Second), x.Restarts, x.CPUPercent, pstree.HumanBytes(x.RSSBytes))
		}
		var reasons []string
		for _, g := range st.Groups {
			if missing := g.Desired - g.Live; missing > 0 && g.State != poolfs.GroupOK {
				text := "backoff"
				if g.State == poolfs.GroupFatal {
					text = "FATAL"
				}
				if g.Reason != "" {
					// The reason (a command line, a path) goes below the
					// table, wrapped, so that it does not widen it.
					reasons = append(reasons, wrap(fmt.Sprintf("%s %s: %s", g.Queues, text, g.Reason), reasonWidth, "  ", "    "))
				}
				fmt.Fprintf(tw, "  -\t%s\t%s (%d missing)\t-\t-\t-\t-\n", g.Queues, text, missing)
			}
		}
		tw.Flush()
		for _, r := range reasons {
			fmt.Fprint(w, r)
		}
		for _, g := range st.Groups {
			if g.Autoscale != nil {
				fmt.Fprintf(w, "  %s\n", autoscaleStatusLine(g))
			}
			if len(g.Recycled) > 0 {
				var parts []string
				for _, kind := range slices.Sorted(maps.Keys(g.Recycled)) {
					parts = append(parts, fmt.Sprintf("%s %d", kind, g.Recycled[kind]))
				}
				fmt.Fprintf(w, "  %s recycled: %s\n", g.Queues, strings.Join(parts, ", "))
			}
		}
		if len(st.Workers) == 0 && len(st.Groups) == 0 {
			fmt.Fprintln(w, "  (no workers)")
		}
	}
	switch {
	case st.RedisError != "" && st.Redis != "":
		fmt.Fprintf(w, "queues: unavailable: Redis %s: %s\n", st.Redis, st.RedisError)
	case st.RedisError != "":
		fmt.Fprintf(w, "queues: unavailable: %s\n", st.RedisError)
	default:
		names := make([]string, 0, len(st.Queues))
		for q := range st.Queues {
			names = append(names, q)
		}
		sort.Strings(names)
		var parts []string
		for _, q := range names {
			parts = append(parts, fmt.Sprintf("%s=%d", q, st.Queues[q]))
		}
		if len(parts) == 0 {
			parts = []string{"(none)"}
		}
		fmt.Fprintf(w, "queues: %s\n", strings.Join(parts, " "))
		ns := ""
		if st.Namespace != "" && st.Namespace != queue.DefaultNamespace {
			ns = ", namespace " + st.Namespace
		}
		fmt.Fprintf(w, "processed: %d  failed: %d  (Redis %s%s)\n", *st.Processed, *st.Failed, st.Redis, ns)
	}
	if st.Metrics != "" {
		fmt.Fprintf(w, "metrics: http://%s/metrics\n", st.Metrics)
	}
}

// reasonWidth is where status wraps the reason of a queue list that backs
// off or is FATAL.
const reasonWidth = 96

// wrap breaks text into lines of at most width bytes, the first prefixed
// with first, the others with rest, at spaces where it can and anywhere
// in words longer than a line. Every line ends with a newline.
func wrap(text string, width int, first, rest string) string {
	var b strings.Builder
	line, prefix := "", first
	flush := func() {
		b.WriteString(prefix + line + "\n")
		line, prefix = "", rest
	}
	for _, word := range strings.Fields(text) {
		for {
			room := width - len(prefix) - len(line)
			if line != "" {
				room-- // the space before the word
			}
			if len(word) <= room {
				if line != "" {
					line += " "
				}
				line += word
				break
			}
			if line != "" && len(word) <= width-len(rest) {
				flush() // the word fits on a line of its own
				continue
			}
			if room <= 0 {
				flush()
				continue
			}
			if line != "" {
				line += " "
			}
			line += word[:room]
			word = word[room:]
			flush()
		}
	}
	if line != "" {
		flush()
	}
	return b.String()
}
