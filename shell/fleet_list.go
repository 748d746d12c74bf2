package shell

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/poolctl/poolctl/fleet"
	"github.com/poolctl/poolctl/queue"
)

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
