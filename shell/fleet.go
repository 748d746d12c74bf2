package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	prompt "github.com/c-bata/go-prompt"
	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/queue"
)

// fleetCommand is the fleet row of the command table; `poolctl fleet`
// runs the same handler (Fleet).
func fleetCommand() *Command {
	return &Command{
		Name: "fleet", Args: "[VERB [HOST/NAME] [ARGS]] [--json] [--timeout D]", MaxArgs: -1, Arg: argFleet,
		Summary: "every pool on this Redis: list, watch, ping and steer them by control messages",
		Help: `Every master registers itself in Redis (HOST/NAME, refreshed every 2s) and
takes control messages from its own list. On this pool's Redis, VERB is:

  fleet [--json]                 every pool: state, live/desired workers per
                                 queue list, heartbeat age; stale after 10s
                                 without a heartbeat
  fleet top [--json] [--count N] [--interval D]
                                 the pools' cockpit figures and their total
                                 (JSON Lines with --json or in a script)
  fleet ping [--timeout D]       ask every pool (broadcast); lists who answered
                                 and in how long, and who did not
  fleet status HOST/NAME         the master's state
  fleet config HOST/NAME foo=4 bar=0
                                 change counts, merged as config does
  fleet reload|stop HOST/NAME    as HUP, or a graceful stop
  fleet pause|resume HOST/NAME [QUEUES...]
                                 USR2/CONT to those queue lists' workers
  fleet autoscale on|off HOST/NAME [QUEUES...]

A command waits up to --timeout (default 2s) for its answer; it stays in the
pool's list up to --expire (default: the timeout), so a master that restarts
meanwhile serves it, else answers "expired". Verbs that change a pool need
remote_control: true in its config. Fails when a pool did not answer or
refused. See docs/fleet.md.

Examples:
  fleet
  fleet ping
  fleet config web1/orders orders=4`,
		Run: cmdFleet,
	}
}

// FleetOptions are the flags of a fleet command.
type FleetOptions struct {
	JSON       bool
	Timeout    time.Duration // wait for an answer; 0 = 2s
	Expire     time.Duration // how long a command may wait in its list; 0 = Timeout
	StaleAfter time.Duration // 0 = fleet.StaleAfter
	Count      int           // top: frames, 0 = 1
	Interval   time.Duration // top: between frames; 0 = 2s
	// Pipe: the output is not a terminal, where top prints JSON Lines
	// (as top does in a script).
	Pipe bool
}

// DefaultFleetTimeout is how long a fleet command waits for answers.
const DefaultFleetTimeout = 2 * time.Second

// ParseFleetArgs splits a fleet command's words from its flags (--json,
// --timeout D, --expire D, --stale-after D, --count N, --interval D),
// anywhere before "--".
func ParseFleetArgs(args []string) ([]string, FleetOptions, error) {
	var o FleetOptions
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			words = append(words, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			words = append(words, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "json" {
			if hasVal {
				return nil, o, fmt.Errorf("--json takes no value")
			}
			o.JSON = true
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, o, fmt.Errorf("flag %s needs a value", a)
			}
			i++
			val = args[i]
		}
		switch name {
		case "timeout", "expire", "stale-after", "interval":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return nil, o, fmt.Errorf("--%s %q: not a positive duration (e.g. 2s)", name, val)
			}
			switch name {
			case "timeout":
				o.Timeout = d
			case "expire":
				o.Expire = d
			case "stale-after":
				o.StaleAfter = d
			default:
				o.Interval = d
			}
		case "count":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return nil, o, fmt.Errorf("--count %q: not a positive integer", val)
			}
			o.Count = n
		default:
			return nil, o, fmt.Errorf("unknown flag %q (fleet takes --json, --timeout D, --expire D, --stale-after D, --count N, --interval D)", a)
		}
	}
	return words, o, nil
}

func cmdFleet(ctx context.Context, s *Session, args []string) error {
	words, o, err := ParseFleetArgs(args)
	if err != nil {
		return &UsageError{Lookup("fleet"), err.Error()}
	}
	q, _, err := s.queueClient()
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	if len(words) == 0 || words[0] == "list" || words[0] == "ping" || words[0] == "top" {
		// Remember the pools for completion (which must not wait for Redis).
		lctx, cancel := context.WithTimeout(ctx, summaryTimeout)
		if pools, err := fleet.List(lctx, q.Redis(), q.Keys().Namespace()); err == nil {
			s.fleetSeen = s.fleetSeen[:0]
			for _, p := range pools {
				s.fleetSeen = append(s.fleetSeen, p.ID)
			}
		}
		cancel()
	}
	o.Pipe = !s.interactive
	return Fleet(ctx, q, words, o, s.out, s.info)
}

// ErrFleetFailed is wrapped by Fleet when a pool did not answer, refused
// or answered an error (exit status 1).
var ErrFleetFailed = errors.New("fleet command failed")

// Fleet runs a fleet command on q's Redis and namespace: words[0] is the
// verb (none: list), then its arguments. Results go to out, notes to info.
// A usage mistake is a *UsageError; a pool that did not answer, refused
// or failed wraps ErrFleetFailed.
func Fleet(ctx context.Context, q *queue.Client, words []string, o FleetOptions, out, info io.Writer) error {
	if o.Timeout <= 0 {
		o.Timeout = DefaultFleetTimeout
	}
	if o.Expire <= 0 {
		o.Expire = o.Timeout
	}
	verb := ""
	if len(words) > 0 {
		verb, words = words[0], words[1:]
	}
	usage := func(format string, args ...any) error {
		return &UsageError{Lookup("fleet"), fmt.Sprintf(format, args...)}
	}
	switch verb {
	case "", "list":
		if len(words) > 0 {
			return usage("fleet list takes no arguments, got %q", words[0])
		}
		return fleetList(ctx, q, o, out)
	case "top":
		if len(words) > 0 {
			return usage("fleet top takes no arguments, got %q", words[0])
		}
		return fleetTop(ctx, q, o, out)
	case "ping":
		if len(words) > 0 {
			return usage("fleet ping takes no arguments (it asks every pool), got %q", words[0])
		}
		return fleetPing(ctx, q, o, out, info)
	}
	cmd, target, err := fleetCommandOf(verb, words)
	if err != nil {
		return usage("%v", err)
	}
	return fleetSend(ctx, q, target, cmd, o, out)
}

// fleetSuggestions completes fleet: its verbs first, then the pools of
// the registry for the verbs that take one, then flags.
func fleetSuggestions(s *Session, args []string, newWord bool) []prompt.Suggest {
	n := len(args)
	if !newWord && n > 0 {
		n-- // completing the last word
	}
	if n == 0 {
		var out []prompt.Suggest
		for _, v := range []struct{ verb, what string }{
			{"list", "every pool on this Redis"}, {"top", "the pools' cockpit figures"}, {"ping", "ask every pool"},
			{"status", "a pool's state"}, {"config", "change a pool's counts"}, {"reload", "reload a pool"},
			{"stop", "stop a pool gracefully"}, {"pause", "pause a pool's workers"}, {"resume", "resume a pool's workers"},
			{"autoscale", "autoscale on|off"},
		} {
			out = append(out, prompt.Suggest{Text: v.verb, Description: v.what})
		}
		return out
	}
	verb := args[0]
	poolAt := 1
	if verb == fleet.VerbAutoscale {
		if n == 1 {
			return []prompt.Suggest{{Text: "on"}, {Text: "off"}}
		}
		poolAt = 2
	}
	flags := []prompt.Suggest{{Text: "--json", Description: "JSON output"}, {Text: "--timeout", Description: "wait for answers (default 2s)"}}
	switch verb {
	case "list", "top", "ping":
		return flags
	}
	if n == poolAt {
		var out []prompt.Suggest
		for _, id := range s.fleetSeen {
			out = append(out, prompt.Suggest{Text: id, Description: "pool"})
		}
		return out
	}
	return append(flags, prompt.Suggest{Text: "--expire", Description: "how long the command may wait for the pool"})
}
