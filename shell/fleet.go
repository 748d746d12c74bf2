package shell

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	prompt "github.com/c-bata/go-prompt"
	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
	"github.com/redis/go-redis/v9"
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

// fleetCommandOf builds the control message of a targeted verb from its
// arguments, checking them as the master would (so a mistake is a usage
// error here, not a refusal there).
func fleetCommandOf(verb string, args []string) (fleet.Command, string, error) {
	cmd := fleet.Command{Verb: verb}
	if verb == fleet.VerbAutoscale {
		if len(args) == 0 || (args[0] != "on" && args[0] != "off") {
			return cmd, "", errors.New("fleet autoscale needs on or off, then HOST/NAME")
		}
		cmd.Args, args = []string{args[0]}, args[1:]
	}
	switch verb {
	case fleet.VerbStatus, fleet.VerbReload, fleet.VerbStop, fleet.VerbConfig, fleet.VerbPause, fleet.VerbResume, fleet.VerbAutoscale:
	default:
		return cmd, "", fmt.Errorf("unknown fleet command %q (want list, top, ping, status, config, reload, stop, pause, resume or autoscale)", verb)
	}
	if len(args) == 0 {
		return cmd, "", fmt.Errorf("fleet %s needs the pool's HOST/NAME (see fleet)", verb)
	}
	target, args := args[0], args[1:]
	if err := ValidatePoolID(target); err != nil {
		return cmd, "", err
	}
	switch verb {
	case fleet.VerbStatus, fleet.VerbReload, fleet.VerbStop:
		if len(args) > 0 {
			return cmd, "", fmt.Errorf("fleet %s takes only HOST/NAME, got %q", verb, args[0])
		}
	case fleet.VerbConfig:
		if len(args) == 0 {
			return cmd, "", errors.New("fleet config needs spec words after HOST/NAME, e.g. foo=4 bar=0")
		}
		if _, err := spec.ParseArgs(args); err != nil {
			return cmd, "", err
		}
		cmd.Args = args
	default: // pause, resume, autoscale: queue lists
		for _, a := range args {
			if _, err := spec.Parse(a + "=1"); err != nil || strings.Contains(a, "=") {
				return cmd, "", fmt.Errorf("%q is not a queue list", a)
			}
		}
		cmd.Args = append(cmd.Args, args...)
	}
	return cmd, target, nil
}

// ValidatePoolID checks a pool id HOST/NAME.
func ValidatePoolID(id string) error {
	host, name, ok := strings.Cut(id, "/")
	if !ok || host == "" || strings.ContainsAny(host, "/ \t\r\n") {
		return fmt.Errorf("bad pool id %q: want HOST/NAME, e.g. web1/orders (fleet lists them)", id)
	}
	if err := poolfs.ValidatePoolName(name); err != nil {
		return fmt.Errorf("bad pool id %q: %v", id, err)
	}
	return nil
}

// randomToken is a fresh hex token for ids and reply lists.
func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serverNow is the Redis server's clock (masters check expiries by it),
// or this host's when Redis does not say.
func serverNow(ctx context.Context, q *queue.Client) time.Time {
	if t, err := q.Redis().Time(ctx).Result(); err == nil {
		return t
	}
	return time.Now()
}

// fleetAnswer is what a targeted command prints with --json: the reply,
// or why there is none (with the reply list, where a late answer lands).
type fleetAnswer struct {
	ID      string          `json:"id"`
	Pool    string          `json:"pool"`
	Status  string          `json:"status"` // ok, error, expired, no reply
	Result  json.RawMessage `json:"result,omitempty"`
	Error   string          `json:"error,omitempty"`
	ReplyTo string          `json:"reply_to,omitempty"`
	Seconds float64         `json:"seconds"` // round trip
}

// statusNoReply is the status of a command nobody answered in time.
const statusNoReply = "no reply"

func fleetSend(ctx context.Context, q *queue.Client, target string, cmd fleet.Command, o FleetOptions, out io.Writer) error {
	cmd.ID = randomToken()
	cmd.ReplyTo = queue.ReplyPrefix + "fleet:" + cmd.ID
	cmd.ExpiresAt = serverNow(ctx, q).Add(o.Expire)
	start := time.Now()
	r, err := fleet.NewClient(q.Redis(), q.Keys().Namespace()).Send(ctx, target, cmd, o.Timeout)
	a := fleetAnswer{ID: cmd.ID, Pool: target, Status: r.Status, Result: r.Result, Error: r.Error, Seconds: time.Since(start).Seconds()}
	if err != nil {
		if !errors.Is(err, fleet.ErrNoReply) {
			return fmt.Errorf("fleet %s %s: %w", cmd.Verb, target, err)
		}
		a.Status, a.ReplyTo = statusNoReply, cmd.ReplyTo
		a.Error = fmt.Sprintf("no reply within %s; the command waits in the pool's list until %s, then is dropped (a late answer goes to %s)",
			o.Timeout, cmd.ExpiresAt.Local().Format(time.TimeOnly), cmd.ReplyTo)
	}
	if o.JSON {
		if err := json.NewEncoder(out).Encode(a); err != nil {
			return err
		}
	} else if a.Status == fleet.StatusOK {
		printFleetResult(out, cmd.Verb, target, a.Result)
	}
	if a.Status != fleet.StatusOK {
		return fmt.Errorf("%w: %s: %s: %s", ErrFleetFailed, target, a.Status, a.Error)
	}
	return nil
}

// printFleetResult prints a successful answer for a reader.
func printFleetResult(out io.Writer, verb, target string, result json.RawMessage) {
	var r struct {
		Spec    string              `json:"spec"`
		Status  string              `json:"status"`
		PID     int                 `json:"pid"`
		Groups  []poolfs.GroupState `json:"groups"`
		Queues  []string            `json:"queues"`
		Workers json.RawMessage     `json:"workers"`
		Pending []int               `json:"pending"`
	}
	_ = json.Unmarshal(result, &r)
	switch verb {
	case fleet.VerbPause, fleet.VerbResume:
		var pids []int
		_ = json.Unmarshal(r.Workers, &pids)
		fmt.Fprintf(out, "%s: %sd %s (%d worker%s signalled", target, verb, strings.Join(r.Queues, " "), len(pids), plural(len(pids)))
		if len(r.Pending) > 0 {
			fmt.Fprintf(out, ", %d still starting", len(r.Pending))
		}
		fmt.Fprintln(out, ")")
	case fleet.VerbStop:
		fmt.Fprintf(out, "%s: stopping gracefully\n", target)
	case fleet.VerbStatus:
		fmt.Fprintf(out, "%s: %s, master pid %d, %s\n", target, r.Status, r.PID, groupsText(r.Groups))
	default:
		fmt.Fprintf(out, "%s: ok: %s\n", target, groupsText(r.Groups))
	}
}

// groupsText is "foo=2/3 bar=1/1": live/desired per queue list.
func groupsText(gs []poolfs.GroupState) string {
	if len(gs) == 0 {
		return "no workers"
	}
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = fmt.Sprintf("%s=%d/%d", g.Queues, g.Live, g.Desired)
		if g.Paused {
			parts[i] += " (paused)"
		}
	}
	return strings.Join(parts, " ")
}

// listedPool is a registry entry as fleet --json prints it.
type listedPool struct {
	fleet.Listed
	AgeSeconds float64 `json:"heartbeat_age_seconds"`
}

func fleetList(ctx context.Context, q *queue.Client, o FleetOptions, out io.Writer) error {
	pools, err := fleet.ListWith(ctx, q.Redis(), q.Keys().Namespace(), fleet.ListOptions{StaleAfter: o.StaleAfter})
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	if o.JSON {
		all := make([]listedPool, len(pools))
		for i, p := range pools {
			all[i] = listedPool{Listed: p, AgeSeconds: p.Age.Seconds()}
		}
		return json.NewEncoder(out).Encode(all)
	}
	if len(pools) == 0 {
		fmt.Fprintln(out, "no pools registered on this Redis")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tSTATE\tWORKERS\tQUEUE LISTS (live/desired)\tHEARTBEAT\tREMOTE")
	for _, p := range pools {
		live, desired := 0, 0
		lists := make([]string, len(p.Groups))
		for i, g := range p.Groups {
			live, desired = live+g.Live, desired+g.Desired
			lists[i] = fmt.Sprintf("%s=%d/%d", g.Queues, g.Live, g.Desired)
		}
		state := p.State
		if p.Stale {
			state = "stale (" + p.State + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s ago\t%s\n", p.ID, state, live, desired, strings.Join(lists, " "), p.Age.Round(100*time.Millisecond), onOff(p.RemoteControl))
	}
	return tw.Flush()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// topFrame is one frame of fleet top --json.
type topFrame struct {
	At    time.Time      `json:"at"`
	Pools []topPool      `json:"pools"`
	Total *fleet.Cockpit `json:"total"` // over the pools that are not stale
}

// topPool is one pool of a fleet top frame.
type topPool struct {
	ID      string         `json:"id"`
	State   string         `json:"state"`
	Stale   bool           `json:"stale"`
	Cockpit *fleet.Cockpit `json:"cockpit"` // null before its first sample
}

func fleetTop(ctx context.Context, q *queue.Client, o FleetOptions, out io.Writer) error {
	if o.Count <= 0 {
		o.Count = 1
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	for i := 0; i < o.Count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(o.Interval):
			}
		}
		pools, err := fleet.ListWith(ctx, q.Redis(), q.Keys().Namespace(), fleet.ListOptions{StaleAfter: o.StaleAfter})
		if err != nil {
			return fmt.Errorf("fleet top: %w", err)
		}
		f := topFrame{At: time.Now().UTC(), Pools: []topPool{}, Total: &fleet.Cockpit{}}
		for _, p := range pools {
			f.Pools = append(f.Pools, topPool{ID: p.ID, State: p.State, Stale: p.Stale, Cockpit: p.Cockpit})
			if c := p.Cockpit; c != nil && !p.Stale {
				t := f.Total
				t.Queued += c.Queued
				t.InFlight += c.InFlight
				t.InRate += c.InRate
				t.OutRate += c.OutRate
				t.Busy += c.Busy
				t.Workers += c.Workers
				t.Failed += c.Failed
			}
		}
		if o.JSON || o.Pipe {
			if err := json.NewEncoder(out).Encode(f); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(out)
		}
		printTopFrame(out, f)
	}
	return nil
}

func printTopFrame(out io.Writer, f topFrame) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POOL\tSTATE\tBUSY/WORKERS\tQUEUED\tIN FLIGHT\tIN/s\tOUT/s\tFAILED\t")
	row := func(id, state string, c *fleet.Cockpit) {
		if c == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t\n", id, state)
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%.1f\t%.1f\t%d\t\n", id, state, c.Busy, c.Workers, c.Queued, c.InFlight, c.InRate, c.OutRate, c.Failed)
	}
	for _, p := range f.Pools {
		state := p.State
		if p.Stale {
			state = "stale"
		}
		row(p.ID, state, p.Cockpit)
	}
	row("TOTAL", fmt.Sprintf("%d pools", len(f.Pools)), f.Total)
	_ = tw.Flush()
}

// pingAnswer is one pool's answer to fleet ping.
type pingAnswer struct {
	Pool    string  `json:"pool"`
	Status  string  `json:"status"` // ok, error, no reply
	Seconds float64 `json:"seconds,omitempty"`
	Error   string  `json:"error,omitempty"`
}

func fleetPing(ctx context.Context, q *queue.Client, o FleetOptions, out, info io.Writer) error {
	ns := q.Keys().Namespace()
	pools, err := fleet.ListWith(ctx, q.Redis(), ns, fleet.ListOptions{StaleAfter: o.StaleAfter})
	if err != nil {
		return fmt.Errorf("fleet ping: %w", err)
	}
	expect := map[string]bool{}
	for _, p := range pools {
		if !p.Stale {
			expect[p.ID] = true
		}
	}
	answers, err := broadcastTimed(ctx, q, fleet.Command{Verb: fleet.VerbPing}, o.Timeout, expect)
	if err != nil {
		return fmt.Errorf("fleet ping: %w", err)
	}
	var missing []string
	for id := range expect {
		if _, ok := answers[id]; !ok {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	ids := make([]string, 0, len(answers))
	for id := range answers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var list []pingAnswer
	for _, id := range ids {
		list = append(list, answers[id])
	}
	for _, id := range missing {
		list = append(list, pingAnswer{Pool: id, Status: statusNoReply, Error: fmt.Sprintf("no reply within %s", o.Timeout)})
	}
	if o.JSON {
		for _, a := range list {
			if err := json.NewEncoder(out).Encode(a); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, a := range list {
			switch a.Status {
			case fleet.StatusOK:
				fmt.Fprintf(tw, "%s\tok\t%s\n", a.Pool, time.Duration(a.Seconds*float64(time.Second)).Round(100*time.Microsecond))
			default:
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Pool, a.Status, a.Error)
			}
		}
		_ = tw.Flush()
	}
	failed := len(missing)
	for _, a := range answers {
		if a.Status != fleet.StatusOK {
			failed++
		}
	}
	if len(list) == 0 {
		fmt.Fprintln(info, "no pool answered, and none is registered on this Redis")
		return fmt.Errorf("%w: no pool answered", ErrFleetFailed)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d pool%s did not answer ok", ErrFleetFailed, failed, len(list), plural(len(list)))
	}
	return nil
}

// broadcastTimed publishes cmd to every pool and collects the answers on
// a reply list of its own until timeout, or until every pool of expect
// answered, timing each: fleet.Client.Broadcast has no per-reply times.
func broadcastTimed(ctx context.Context, q *queue.Client, cmd fleet.Command, timeout time.Duration, expect map[string]bool) (map[string]pingAnswer, error) {
	rdb := q.Redis()
	cmd.ID = randomToken()
	cmd.ReplyTo = queue.ReplyPrefix + "fleet:" + cmd.ID
	cmd.ExpiresAt = serverNow(ctx, q).Add(timeout)
	raw, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	key := q.Keys().ReplyKey(cmd.ReplyTo)
	defer rdb.Del(context.WithoutCancel(ctx), key)
	start := time.Now()
	deadline := start.Add(timeout)
	if err := rdb.Publish(ctx, fleet.BroadcastChannel(q.Keys().Namespace()), raw).Err(); err != nil {
		return nil, err
	}
	answers := map[string]pingAnswer{}
	for {
		left := time.Until(deadline)
		if left <= 0 || (len(expect) > 0 && allAnswered(expect, answers)) {
			return answers, nil
		}
		// BLPOP takes a fractional timeout since Redis 6 (go-redis's
		// BLPop rounds one under a second up to a whole second).
		res, err := rdb.Do(ctx, "BLPOP", key, strconv.FormatFloat(max(left, time.Millisecond).Seconds(), 'f', 3, 64)).StringSlice()
		if err != nil {
			if ctx.Err() != nil {
				return answers, ctx.Err()
			}
			if errors.Is(err, redis.Nil) {
				return answers, nil
			}
			return answers, err
		}
		var r fleet.Reply
		if len(res) < 2 || json.Unmarshal([]byte(res[1]), &r) != nil || r.ID != cmd.ID || r.Pool == "" {
			continue
		}
		answers[r.Pool] = pingAnswer{Pool: r.Pool, Status: r.Status, Seconds: time.Since(start).Seconds(), Error: r.Error}
	}
}

func allAnswered(expect map[string]bool, got map[string]pingAnswer) bool {
	for id := range expect {
		if _, ok := got[id]; !ok {
			return false
		}
	}
	return true
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
