package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
)

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
