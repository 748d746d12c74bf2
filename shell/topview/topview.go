// Package topview is the screen of the shell's top command as a pure
// function: from the pool's latest sample and state, the selected queue
// list and the terminal's size to the lines to draw. It knows no terminal
// and reads no file, so table tests cover it without either.
//
// Every line it returns fits the width it is given (counted in terminal
// cells: wide characters take two), holds no control characters (names,
// job classes and log lines from outside are made printable), and there
// are never more lines than the height.
package topview

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/charmbracelet/x/ansi"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/pstree"
	"github.com/poolctl/poolctl/stats"
)

// Style says how a line is drawn; the view itself is plain text.
type Style int

// Line styles.
const (
	Plain    Style = iota
	Title          // the header's first line
	Heading        // a table's column names, a section's title
	Selected       // the selected queue list
	Warning        // a missing or stale sample, an error
	Dim            // log lines, the key help
)

// Line is one line of the screen.
type Line struct {
	Text  string
	Style Style
	group bool // a queue list's line in the worker table
}

// Input is everything the screen shows.
type Input struct {
	Pool      string
	Now       time.Time
	MasterPID int           // 0: no master runs
	State     *poolfs.State // the running master's state; nil when there is none
	Sample    *stats.Sample // the latest sample; nil when there is none
	// SampleErr says why the sample file could not be read, when it
	// exists but does not decode ("" otherwise).
	SampleErr string
	Selected  string       // the selected queue list
	Paused    map[int]bool // workers known to be paused (USR2)
	Log       []string     // the last lines of the pool log, oldest first
	Message   string       // the result of the last key's action
	// WatchingSince is when the screen started asking the master for
	// samples (see Freshness).
	WatchingSince time.Time
	Error         bool // Message is an error
	Width         int  // terminal columns; <= 0 means 80
	Height        int  // terminal rows; <= 0 means 24
}

// Default size of a terminal that did not say.
const (
	DefaultWidth  = 80
	DefaultHeight = 24
)

// StaleAfter is how many sample intervals old a sample may be before it
// is shown as stale.
const StaleAfter = 3

// Freshness says whether s is a current sample of the master masterPID
// (0: not known) at now, and if not, why, in the words the screen and
// top --json use: "no sample yet", "sample 12s old: is the master
// stopped?". since is when the reader started asking for samples (zero:
// long ago): a master publishes only while someone reads, so within
// StaleAfter intervals of since an old sample means only that the first
// one is on its way.
func Freshness(s *stats.Sample, masterPID int, now, since time.Time) (fresh bool, why string) {
	if s == nil || s.TS.IsZero() {
		return false, "no sample yet"
	}
	if masterPID != 0 && s.Master.PID != 0 && s.Master.PID != masterPID {
		// Left by an earlier master of the pool.
		return false, "no sample yet"
	}
	interval := time.Duration(s.Interval * float64(time.Second))
	if interval <= 0 {
		interval = time.Second
	}
	age := now.Sub(s.TS)
	switch {
	case age <= StaleAfter*interval:
		return true, ""
	case now.Sub(since) <= StaleAfter*interval:
		return false, "no sample yet"
	}
	return false, fmt.Sprintf("sample %s old: is the master stopped?", HumanDuration(age))
}

// Keys is the key help at the bottom of the screen.
const Keys = "↑/↓ select  + add worker  - remove worker  p pause/resume  r reload  q quit"

// Render draws the screen.
func Render(in Input) []Line {
	w, h := in.Width, in.Height
	if w <= 0 {
		w = DefaultWidth
	}
	if h <= 0 {
		h = DefaultHeight
	}
	if s := in.Sample; s != nil && in.MasterPID != 0 && s.Master.PID != 0 && s.Master.PID != in.MasterPID {
		in.Sample = nil // an earlier master's: nothing of it is current
	}
	head := header(in)
	var foot []Line
	if in.Message != "" {
		st := Plain
		if in.Error {
			st = Warning
		}
		foot = append(foot, Line{Text: in.Message, Style: st})
	}
	foot = append(foot, Line{Text: Keys, Style: Dim})

	queues := queueLines(in, w)
	workers, selAt := workerLines(in, w)
	logs := logLines(in)

	var out []Line
	avail := h - len(head) - len(foot)
	if avail < 0 {
		// Too small for anything but the header: keep the key help.
		out = append(out, head...)
		out = append(out[:max(0, h-1)], foot[len(foot)-1])
		return finish(out, w, h)
	}
	need := len(queues) + len(workers) + len(logs)
	blanks := 0
	for _, sec := range [][]Line{queues, workers, logs} {
		if len(sec) > 0 {
			blanks++
		}
	}
	out = append(out, head...)
	if need+blanks <= avail {
		for _, sec := range [][]Line{queues, workers, logs} {
			if len(sec) > 0 {
				out = append(out, Line{})
				out = append(out, sec...)
			}
		}
		// The key help at the bottom of the screen.
		for len(out)+len(foot) < h {
			out = append(out, Line{})
		}
		out = append(out, foot...)
		return finish(out, w, h)
	}
	// Not everything fits: the log gets a fifth of the room, the queues at
	// most half of what is left, the workers the rest.
	logN := min(len(logs), avail/5)
	if logN == 1 {
		logN = 0 // a title without lines says nothing
	}
	rest := avail - logN
	qN := min(len(queues), max(min(len(queues), 3), rest/2), rest)
	wN := rest - qN
	if wN > len(workers) {
		// Workers need less: give the room back to the queues.
		qN = min(len(queues), qN+wN-len(workers))
		wN = len(workers)
	}
	out = append(out, cut(queues, qN, "queues")...)
	out = append(out, fitWorkers(workers, selAt, wN)...)
	if logN > 0 {
		out = append(out, logs[0])
		out = append(out, logs[len(logs)-(logN-1):]...)
	}
	for len(out)+len(foot) < h {
		out = append(out, Line{})
	}
	out = append(out, foot...)
	return finish(out, w, h)
}

// finish makes every line printable and at most w cells wide, and keeps
// at most h lines.
func finish(lines []Line, w, h int) []Line {
	if len(lines) > h {
		lines = lines[:h]
	}
	for i := range lines {
		lines[i].Text = Truncate(Printable(lines[i].Text), w)
	}
	return lines
}

// cut keeps the first n lines of a section whose first line is its
// heading, the last kept line saying how many were left out.
func cut(sec []Line, n int, what string) []Line {
	if n >= len(sec) {
		return sec
	}
	if n <= 0 {
		return nil
	}
	out := append([]Line(nil), sec[:n]...)
	if n >= 2 {
		out[n-1] = Line{Text: fmt.Sprintf("  … %d more %s", len(sec)-(n-1), what), Style: Dim}
	}
	return out
}

// header is the pool, its master, the host and the sample's age.
func header(in Input) []Line {
	var t strings.Builder
	fmt.Fprintf(&t, "pool %s", in.Pool)
	switch {
	case in.MasterPID == 0:
		t.WriteString(" · not running")
	default:
		fmt.Fprintf(&t, " · master %d", in.MasterPID)
		if in.State != nil {
			if !in.State.StartedAt.IsZero() {
				fmt.Fprintf(&t, " up %s", HumanDuration(in.Now.Sub(in.State.StartedAt)))
			}
			if in.State.Status != "" && in.State.Status != poolfs.MasterRunning {
				fmt.Fprintf(&t, " · %s", in.State.Status)
			}
			live, desired := 0, 0
			for _, g := range in.State.Groups {
				live += g.Live
				desired += g.Desired
			}
			fmt.Fprintf(&t, " · workers %d/%d", live, desired)
		}
	}
	lines := []Line{{Text: t.String(), Style: Title}}

	var host strings.Builder
	if s := in.Sample; s != nil {
		fmt.Fprintf(&host, "load %.2f %.2f %.2f · cpu %.0f%%", s.Host.Load1, s.Host.Load5, s.Host.Load15, s.Host.CPUPercent)
		if s.Host.CPUs > 0 {
			fmt.Fprintf(&host, " of %d", s.Host.CPUs)
		}
		fmt.Fprintf(&host, " · mem free %s", pstree.HumanBytes(s.Host.MemFreeBytes))
		if s.Host.MemTotal > 0 {
			fmt.Fprintf(&host, " of %s", pstree.HumanBytes(s.Host.MemTotal))
		}
		host.WriteString(" · ")
	}
	redis := "Redis ?"
	if in.State != nil && in.State.Redis != "" {
		redis = "Redis " + in.State.Redis
	}
	host.WriteString(redis)
	lines = append(lines, Line{Text: host.String()})

	fresh, why := Freshness(in.Sample, in.MasterPID, in.Now, in.WatchingSince)
	switch {
	case in.MasterPID == 0:
		lines = append(lines, Line{Text: "the master is not running: start it, or attach to a running pool", Style: Warning})
	case in.SampleErr != "":
		lines = append(lines, Line{Text: "sample unreadable: " + in.SampleErr, Style: Warning})
	case !fresh:
		lines = append(lines, Line{Text: why, Style: Warning})
	case in.Sample.RedisError != "":
		lines = append(lines, Line{Text: "Redis unavailable: " + in.Sample.RedisError + " (queue figures are the last known)", Style: Warning})
	default:
		every := time.Duration(in.Sample.Interval * float64(time.Second)).Round(time.Millisecond)
		lines = append(lines, Line{Text: fmt.Sprintf("sample %s · every %s", in.Sample.TS.Local().Format("15:04:05"), every)})
	}
	return lines
}

// queue table column widths (the name's and the history's vary).
const (
	colDepth = 7
	colRate  = 6
	colState = 20
	colTime  = 6
	colFail  = 6
	// qFixed is the width of the fixed columns with their separators.
	qFixed  = 1 + colDepth + 2*(1+colRate) + 1 + colState + 2*(1+colTime) + 1 + colFail
	minHist = 8
)

// queueLines is the queue table: a heading and a row per queue.
func queueLines(in Input, w int) []Line {
	s := in.Sample
	if s == nil {
		return []Line{{Text: "QUEUES", Style: Heading}, {Text: "  (no sample yet)", Style: Dim}}
	}
	nameW := len("QUEUE")
	for _, q := range s.Queues {
		nameW = max(nameW, ansi.StringWidth(Printable(q.Name)))
	}
	// At most a third of the screen, and room for the history on a wide
	// one; on a narrow one the name keeps 10 cells and the line is cut.
	nameW = min(nameW, max(10, min(w/3, w-qFixed-minHist-1)))
	histW := w - nameW - qFixed - 1
	row := func(name, depth, in, out, state, p50, p95, fail, hist string) string {
		line := Pad(name, nameW) + " " + PadLeft(depth, colDepth) + " " + PadLeft(in, colRate) + " " + PadLeft(out, colRate) +
			" " + Pad(state, colState) + " " + PadLeft(p50, colTime) + " " + PadLeft(p95, colTime) + " " + PadLeft(fail, colFail)
		if histW >= minHist {
			line += " " + hist
		}
		return strings.TrimRight(line, " ")
	}
	lines := []Line{{Text: row("QUEUE", "DEPTH", "IN/S", "OUT/S", "STATE", "P50", "P95", "FAIL/M", "DEPTH HISTORY"), Style: Heading}}
	if len(s.Queues) == 0 {
		return append(lines, Line{Text: "  (no queues)", Style: Dim})
	}
	for _, q := range s.Queues {
		hist := ""
		if histW >= minHist {
			hist = Sparkline(s.History[q.Name], histW)
		}
		lines = append(lines, Line{Text: row(Printable(q.Name), Count(q.Depth), Rate(q.InRate), Rate(q.OutRate), QueueState(q),
			Seconds(q.JobSeconds.P50), Seconds(q.JobSeconds.P95), Rate(q.FailRate1m), hist)})
	}
	return lines
}

// QueueState is a queue's state as the screen says it: "draining 3m04s"
// (the time to empty), "growing: won't drain", "stalled", "empty", "busy".
func QueueState(q stats.QueueSample) string {
	switch q.State {
	case stats.QueueDraining:
		if q.ETASeconds != nil {
			return "draining " + HumanDuration(time.Duration(*q.ETASeconds*float64(time.Second)))
		}
		return "draining"
	case stats.QueueGrowing:
		return "growing: won't drain"
	case "":
		return "-"
	}
	return q.State
}

// worker table column widths (the job's varies).
const (
	colPID     = 7
	colWState  = 8
	colRuntime = 7
	colDone    = 7
	colCPU     = 6
	colRSS     = 10
	wFixed     = 4 + colPID + 1 + colWState + 1 + 1 + colRuntime + 1 + colDone + 1 + colCPU + 1 + colRSS
)

// workerLines is the worker table grouped by queue list: a heading, then
// per queue list its line and its workers. selAt is the index of the
// selected queue list's line (-1 when none is).
func workerLines(in Input, w int) (lines []Line, selAt int) {
	selAt = -1
	jobW := max(12, w-wFixed)
	row := func(indent, pid, state, job, runtime, done, cpu, rss string) string {
		return strings.TrimRight(indent+PadLeft(pid, colPID)+" "+Pad(state, colWState)+" "+Pad(job, jobW)+" "+PadLeft(runtime, colRuntime)+
			" "+PadLeft(done, colDone)+" "+PadLeft(cpu, colCPU)+" "+PadLeft(rss, colRSS), " ")
	}
	lines = append(lines, Line{Text: row("    ", "PID", "STATE", "JOB", "RUNTIME", "DONE", "CPU%", "RSS"), Style: Heading})
	st := in.State
	if st == nil {
		return append(lines, Line{Text: "  (no workers: the master is not running)", Style: Dim}), selAt
	}
	if len(st.Groups) == 0 && len(st.Workers) == 0 {
		return append(lines, Line{Text: "  (no queue lists configured)", Style: Dim}), selAt
	}
	bySample := map[int]stats.WorkerSample{}
	if in.Sample != nil {
		for _, ws := range in.Sample.Workers {
			bySample[ws.PID] = ws
		}
	}
	type group struct {
		g       poolfs.GroupState
		workers []poolfs.WorkerState
		extra   bool // workers of a queue list no longer configured
	}
	var groups []*group
	index := map[string]*group{}
	for _, g := range st.Groups {
		x := &group{g: g}
		groups = append(groups, x)
		index[g.Queues] = x
	}
	for _, wk := range st.Workers {
		x := index[wk.Queues]
		if x == nil {
			x = &group{g: poolfs.GroupState{Queues: wk.Queues}, extra: true}
			groups = append(groups, x)
			index[wk.Queues] = x
		}
		x.workers = append(x.workers, wk)
	}
	for _, x := range groups {
		sort.Slice(x.workers, func(i, j int) bool { return x.workers[i].PID < x.workers[j].PID })
		var t strings.Builder
		mark := "  "
		style := Plain
		if x.g.Queues == in.Selected && !x.extra {
			mark, style = "> ", Selected
			selAt = len(lines)
		}
		// A long name leaves room for the counts and the state.
		t.WriteString(mark + Truncate(Printable(x.g.Queues), max(10, w/2)))
		if x.extra {
			fmt.Fprintf(&t, "  %d stopping (no longer configured)", len(x.workers))
		} else {
			fmt.Fprintf(&t, "  %d/%d worker%s", x.g.Live, x.g.Desired, plural(x.g.Desired))
			switch x.g.State {
			case poolfs.GroupBackoff:
				t.WriteString("  backoff")
			case poolfs.GroupFatal:
				t.WriteString("  FATAL")
			}
			if a := x.g.Autoscale; a != nil {
				if a.Mode == poolfs.AutoscaleOff {
					fmt.Fprintf(&t, "  autoscale off (pinned at %d)", a.Configured)
				} else {
					fmt.Fprintf(&t, "  autoscale %d..%d", a.Min, a.Max)
				}
			}
			if x.g.Reason != "" && x.g.State != poolfs.GroupOK {
				t.WriteString(": " + x.g.Reason)
			}
		}
		paused := 0
		for _, wk := range x.workers {
			if in.Paused[wk.PID] {
				paused++
			}
		}
		if paused > 0 {
			fmt.Fprintf(&t, "  paused %d/%d", paused, len(x.workers))
		}
		lines = append(lines, Line{Text: t.String(), Style: style, group: true})
		for _, wk := range x.workers {
			state := wk.State
			if in.Paused[wk.PID] && state == poolfs.WorkerRunning {
				state = "paused"
			}
			job, runtime, done, cpu, rss := "-", "-", "-", "-", "-"
			if ws, ok := bySample[wk.PID]; ok {
				job, runtime = "idle", ""
				if ws.Job != "" {
					job = Printable(ws.Job)
					if ws.JobQueue != "" && ws.JobQueue != x.g.Queues {
						job += " (" + Printable(ws.JobQueue) + ")"
					}
					runtime = HumanDuration(time.Duration(ws.JobSeconds * float64(time.Second)))
				}
				done = strconv.FormatInt(ws.JobsDone, 10)
				cpu = fmt.Sprintf("%.1f", ws.CPUPercent)
				rss = pstree.HumanBytes(ws.RSSBytes)
			}
			lines = append(lines, Line{Text: row("    ", strconv.Itoa(wk.PID), state, job, runtime, done, cpu, rss)})
		}
	}
	return lines, selAt
}

// fitWorkers keeps n lines of the worker table (heading first), the
// selected queue list's line in view: other queue lists fold to their
// own line first, then the table scrolls to the selection.
func fitWorkers(lines []Line, selAt, n int) []Line {
	if n >= len(lines) {
		return lines
	}
	if n <= 0 {
		return nil
	}
	// Fold: queue list lines and the selected list's workers.
	folded := []Line{lines[0]}
	newSel := -1
	inSel := false
	for i, l := range lines[1:] {
		i++
		if l.group {
			inSel = i == selAt
			if inSel {
				newSel = len(folded)
			}
			folded = append(folded, l)
			continue
		}
		if inSel {
			folded = append(folded, l)
		}
	}
	if len(folded) <= n {
		return folded
	}
	if newSel < 0 {
		return cut(folded, n, "lines")
	}
	// Scroll: the heading, then n-1 lines starting at the selection (one
	// line of context above it when there is room).
	start := max(1, newSel-1)
	if end := start + n - 1; end > len(folded) {
		start = max(1, len(folded)-(n-1))
	}
	out := []Line{folded[0]}
	out = append(out, folded[start:min(len(folded), start+n-1)]...)
	if rest := len(folded) - (start + n - 1); rest > 0 && len(out) >= 2 {
		out[len(out)-1] = Line{Text: fmt.Sprintf("  … %d more lines", rest+1), Style: Dim}
	}
	return out
}

// logLines is the log's title and its last lines.
func logLines(in Input) []Line {
	if len(in.Log) == 0 {
		return nil
	}
	lines := []Line{{Text: "LOG", Style: Heading}}
	for _, l := range in.Log {
		lines = append(lines, Line{Text: l, Style: Dim})
	}
	return lines
}

// Sparkline draws values as at most width bars, the newest at the right,
// scaled to the largest value shown; zero is the lowest bar.
func Sparkline(values []int, width int) string {
	if width <= 0 || len(values) == 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	bars := []rune("▁▂▃▄▅▆▇█")
	top := 0
	for _, v := range values {
		top = max(top, v)
	}
	out := make([]rune, len(values))
	for i, v := range values {
		level := 0
		if top > 0 && v > 0 {
			// Any jobs at all show above the empty bar.
			level = max(1, int(math.Round(float64(v)*float64(len(bars)-1)/float64(top))))
		}
		out[i] = bars[level]
	}
	return string(out)
}

// Count formats a job count in at most 7 cells.
func Count(n int64) string {
	switch {
	case n < 10_000_000:
		return strconv.FormatInt(n, 10)
	case n < 10_000_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	}
}

// Rate formats jobs per second (or per minute) in at most 6 cells.
func Rate(r float64) string {
	switch {
	case r == 0:
		return "0"
	case r < 10:
		return fmt.Sprintf("%.1f", r)
	case r < 10_000:
		return fmt.Sprintf("%.0f", r)
	default:
		return fmt.Sprintf("%.0fk", r/1000)
	}
}

// Seconds formats a job time, "-" when there is none.
func Seconds(s *float64) string {
	if s == nil {
		return "-"
	}
	d := *s
	switch {
	case d < 0.001:
		return fmt.Sprintf("%.0fµs", d*1e6)
	case d < 1:
		return fmt.Sprintf("%.0fms", d*1e3)
	case d < 60:
		return fmt.Sprintf("%.1fs", d)
	}
	return HumanDuration(time.Duration(d * float64(time.Second)))
}

// HumanDuration formats d as 12s, 3m04s, 2h05m or 3d04h (as status
// does).
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec := int64(d / time.Second)
	switch {
	case sec < 60:
		return fmt.Sprintf("%ds", sec)
	case sec < 3600:
		return fmt.Sprintf("%dm%02ds", sec/60, sec%60)
	case sec < 86400:
		return fmt.Sprintf("%dh%02dm", sec/3600, sec%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", sec/86400, sec%86400/3600)
	}
}

// Printable replaces what a terminal would act on (control characters,
// escape sequences, invalid UTF-8) with visible characters, so a queue
// name or a log line can never move the cursor or change colours.
func Printable(s string) string {
	s = strings.ToValidUTF8(s, "?")
	clean := true
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return '?'
		}
		return r
	}, s)
}

// Truncate cuts s (printable text) to at most w cells, ending it with
// "…" when it was cut.
func Truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// Pad cuts or pads s (printable text) to exactly w cells, text on the
// left.
func Pad(s string, w int) string {
	s = Truncate(s, w)
	return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
}

// PadLeft cuts or pads s to exactly w cells, text on the right.
func PadLeft(s string, w int) string {
	s = Truncate(s, w)
	return strings.Repeat(" ", max(0, w-ansi.StringWidth(s))) + s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
