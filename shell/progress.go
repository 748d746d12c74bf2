package shell

// The batch behind progress: the figures of the named queues marked at a
// first sample, then followed sample by sample. Everything here is pure
// (samples in, figures and text out); progress_cmd.go reads the samples
// and draws.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/stats"
)

// batchQueue is one queue of a batch.
type batchQueue struct {
	name   string
	total0 int64 // depth + in flight at the mark
	total  int64 // grows when jobs arrive during the batch
	done   int64 // jobs finished since the mark, failures included
	failed int64
	timing stats.Histogram // run times of the jobs finished since the mark

	// The counters of the previous sample: each sample adds its
	// difference, so a counter that went backwards (a Redis restarted
	// empty) restarts from zero instead of undoing the batch.
	prevProcessed, prevFailed int64
	prevTiming                stats.Histogram

	last   stats.QueueSample // as last sampled
	missed int               // consecutive samples without this queue
}

func newBatchQueue(q stats.QueueSample) *batchQueue {
	return &batchQueue{
		name:          q.Name,
		total0:        q.Depth + q.InFlight,
		total:         q.Depth + q.InFlight,
		prevProcessed: q.Processed,
		prevFailed:    q.Failed,
		prevTiming:    q.Timing,
		last:          q,
	}
}

// counterDelta is how much an all-time counter moved from prev to cur;
// a counter that went backwards was reset, and counts from zero.
func counterDelta(prev, cur int64) int64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// update takes the queue's figures from a later sample.
func (q *batchQueue) update(s stats.QueueSample) {
	q.done += counterDelta(q.prevProcessed, s.Processed)
	q.failed += counterDelta(q.prevFailed, s.Failed)
	q.timing.Add(s.Timing.Sub(q.prevTiming))
	q.prevProcessed, q.prevFailed, q.prevTiming = s.Processed, s.Failed, s.Timing
	q.total = max(q.total, q.done+s.Depth+s.InFlight)
	q.last = s
	q.missed = 0
}

// drained reports whether nothing of the queue is left: none queued,
// none in flight.
func (q *batchQueue) drained() bool {
	return q.missed == 0 && q.last.Depth == 0 && q.last.InFlight == 0
}

// figures are the queue's progress: how many of its total jobs are
// neither queued nor in flight any more. Until it drains that is read
// from the queue's depth, so that it moves even for workers that keep no
// per-queue counters (not poolctl's built-in ones). Once it has drained,
// its total is what the counters say it did (the mark's jobs and every
// one that arrived since), so that a job a sample caught in two places
// at once does not outlive the batch; if they say less than the mark
// held, the rest left uncounted.
func (q *batchQueue) figures() (progressed, total int64, drained bool) {
	if q.drained() {
		total = max(q.total0, q.done)
		return total, total, true
	}
	left := q.last.Depth + q.last.InFlight
	return min(max(q.total-left, 0), q.total), q.total, false
}

// batch is the jobs of some queues from a mark on.
type batch struct {
	queues      []*batchQueue
	start, last time.Time // the mark's sample and the latest one
	ended       time.Time // the sample that found every queue drained
	peakWorkers int
	redisError  string // of the latest sample
	interval    time.Duration
}

// newBatch marks the named queues (every queue of s when names is empty)
// at sample s. A name s does not have is an error naming it.
func newBatch(s *stats.Sample, names []string) (*batch, error) {
	b := &batch{start: s.TS, last: s.TS, redisError: s.RedisError, interval: sampleInterval(s)}
	byName := make(map[string]stats.QueueSample, len(s.Queues))
	for _, q := range s.Queues {
		byName[q.Name] = q
	}
	if len(names) == 0 {
		for _, q := range s.Queues {
			b.queues = append(b.queues, newBatchQueue(q))
		}
		if len(b.queues) == 0 {
			return nil, fmt.Errorf("the pool serves no queues yet (its sample at %s has none)", s.TS.Format(time.RFC3339))
		}
		return b, nil
	}
	seen := map[string]bool{}
	var unknown []string
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		q, ok := byName[n]
		if !ok {
			unknown = append(unknown, fmt.Sprintf("%q", n))
			continue
		}
		b.queues = append(b.queues, newBatchQueue(q))
	}
	if len(unknown) > 0 {
		served := make([]string, 0, len(s.Queues))
		for _, q := range s.Queues {
			served = append(served, q.Name)
		}
		what := "queue " + unknown[0] + " is"
		if len(unknown) > 1 {
			what = "queues " + strings.Join(unknown, ", ") + " are"
		}
		return nil, fmt.Errorf("%s not among the pool's queues (it serves: %s)", what, orNothing(strings.Join(served, ", ")))
	}
	return b, nil
}

func orNothing(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// sampleInterval is s's sampling interval, 1 s when it does not say.
func sampleInterval(s *stats.Sample) time.Duration {
	if s.Interval > 0 {
		return time.Duration(s.Interval * float64(time.Second))
	}
	return time.Second
}

// update takes a sample later than the last one. A sample whose Redis
// read failed carries the last known figures: it cannot end the batch.
func (b *batch) update(s *stats.Sample) {
	b.last = s.TS
	b.redisError = s.RedisError
	b.interval = sampleInterval(s)
	byName := make(map[string]stats.QueueSample, len(s.Queues))
	for _, q := range s.Queues {
		byName[q.Name] = q
	}
	for _, q := range b.queues {
		if qs, ok := byName[q.name]; ok {
			q.update(qs)
		} else {
			q.missed++
		}
	}
	if b.ended.IsZero() && b.redisError == "" && b.drained() {
		b.ended = s.TS
	}
}

// observe counts the live workers of a state file.
func (b *batch) observe(st *poolfs.State) {
	n := 0
	for _, w := range st.Workers {
		if w.State != poolfs.WorkerStopping {
			n++
		}
	}
	b.peakWorkers = max(b.peakWorkers, n)
}

func (b *batch) drained() bool {
	for _, q := range b.queues {
		if !q.drained() {
			return false
		}
	}
	return true
}

// done says whether the batch is over: every queue drained, seen in a
// sample that read Redis.
func (b *batch) done() bool { return !b.ended.IsZero() }

// BatchSummary is what progress prints when it ends (--json: this
// document on one line).
type BatchSummary struct {
	Queues []BatchQueueSummary `json:"queues"`
	// Total is the batch's jobs: those queued or in flight at the mark,
	// plus those enqueued during the batch.
	Total    int64 `json:"total"`
	Done     int64 `json:"done"`   // jobs finished, failures included
	Failed   int64 `json:"failed"` // of Done
	Enqueued int64 `json:"enqueued"`
	// Uncounted is the jobs that left the queues without being counted
	// as done: run by workers that keep no per-queue counters (not
	// poolctl's built-in ones), or deleted.
	Uncounted int64 `json:"uncounted"`
	// Drained is false when progress gave up (--timeout).
	Drained         bool            `json:"drained"`
	StartedAt       time.Time       `json:"started_at"`
	EndedAt         time.Time       `json:"ended_at"`
	DurationSeconds float64         `json:"duration_seconds"`
	Throughput      float64         `json:"throughput"` // jobs finished per second
	JobSeconds      stats.Quantiles `json:"job_seconds"`
	PeakWorkers     int             `json:"peak_workers"`
}

// BatchQueueSummary is one queue of a BatchSummary.
type BatchQueueSummary struct {
	Name       string          `json:"name"`
	Total      int64           `json:"total"`
	Done       int64           `json:"done"`
	Failed     int64           `json:"failed"`
	Enqueued   int64           `json:"enqueued"`
	Uncounted  int64           `json:"uncounted"`
	Depth      int64           `json:"depth"`
	InFlight   int64           `json:"in_flight"`
	JobSeconds stats.Quantiles `json:"job_seconds"`
}

// summary sums the batch up (see figures for a drained queue's total).
func (b *batch) summary() BatchSummary {
	end := b.last
	if b.done() {
		end = b.ended
	}
	sum := BatchSummary{Drained: b.done(), StartedAt: b.start, EndedAt: end, PeakWorkers: b.peakWorkers}
	var all stats.Histogram
	for _, q := range b.queues {
		progressed, total, _ := q.figures()
		qs := BatchQueueSummary{
			Name: q.name, Total: total, Done: q.done, Failed: q.failed, Enqueued: total - q.total0,
			Uncounted: max(progressed-q.done, 0),
			Depth:     q.last.Depth, InFlight: q.last.InFlight, JobSeconds: q.timing.Quantiles(),
		}
		if !sum.Drained {
			qs.Uncounted = 0 // not known before the end
		}
		sum.Queues = append(sum.Queues, qs)
		sum.Total += total
		sum.Done += q.done
		sum.Failed += q.failed
		sum.Enqueued += qs.Enqueued
		sum.Uncounted += qs.Uncounted
		all.Add(q.timing)
	}
	sum.DurationSeconds = end.Sub(b.start).Seconds()
	if sum.DurationSeconds > 0 {
		sum.Throughput = float64(sum.Done) / sum.DurationSeconds
	}
	sum.JobSeconds = all.Quantiles()
	return sum
}

// Text is the summary for people, one fact a line.
func (sum BatchSummary) Text() string {
	var b strings.Builder
	how := "drained"
	if !sum.Drained {
		how = "not drained"
	}
	d := time.Duration(sum.DurationSeconds * float64(time.Second))
	fmt.Fprintf(&b, "batch %s in %s: %d of %d jobs done", how, humanSeconds(d), sum.Done, sum.Total)
	if sum.Enqueued > 0 {
		fmt.Fprintf(&b, " (%d enqueued during the batch)", sum.Enqueued)
	}
	fmt.Fprintf(&b, ", %d failed, %s jobs/s\n", sum.Failed, rate(sum.Throughput))
	if sum.Uncounted > 0 {
		fmt.Fprintf(&b, "%d jobs left the queues without being counted as done: run by workers that keep no per-queue counters (not poolctl's built-in ones), or deleted\n", sum.Uncounted)
	}
	fmt.Fprintf(&b, "job time: %s\n", quantilesText(sum.JobSeconds))
	fmt.Fprintf(&b, "peak workers: %d\n", sum.PeakWorkers)
	if len(sum.Queues) > 1 {
		for _, q := range sum.Queues {
			fmt.Fprintf(&b, "  %s: %d of %d done, %d failed", printable(q.Name), q.Done, q.Total, q.Failed)
			if q.Enqueued > 0 {
				fmt.Fprintf(&b, " (%d enqueued during the batch)", q.Enqueued)
			}
			if !sum.Drained && q.Depth+q.InFlight > 0 {
				fmt.Fprintf(&b, ", %d queued, %d in flight", q.Depth, q.InFlight)
			}
			fmt.Fprintf(&b, "; job time %s\n", quantilesText(q.JobSeconds))
		}
	}
	return b.String()
}

func quantilesText(q stats.Quantiles) string {
	if q.P50 == nil {
		return "no job finished"
	}
	f := func(p *float64) string { return secondsText(*p) }
	return fmt.Sprintf("p50 %s, p95 %s, p99 %s", f(q.P50), f(q.P95), f(q.P99))
}

// secondsText shows a job time: 850µs, 12.5ms, 1.25s.
func secondsText(s float64) string {
	switch {
	case s < 0.001:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 1:
		return trimZeros(fmt.Sprintf("%.1f", s*1e3)) + "ms"
	default:
		return trimZeros(fmt.Sprintf("%.2f", s)) + "s"
	}
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// humanSeconds shows a duration to a tenth of a second below a minute
// ("4.2s"), else to the second ("1m05s", "2h03m"). Every form parses with
// time.ParseDuration.
func humanSeconds(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// rate shows jobs per second: 0.25, 12.5, 1234.
func rate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return trimZeros(fmt.Sprintf("%.1f", r))
	default:
		return trimZeros(fmt.Sprintf("%.2f", r))
	}
}

// percent of done in total, 100 when total is 0; never 100 before the
// queue drained.
func percent(done, total int64, drained bool) int {
	if total <= 0 || drained {
		return 100
	}
	p := int(math.Floor(100 * float64(done) / float64(total)))
	return min(max(p, 0), 99)
}

// outlook is what a queue's state says about its end: the ETA while it
// drains, else why there is none.
func (q *batchQueue) outlook() string {
	if q.missed > 0 {
		return "not sampled: the pool does not serve it now"
	}
	if q.drained() {
		return "drained"
	}
	switch q.last.State {
	case stats.QueueDraining:
		if q.last.ETASeconds != nil {
			return "ETA " + humanSeconds(time.Duration(*q.last.ETASeconds*float64(time.Second)))
		}
		return "draining"
	case stats.QueueStalled:
		return "stalled: nothing finished lately"
	case stats.QueueGrowing:
		return "growing: will not drain at this rate"
	case stats.QueueEmpty:
		// Nothing queued: what is left is in flight.
		return fmt.Sprintf("%d in flight", q.last.InFlight)
	default:
		return "no ETA yet"
	}
}

// statusWords is a queue's figures after its name: "1234/4000 30%
// 398/s ETA 7.0s (+12 enqueued during the batch)", where 1234 are the
// jobs no longer queued or in flight.
func (q *batchQueue) statusWords() string {
	progressed, total, drained := q.figures()
	s := fmt.Sprintf("%d/%d %d%% %s/s %s", progressed, total, percent(progressed, total, drained), rate(q.last.OutRate), q.outlook())
	if q.failed > 0 {
		s += fmt.Sprintf(", %d failed", q.failed)
	}
	if enq := total - q.total0; enq > 0 {
		s += fmt.Sprintf(" (+%d enqueued during the batch)", enq)
	}
	return s
}

// line is the batch at its latest sample as one plain line (a pipe's
// progress report): "progress 3.2s: foo 1234/4000 30% 398/s ETA 7.0s;
// bar ...".
func (b *batch) line() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "progress %s:", humanSeconds(b.last.Sub(b.start)))
	for i, q := range b.queues {
		if i > 0 {
			sb.WriteByte(';')
		}
		fmt.Fprintf(&sb, " %s %s", printable(q.name), q.statusWords())
	}
	if b.redisError != "" {
		fmt.Fprintf(&sb, "; Redis: %s (figures as last read)", b.redisError)
	}
	return sb.String()
}

// bars draws the batch for a terminal: a bar per queue and a footer,
// width columns at most each and height lines at most (lines never wrap
// and never scroll, so that they can be redrawn in place). When the
// queues do not fit, the drained ones go first, then the last ones, and
// a line says how many are not shown.
func (b *batch) bars(width, height int, stale time.Duration) []string {
	shown := b.queues
	var hidden []*batchQueue
	if room := max(height-2, 1); len(shown) > room && len(shown)+1 > height {
		var busy, drained []*batchQueue
		for _, q := range b.queues {
			if q.drained() {
				drained = append(drained, q)
			} else {
				busy = append(busy, q)
			}
		}
		ordered := append(busy, drained...)
		shown, hidden = ordered[:room], ordered[room:]
	}
	nameW := 0
	for _, q := range shown {
		nameW = max(nameW, displayWidth(printable(q.name)))
	}
	nameW = min(nameW, 24)
	var lines []string
	for _, q := range shown {
		progressed, total, drained := q.figures()
		p := percent(progressed, total, drained)
		name := padRight(truncate(printable(q.name), nameW), nameW)
		words := q.statusWords()
		barW := min(30, width-nameW-displayWidth(words)-5)
		if barW >= 10 {
			fill := barW * p / 100
			bar := "[" + strings.Repeat("█", fill) + strings.Repeat("░", barW-fill) + "]"
			lines = append(lines, truncate(name+" "+bar+" "+words, width))
		} else {
			lines = append(lines, truncate(name+" "+words, width))
		}
	}
	if len(hidden) > 0 {
		var left int64
		for _, q := range hidden {
			left += q.last.Depth + q.last.InFlight
		}
		lines = append(lines, truncate(fmt.Sprintf("… and %d more queues, %d jobs left in them", len(hidden), left), width))
	}
	foot := fmt.Sprintf("%s elapsed", humanSeconds(b.last.Sub(b.start)))
	if b.peakWorkers > 0 {
		foot += fmt.Sprintf(", %d workers at most", b.peakWorkers)
	}
	if b.redisError != "" {
		foot += "; Redis: " + b.redisError + " (figures as last read)"
	}
	if stale > 0 {
		foot += fmt.Sprintf("; no new sample for %s", humanSeconds(stale))
	}
	foot += "; Ctrl-C stops watching (the batch runs on)"
	lines = append(lines, truncate(foot, width))
	return lines
}

// printable is a queue name fit for a terminal: quoted when it holds
// characters that are not printable (a name in Redis may hold escape
// sequences).
func printable(name string) string {
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return strconv.Quote(name)
		}
	}
	return name
}

// displayWidth counts runes: close enough for queue names, which are
// mostly ASCII (a wide character may make a bar a column longer).
func displayWidth(s string) int { return len([]rune(s)) }

// truncate cuts s to n columns, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:max(n, 0)])
	}
	return string(r[:n-1]) + "…"
}

func padRight(s string, n int) string {
	if w := displayWidth(s); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}
