package shell

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/queue"
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
	replies, err := fleet.NewClient(q.Redis(), ns).BroadcastWith(ctx, fleet.Command{Verb: fleet.VerbPing}, o.Timeout, fleet.ListOptions{StaleAfter: o.StaleAfter})
	if err != nil {
		return fmt.Errorf("fleet ping: %w", err)
	}
	answers := map[string]pingAnswer{}
	for _, r := range replies {
		answers[r.Pool] = pingAnswer{Pool: r.Pool, Status: r.Status, Seconds: r.Elapsed.Seconds(), Error: r.Error}
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
