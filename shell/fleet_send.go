package shell

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
)

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
