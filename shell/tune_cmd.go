package shell

import (
	"fmt"
	prompt "github.com/c-bata/go-prompt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
)

// argTune: completion offers queue names, then tune's flags.
const argTune argKind = 100

// tuneCommand is the tune row of the command table.
func tuneCommand() *Command {
	return &Command{
		Name: "tune", Args: "QUEUE [--max N] [--load 'CLASS ARG...'] [--apply] [--json] [...]",
		MinArgs: 1, MaxArgs: -1, Arg: argTune,
		Summary: "load-test a queue: sweep worker counts, fit the scalability model, recommend a count",
		Help: `tune QUEUE [--min N] [--max N] [--step-seconds S] [--load 'CLASS ARG...'] [--apply] [--json]

Finds the worker count that serves QUEUE best, on a running pool whose queue
lists include QUEUE. It sets the count of QUEUE's queue list the way config
does: doubling from --min (default 1) up to --max (default 4 per CPU, within
the pool's max_workers), each count held until its throughput is steady, then
measured for --step-seconds (default 5); then a few counts between the best
step's neighbours. Every figure comes from the master's samples: jobs/s, p95
job time, host CPU, load, free memory and worker RSS.

It needs a backlog for the whole sweep. --load 'CLASS ARG...' keeps the queue
fed with synthetic jobs (e.g. 'Poolctl::Cpu 5', 'Poolctl::Sleep 50'; the
arguments as enqueue takes them), marked "poolctl_tune" in their payload, and
removes those still queued at the end. Without --load, it estimates whether
the queue's backlog lasts the sweep and refuses if it would not.

It prints a table (workers, jobs/s, p95, CPU, load, RSS per worker, free
memory), a chart of jobs/s against workers, the Universal Scalability Law
X(N) = λN / (1 + σ(N−1) + κN(N−1)) fitted to the points (σ contention,
κ coherency, the peak N* = √((1−σ)/κ); it needs 6 points), and the
recommendation: the fewest workers whose throughput is at least 95% of the
best measured, within the pool's limits: (max_workers, max_cpu,
min_free_memory). --json prints one object instead (points, usl,
recommended, reason, ...). Progress goes to standard error.

Afterwards the count is put back to what it was, unless --apply sets the
recommended count (as config does). Ctrl-C stops the sweep, puts the count
back and removes the synthetic jobs. An autoscaled queue list is pinned
(autoscale off) for the sweep and handed back to the autoscaler after it
(with --apply it stays pinned at the recommended count).

Examples:
  tune reports --max 16 --load 'Poolctl::Sleep 50'
  tune cpu --max 8 --step-seconds 2 --load 'Poolctl::Cpu 5' --json
  tune mail --apply`,
		Run: cmdTune,
	}
}

// tuneOptions are tune's arguments.
type tuneOptions struct {
	queue    string
	min, max int
	minSet   bool
	maxSet   bool
	step     time.Duration
	load     []string // CLASS ARG...
	loadText string
	apply    bool
	json     bool
}

// tuneFlags are the flags tune takes, for parsing and completion.
var tuneFlags = []struct{ name, value, help string }{
	{"--min", "N", "the smallest worker count (default 1)"},
	{"--max", "N", "the largest worker count"},
	{"--step-seconds", "S", "seconds each count is measured (default 5)"},
	{"--load", "'CLASS ARG...'", "keep the queue fed with these jobs"},
	{"--apply", "", "set the recommended count"},
	{"--json", "", "one JSON object"},
}

// parseTuneArgs parses tune's arguments: QUEUE and the flags, in any
// order, a flag's value as the next word or after '='.
func parseTuneArgs(args []string) (tuneOptions, error) {
	o := tuneOptions{min: 1, step: 5 * time.Second}
	var queues []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			queues = append(queues, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		takesValue := name == "--min" || name == "--max" || name == "--step-seconds" || name == "--load"
		if takesValue && !hasValue {
			if i+1 >= len(args) {
				return o, fmt.Errorf("tune: %s needs a value", name)
			}
			i++
			value = args[i]
		} else if !takesValue && hasValue {
			return o, fmt.Errorf("tune: %s takes no value", name)
		}
		switch name {
		case "--min", "--max":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > spec.MaxCount {
				return o, fmt.Errorf("tune: %s %q: want a worker count from 1 to %d", name, value, spec.MaxCount)
			}
			if name == "--min" {
				o.min, o.minSet = n, true
			} else {
				o.max, o.maxSet = n, true
			}
		case "--step-seconds":
			d, err := parseSeconds(value)
			if err != nil || d < 100*time.Millisecond || d > time.Hour {
				return o, fmt.Errorf("tune: --step-seconds %q: want seconds from 0.1 to 3600 (or a duration such as 2s)", value)
			}
			o.step = d
		case "--load":
			words, err := Split(value)
			if err != nil {
				return o, fmt.Errorf("tune: --load %q: %w", value, err)
			}
			if len(words) == 0 || words[0] == "" {
				return o, fmt.Errorf("tune: --load needs a job class, e.g. --load 'Poolctl::Sleep 50'")
			}
			o.load, o.loadText = words, strings.Join(words, " ")
		case "--apply":
			o.apply = true
		case "--json":
			o.json = true
		default:
			return o, fmt.Errorf("tune: unknown flag %s (tune takes --min, --max, --step-seconds, --load, --apply, --json)", name)
		}
	}
	switch {
	case len(queues) == 0:
		return o, fmt.Errorf("tune: which queue? (usage: tune QUEUE [flags])")
	case len(queues) > 1:
		return o, fmt.Errorf("tune: one queue at a time, got %s", strings.Join(queues, " "))
	}
	o.queue = queues[0]
	if err := spec.ValidateQueueName(o.queue); err != nil {
		return o, fmt.Errorf("tune: %w", err)
	}
	if queue.IsPattern(o.queue) {
		return o, fmt.Errorf("tune: %q is a pattern; tune measures one queue by its name", o.queue)
	}
	if o.maxSet && o.max < o.min {
		return o, fmt.Errorf("tune: --max %d is below --min %d", o.max, o.min)
	}
	return o, nil
}

// parseSeconds reads "2", "1.5" or a duration ("2s", "500ms").
func parseSeconds(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > 1e6 {
			return 0, fmt.Errorf("%q is out of range", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

// tuneSuggestions completes tune's words: a queue name first, then the
// flags it has not been given.
func tuneSuggestions(s *Session, fields []string, before string) []prompt.Suggest {
	done := fields[1:]
	if !strings.HasSuffix(before, " ") && len(done) > 0 {
		done = done[:len(done)-1] // the word being typed
	}
	var out []prompt.Suggest
	hasQueue := false
	given := map[string]bool{}
	for i := 0; i < len(done); i++ {
		w := done[i]
		if !strings.HasPrefix(w, "--") {
			hasQueue = true
			continue
		}
		name, _, hasValue := strings.Cut(w, "=")
		given[name] = true
		for _, f := range tuneFlags {
			if f.name == name && f.value != "" && !hasValue {
				i++ // its value
			}
		}
	}
	if !hasQueue {
		for _, q := range s.queueNames() {
			out = append(out, prompt.Suggest{Text: q, Description: "queue"})
		}
	}
	for _, f := range tuneFlags {
		if !given[f.name] {
			out = append(out, prompt.Suggest{Text: f.name, Description: strings.TrimSpace(f.value + " " + f.help)})
		}
	}
	return out
}
