package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/queue"
)

// replyWait is `enqueue --wait`: the jobs carry a fresh reply_to and one
// correlation id each, and the command prints their replies as they come
// until every job has its terminal reply or the timeout passes.
type replyWait struct {
	replyTo string
	corrs   []string // by copy index
}

// newReplyWait adds a fresh reply_to and a correlation id per copy
// (REPLYTO-SUFFIX-i) to payloads, in place.
func newReplyWait(payloads [][]byte) (*replyWait, error) {
	w := &replyWait{replyTo: queue.NewReplyTo()}
	base := strings.TrimPrefix(w.replyTo, queue.ReplyPrefix)
	for i, p := range payloads {
		corr := base + "-" + strconv.Itoa(i)
		withReply, err := queue.WithReplyTo(p, w.replyTo, corr)
		if err != nil {
			return nil, err
		}
		payloads[i], w.corrs = withReply, append(w.corrs, corr)
	}
	return w, nil
}

// waitStatus is how `enqueue --wait` ends other than with every job
// completed: 1 when a job failed, 2 when replies were missing at the
// timeout, 130 when interrupted (INT or TERM).
type waitStatus struct {
	msg    string
	status int
}

func (e waitStatus) Error() string   { return e.msg }
func (e waitStatus) ExitStatus() int { return e.status }

// await prints replies until every job has its terminal reply or timeout
// (0 = none) passes, or INT or TERM arrives, then deletes the reply list.
func (w *replyWait) await(ctx context.Context, c *queue.Client, timeout time.Duration, asJSON bool, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.DeleteReplies(ctx, w.replyTo) // it expires anyway
	}()
	index := make(map[string]int, len(w.corrs))
	for i, corr := range w.corrs {
		index[corr] = i
	}
	final := map[string]string{} // correlation id -> terminal status
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	failed := 0
	for len(final) < len(w.corrs) {
		wait := time.Second
		if !deadline.IsZero() {
			wait = time.Until(deadline)
			if wait <= 0 {
				return waitStatus{status: 2, msg: fmt.Sprintf("timed out after %s: %d of %d job(s) without a final reply; they may still run (replies then go to %s, which expires)",
					timeout, len(w.corrs)-len(final), len(w.corrs), w.replyTo)}
			}
		}
		raw, err := c.PopReply(ctx, w.replyTo, wait)
		if ctx.Err() != nil {
			return waitStatus{status: 130, msg: fmt.Sprintf("interrupted: %d of %d job(s) without a final reply; they may still run",
				len(w.corrs)-len(final), len(w.corrs))}
		}
		if err != nil {
			return err
		}
		if raw == nil {
			continue
		}
		var m queue.ReplyMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("a reply on %s is not JSON: %w", w.replyTo, err)
		}
		if asJSON {
			fmt.Fprintf(stdout, "%s\n", raw)
		} else {
			fmt.Fprintln(stdout, describeReply(m, index, len(w.corrs)))
		}
		_, ours := index[m.CorrelationID]
		if !ours || m.Status == queue.ReplyStarted {
			continue
		}
		if _, seen := final[m.CorrelationID]; !seen && m.Status == queue.ReplyFailed {
			failed++
		}
		final[m.CorrelationID] = m.Status
	}
	if failed > 0 {
		return waitStatus{status: 1, msg: fmt.Sprintf("%d of %d job(s) failed", failed, len(w.corrs))}
	}
	return nil
}

// describeReply is a reply as a line for people.
func describeReply(m queue.ReplyMessage, index map[string]int, n int) string {
	var b strings.Builder
	if i, ok := index[m.CorrelationID]; ok && n > 1 {
		fmt.Fprintf(&b, "job %d: ", i)
	}
	fmt.Fprintf(&b, "%-9s %s on %s", m.Status, m.Class, m.Queue)
	switch m.Status {
	case queue.ReplyStarted:
		fmt.Fprintf(&b, " by %s (job %s, attempt %d)", m.Worker, m.JobID, m.Attempt)
	case queue.ReplyCompleted:
		if m.DurationSeconds != nil {
			fmt.Fprintf(&b, " in %.3fs", *m.DurationSeconds)
		}
		if len(m.Data) > 0 && string(m.Data) != "null" {
			fmt.Fprintf(&b, ": %s", m.Data)
		}
	case queue.ReplyFailed:
		var d queue.FailureData
		_ = json.Unmarshal(m.Data, &d)
		if m.DurationSeconds != nil && *m.DurationSeconds > 0 {
			fmt.Fprintf(&b, " after %.3fs", *m.DurationSeconds)
		}
		fmt.Fprintf(&b, ": %s: %s", d.Exception, d.Error)
		if d.ExitStatus != nil {
			fmt.Fprintf(&b, " (exit status %d)", *d.ExitStatus)
		}
		for _, l := range d.StderrTail {
			fmt.Fprintf(&b, "\n    %s", l)
		}
	}
	return b.String()
}
