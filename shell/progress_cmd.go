package shell

// progress (alias batch) and poolctl progress: follow a batch through the
// samples the master publishes (sample.json) and its state file; never a
// Redis round trip of its own.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/stats"
)

// Exit statuses of poolctl progress (ProgressError.Status). In a shell
// script every one of them is a failed command: the script exits 1.
const (
	ProgressDrained     = 0   // every queue drained, no job failed
	ProgressFailedJobs  = 1   // drained, but jobs failed (or progress could not follow the batch)
	ProgressUsage       = 2   // bad arguments, a queue the pool does not serve
	ProgressTimedOut    = 3   // --timeout ran out before the queues drained
	ProgressInterrupted = 130 // Ctrl-C: the batch runs on
)

// ProgressError is how a progress that did not end with a clean drain
// ended; Status is the exit status poolctl progress gives it.
type ProgressError struct {
	Status int
	Err    error
}

func (e *ProgressError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *ProgressError) Unwrap() error { return e.Err }

// ExitStatus is the exit status of poolctl progress (see cli.ExitCode).
func (e *ProgressError) ExitStatus() int { return e.Status }

func progressErr(status int, format string, args ...any) error {
	return &ProgressError{Status: status, Err: fmt.Errorf("progress: "+format, args...)}
}

// ProgressOptions configures Progress.
type ProgressOptions struct {
	Pool    poolfs.Pool
	Queues  []string      // the batch's queues; none = every queue of the first sample
	JSON    bool          // print the summary as one JSON object
	Timeout time.Duration // give up after this long; 0 = never
	// Out gets the summary; UI the progress display: bars redrawn in
	// place when Terminal, else one line per sample.
	Out, UI  io.Writer
	Terminal bool
	Size     func() (cols, rows int) // the terminal's; nil = 80x24
}

// ProgressArgs are the arguments of progress: [--json] [--timeout D]
// [--] [QUEUE...].
type ProgressArgs struct {
	Queues  []string
	JSON    bool
	Timeout time.Duration
}

// ParseProgressArgs parses the arguments of progress. Flags may come
// anywhere before "--"; a queue name that starts with "-" goes after it.
func ParseProgressArgs(args []string) (ProgressArgs, error) {
	var a ProgressArgs
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			a.Queues = append(a.Queues, args[i+1:]...)
			return a, nil
		case arg == "--json" || arg == "-json":
			a.JSON = true
		case arg == "--timeout" || arg == "-timeout":
			if i+1 >= len(args) {
				return a, fmt.Errorf("%s needs a duration (seconds, or such as 1m30s)", arg)
			}
			i++
			d, err := ParseTimeout(args[i])
			if err != nil {
				return a, fmt.Errorf("--timeout: %w", err)
			}
			a.Timeout = d
		case strings.HasPrefix(arg, "--timeout=") || strings.HasPrefix(arg, "-timeout="):
			_, v, _ := strings.Cut(arg, "=")
			d, err := ParseTimeout(v)
			if err != nil {
				return a, fmt.Errorf("--timeout: %w", err)
			}
			a.Timeout = d
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			return a, fmt.Errorf("unknown flag %q (a queue named so goes after --)", arg)
		default:
			a.Queues = append(a.Queues, arg)
		}
	}
	return a, nil
}

func cmdProgress(ctx context.Context, s *Session, args []string) error {
	a, err := ParseProgressArgs(args)
	if err != nil {
		return &UsageError{Lookup("progress"), err.Error()}
	}
	if _, err := s.requireMaster(); err != nil {
		return err
	}
	o := ProgressOptions{
		Pool: s.pool(), Queues: a.Queues, JSON: a.JSON, Timeout: a.Timeout,
		Out: s.out, UI: s.info, Terminal: s.interactive,
	}
	if s.interactive {
		o.UI = s.out
		o.Size = terminalSize(s.opts.Stdout)
	}
	_, err = Progress(ctx, o)
	return err
}

// terminalSize returns the size of w when it is a terminal, else 80x24.
func terminalSize(w io.Writer) func() (cols, rows int) {
	return func() (int, int) {
		if f, ok := w.(*os.File); ok {
			if cols, rows, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 && rows > 0 {
				return cols, rows
			}
		}
		return 80, 24
	}
}

// ProgressCommand is poolctl progress: the shell's progress as a command
// of its own.
type ProgressCommand struct {
	ProgressArgs
	Name           string // pool; "" = the current directory's, else the only one running
	Stdout, Stderr io.Writer
}

// ErrProgressUsage is wrapped by ProgressCommand.Run's usage errors.
var ErrProgressUsage = errors.New("usage error")

// Run follows the batch: the display goes to standard error (redrawn in
// place when it is a terminal), the summary to standard output. Ctrl-C
// stops watching (the batch runs on in the pool); standard output going
// away (| head -1) stops it too. The error carries the exit status
// (ProgressError).
func (c ProgressCommand) Run(ctx context.Context) error {
	p, err := progressPool(c.Name, c.Stderr)
	if err != nil {
		return err
	}
	// A reader that went away makes writes fail (EPIPE) instead of
	// killing poolctl before it says why.
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	out := newOutputGuard(c.Stdout)
	defer out.Close()
	go func() {
		select {
		case <-out.Gone():
			cancel()
		case <-ctx.Done():
		}
	}()
	o := ProgressOptions{Pool: p, Queues: c.Queues, JSON: c.JSON, Timeout: c.Timeout, Out: out, UI: c.Stderr}
	if f, ok := c.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
		o.Terminal, o.Size = true, terminalSize(f)
	}
	_, err = Progress(ctx, o)
	if gone := out.Err(); gone != nil {
		return &ProgressError{Status: 1, Err: fmt.Errorf("progress: standard output closed (%w); the batch runs on in the pool", gone)}
	}
	return err
}

// progressPool is the pool poolctl progress follows: the one named, else
// the current directory's when it runs, else the only one running (said
// on stderr).
func progressPool(name string, stderr io.Writer) (poolfs.Pool, error) {
	if name != "" {
		if err := poolfs.ValidatePoolName(name); err != nil {
			return poolfs.Pool{}, fmt.Errorf("%w: %v", ErrProgressUsage, err)
		}
		p := poolfs.Open(name)
		if !p.Running() {
			return p, fmt.Errorf("pool %s: %w", name, errNotRunning)
		}
		return p, nil
	}
	if p := poolfs.Open(poolfs.DefaultPoolName()); p.Running() {
		return p, nil
	}
	pools := runningPools()
	switch len(pools) {
	case 0:
		return poolfs.Pool{}, errors.New("no pool is running on this host")
	case 1:
		fmt.Fprintf(stderr, "poolctl: using pool %s, the only one running\n", pools[0].Name)
		return poolfs.Open(pools[0].Name), nil
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	return poolfs.Pool{}, fmt.Errorf("%w: several pools are running (%s): name one with --name", ErrProgressUsage, strings.Join(names, ", "))
}

// sampleSource is where progress reads the pool: its latest sample, its
// state, whether its master runs.
type sampleSource interface {
	// Sample is the latest published sample, nil when there is none yet.
	Sample() (*stats.Sample, error)
	// State is the latest state file, nil when unreadable.
	State() *poolfs.State
	Alive() bool
}

// fileStamp tells one version of a file from the next (each is written
// to a new file renamed over the old).
type fileStamp struct {
	ino  uint64
	mod  time.Time
	size int64
}

func stampOf(fi fs.FileInfo) fileStamp {
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// poolFiles reads a pool's runtime directory, each file again only when
// it was replaced.
type poolFiles struct {
	pool poolfs.Pool

	sampleStamp fileStamp
	sample      *stats.Sample
	wantedAt    time.Time // when we last told the master we read samples
	stateStamp  fileStamp
	state       *poolfs.State
}

func (f *poolFiles) Sample() (*stats.Sample, error) {
	path := f.pool.Paths.Sample
	if time.Since(f.wantedAt) > time.Second {
		// The master publishes only while someone reads (stats.Want);
		// reading again only what changed, say so ourselves.
		stats.Want(path)
		f.wantedAt = time.Now()
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f.sample, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sample: %w", err)
	}
	if st := stampOf(fi); st != f.sampleStamp || f.sample == nil {
		s, err := stats.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return f.sample, nil
		}
		if err != nil {
			return nil, err
		}
		f.sample, f.sampleStamp = s, st
	}
	return f.sample, nil
}

func (f *poolFiles) State() *poolfs.State {
	path := f.pool.Paths.State
	fi, err := os.Stat(path)
	if err != nil {
		return f.state
	}
	if st := stampOf(fi); st != f.stateStamp || f.state == nil {
		if s, err := poolfs.ReadState(path); err == nil {
			f.state, f.stateStamp = s, st
		}
	}
	return f.state
}

func (f *poolFiles) Alive() bool { return f.pool.Running() }

// Progress follows a batch of the pool's queues until they drain, then
// prints its summary. It marks the batch at the first sample the master
// takes after Progress starts (so jobs enqueued just before count), and
// ends at the first sample (with fresh Redis figures) in which every queue
// has nothing queued and nothing in flight. It returns the summary (nil
// when there was no batch) and a *ProgressError unless the batch drained
// without failures.
func Progress(ctx context.Context, o ProgressOptions) (*BatchSummary, error) {
	return followBatch(ctx, &poolFiles{pool: o.Pool}, o)
}

// Progress's pace: how often it looks at the files, how long it waits
// for a first sample, how long a master may be gone (a restart) before
// the batch cannot be followed.
var (
	progressPollMax   = 100 * time.Millisecond
	progressFirstWait = 5 * time.Second
	progressGoneGrace = 3 * time.Second
)

func followBatch(ctx context.Context, src sampleSource, o ProgressOptions) (*BatchSummary, error) {
	begun := time.Now()
	var timeout <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	size := o.Size
	if size == nil {
		size = func() (int, int) { return 80, 24 }
	}
	d := &progressDisplay{w: o.UI, terminal: o.Terminal, size: size}

	// The mark: the first sample taken after we started.
	first, err := firstSample(ctx, src, begun, timeout, o)
	if err != nil {
		return nil, err
	}
	b, err := newBatch(first, o.Queues)
	if err != nil {
		return nil, &ProgressError{Status: ProgressUsage, Err: fmt.Errorf("progress: %w", err)}
	}
	if first.RedisError == "" && b.drained() {
		b.ended = first.TS
	}
	if st := src.State(); st != nil {
		b.observe(st)
	}
	if err := d.show(b, 0); err != nil {
		return nil, err
	}

	tick := time.NewTicker(pollEvery(b.interval))
	defer tick.Stop()
	var goneSince time.Time
	lastSeen := time.Now() // when the latest sample arrived
	for !b.done() {
		select {
		case <-ctx.Done():
			d.end()
			sum := b.summary()
			fmt.Fprintf(o.UI, "progress: stopped watching at %d of %d jobs; the batch runs on in the pool\n", sum.Done, sum.Total)
			return &sum, &ProgressError{Status: ProgressInterrupted, Err: fmt.Errorf("progress: %w", ctx.Err())}
		case <-timeout:
			d.end()
			sum := b.summary()
			if err := printSummary(o, sum); err != nil {
				return &sum, err
			}
			return &sum, progressErr(ProgressTimedOut, "timed out after %s: %s", o.Timeout, b.left())
		case <-tick.C:
		}
		if st := src.State(); st != nil {
			b.observe(st)
		}
		s, err := src.Sample()
		if err != nil {
			d.end()
			return nil, progressErr(ProgressFailedJobs, "%w", err)
		}
		if s != nil && s.TS.After(b.last) {
			b.update(s)
			lastSeen = time.Now()
			tick.Reset(pollEvery(b.interval))
			if err := d.show(b, 0); err != nil {
				return nil, err
			}
			continue
		}
		if src.Alive() {
			goneSince = time.Time{}
		} else if goneSince.IsZero() {
			goneSince = time.Now()
		} else if time.Since(goneSince) > max(progressGoneGrace, 3*b.interval) {
			d.end()
			sum := b.summary()
			return &sum, progressErr(ProgressFailedJobs, "pool %s: the master is gone; the batch is not drained: %s", o.Pool.Name(), b.left())
		}
		if stale := time.Since(lastSeen); stale > 3*b.interval {
			if err := d.showStale(b, stale); err != nil {
				return nil, err
			}
		}
	}
	d.end()
	sum := b.summary()
	if err := printSummary(o, sum); err != nil {
		return &sum, err
	}
	if sum.Failed > 0 {
		return &sum, progressErr(ProgressFailedJobs, "%d of the batch's %d jobs failed (poolctl failed list shows them)", sum.Failed, sum.Done)
	}
	return &sum, nil
}

// pollEvery is how often to look for a new sample: a few times per
// sampling interval.
func pollEvery(interval time.Duration) time.Duration {
	return min(max(interval/4, 10*time.Millisecond), progressPollMax)
}

// firstSample waits for the first sample taken after begun.
func firstSample(ctx context.Context, src sampleSource, begun time.Time, timeout <-chan time.Time, o ProgressOptions) (*stats.Sample, error) {
	tick := time.NewTicker(pollEvery(0))
	defer tick.Stop()
	var latest *stats.Sample
	for {
		s, err := src.Sample()
		if err != nil {
			return nil, progressErr(ProgressFailedJobs, "%w", err)
		}
		if s != nil && s.TS.After(begun) {
			return s, nil
		}
		latest = s
		if !src.Alive() {
			return nil, progressErr(ProgressFailedJobs, "pool %s: %w", o.Pool.Name(), errNotRunning)
		}
		wait := progressFirstWait
		if latest != nil {
			wait += 3 * sampleInterval(latest)
		}
		if time.Since(begun) > wait {
			if latest == nil {
				return nil, progressErr(ProgressFailedJobs, "pool %s publishes no samples (no %s after %s): its master may be of an older poolctl; restart the pool", o.Pool.Name(), o.Pool.Paths.Sample, humanSeconds(wait))
			}
			return nil, progressErr(ProgressFailedJobs, "pool %s: no new sample for %s (the latest is from %s): the master's sampler is stuck", o.Pool.Name(), humanSeconds(time.Since(latest.TS)), latest.TS.Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return nil, &ProgressError{Status: ProgressInterrupted, Err: fmt.Errorf("progress: %w", ctx.Err())}
		case <-timeout:
			return nil, progressErr(ProgressTimedOut, "timed out after %s waiting for the pool's first sample", o.Timeout)
		case <-tick.C:
		}
	}
}

// left says what is left of the batch: "foo 1200 queued, 4 in flight;
// bar ...".
func (b *batch) left() string {
	var parts []string
	for _, q := range b.queues {
		if !q.drained() {
			parts = append(parts, fmt.Sprintf("%s %d queued, %d in flight (%s)", printable(q.name), q.last.Depth, q.last.InFlight, q.outlook()))
		}
	}
	if b.redisError != "" {
		parts = append(parts, "Redis: "+b.redisError)
	}
	return strings.Join(parts, "; ")
}

func printSummary(o ProgressOptions, sum BatchSummary) error {
	if o.JSON {
		data, err := json.Marshal(sum)
		if err != nil {
			return fmt.Errorf("progress: encode summary: %w", err)
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", data)
		return err
	}
	_, err := io.WriteString(o.Out, sum.Text())
	return err
}

// progressDisplay shows the batch: at a terminal as bars redrawn in
// place, else as one line per sample.
type progressDisplay struct {
	w        io.Writer
	terminal bool
	size     func() (cols, rows int)
	drawn    int       // lines of the block drawn last
	staleAt  time.Time // when a stale footer was drawn last
}

// show draws the batch after a new sample. A display that cannot be
// written (its reader went away) ends progress.
func (d *progressDisplay) show(b *batch, stale time.Duration) error {
	if !d.terminal {
		if _, err := fmt.Fprintln(d.w, b.line()); err != nil {
			return progressErr(ProgressFailedJobs, "display: %w", err)
		}
		return nil
	}
	var sb strings.Builder
	if d.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", d.drawn) // back to the block's first line
	}
	// One column and one row to spare: the cursor never wraps, and the
	// block never scrolls the line it must come back to off the screen.
	cols, rows := d.size()
	lines := b.bars(cols-1, rows-1, stale)
	for _, l := range lines {
		sb.WriteString("\r\x1b[2K")
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	// A block that shrank leaves no old lines behind.
	for i := len(lines); i < d.drawn; i++ {
		sb.WriteString("\r\x1b[2K\n")
	}
	if extra := d.drawn - len(lines); extra > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", extra)
	}
	d.drawn = len(lines)
	if _, err := io.WriteString(d.w, sb.String()); err != nil {
		return progressErr(ProgressFailedJobs, "display: %w", err)
	}
	return nil
}

// showStale redraws the terminal's block with how long no sample came,
// once a second; a pipe gets nothing (no sample, no line).
func (d *progressDisplay) showStale(b *batch, stale time.Duration) error {
	if !d.terminal || time.Since(d.staleAt) < time.Second {
		return nil
	}
	d.staleAt = time.Now()
	return d.show(b, stale)
}

// end leaves the display: the summary goes below the block.
func (d *progressDisplay) end() { d.drawn = 0 }
