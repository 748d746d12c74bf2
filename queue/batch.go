package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Finished is the outcome of one job of a batch (AckReserveBatch), for
// FinishAll.
type Finished struct {
	Job     *Job
	Timing  Timing
	Failure *Failure // nil for a success
	// Next is the job of the same batch that the worker starts now, or
	// nil: the reservation moves on to its token and the worker record
	// (Resque's "working on") to it, in the same script.
	Next *Job
	// At is when Next started (its record's run_at) and, for a failure,
	// the failure's time.
	At time.Time
}

// FinishAll records the outcomes of jobs, in order, in one pipeline of
// ackScript calls: a busy worker sends them while it already runs the
// next job of its batch, so a job's acknowledgement costs no round trip
// of its own. Each is idempotent like Ack (it acts only while the
// reservation holds the job's token), so after an error the whole list
// can be sent again. A Redis that lost its script cache (restarted empty)
// gets the script loaded and the list sent again.
func (c *Client) FinishAll(ctx context.Context, id string, done []Finished) error {
	if len(done) == 0 {
		return nil
	}
	err := c.resendOnNoScript(ctx, func() error {
		pipe := c.rdb.Pipeline()
		if err := c.FinishCmds(ctx, pipe, id, done); err != nil {
			return err
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("record %d job outcome(s) from %s: %w", len(done), done[0].Job.Queue, err)
	}
	return nil
}

// FinishAllAndReserve records the outcomes done (FinishAll) and then,
// in the same pipeline, acknowledges last and reserves the next batch
// (AckReserveBatch): the end of a batch costs one round trip. On error
// the caller cannot tell what ran: send done again (FinishAll), then
// acknowledge last, then requeue the worker's in-flight lists.
func (c *Client) FinishAllAndReserve(ctx context.Context, id string, done []Finished, last *Job, t Timing, queues []string, most int, now time.Time) ([]*Job, error) {
	var jobs []*Job
	err := c.resendOnNoScript(ctx, func() error {
		pipe := c.rdb.Pipeline()
		if err := c.FinishCmds(ctx, pipe, id, done); err != nil {
			return err
		}
		_, decode := c.AckReserveBatchCmd(ctx, pipe, id, last, t, queues, most, now)
		cmds, _ := pipe.Exec(ctx)
		for _, cmd := range cmds[:len(cmds)-1] {
			if err := cmd.Err(); err != nil {
				return fmt.Errorf("record %d job outcome(s) from %s: %w", len(done), done[0].Job.Queue, err)
			}
		}
		var err error
		jobs, err = decode()
		return err
	})
	return jobs, err
}

// resendOnNoScript runs send, and once more after loading the scripts
// when Redis answered NOSCRIPT: its script cache was emptied (a restart
// without persistence), and EVALSHA in a pipeline has no EVAL fallback.
// The scripts are idempotent, so what ran the first time is not repeated.
func (c *Client) resendOnNoScript(ctx context.Context, send func() error) error {
	err := send()
	if !redis.HasErrorPrefix(err, "NOSCRIPT") {
		return err
	}
	if lerr := c.LoadScripts(ctx); lerr != nil {
		return lerr
	}
	return send()
}

// FinishCmds queues FinishAll's scripts by EVALSHA on pipe, for callers
// measuring the command mix itself (the benchmark's ceiling). Call
// LoadScripts first.
func (c *Client) FinishCmds(ctx context.Context, pipe redis.Pipeliner, id string, done []Finished) error {
	for _, d := range done {
		var rec []byte
		failed := ""
		if d.Failure != nil {
			var err error
			if rec, err = failureRecord(id, d.Job, *d.Failure, d.At); err != nil {
				return err
			}
			failed = ClassField(StatFailed, d.Timing.RecordedClass())
		}
		keys, args := c.finishArgs(id, d.Job, d.Timing, rec, failed, d.Next, d.At)
		ackScript.EvalSha(ctx, pipe, keys, args...)
	}
	return nil
}

// AckReserveBatchCmd queues AckReserveBatch's script by EVALSHA on s;
// ReservedJobs decodes its reply. For the benchmark's ceiling; call
// LoadScripts first.
func (c *Client) AckReserveBatchCmd(ctx context.Context, s redis.Scripter, id string, done *Job, t Timing, queues []string, most int, now time.Time) (cmd *redis.Cmd, decode func() ([]*Job, error)) {
	most = max(most, 1)
	next := c.newToken()
	keys, args := c.ackReserveArgs(id, done, t, most, next, queues, now)
	cmd = ackReserveScript.EvalSha(ctx, s, keys, args...)
	return cmd, func() ([]*Job, error) { return reserved(cmd, queues, next, most, now) }
}

// failureRecord is the entry of Resque's failed list for job.
func failureRecord(id string, job *Job, f Failure, now time.Time) ([]byte, error) {
	if f.Backtrace == nil {
		f.Backtrace = []string{}
	}
	rec, err := json.Marshal(FailureRecord{
		FailedAt:  now.UTC().Format(failedAtLayout),
		Payload:   rawOrString(job.Payload),
		Exception: f.Exception,
		Error:     f.Error,
		Backtrace: f.Backtrace,
		Worker:    id,
		Queue:     job.Queue,
	})
	if err != nil {
		return nil, fmt.Errorf("encode failure record: %w", err)
	}
	return rec, nil
}

// workerRecord is Resque's worker:ID value for a job started at now, as
// reserveLua writes it: the payload embedded byte for byte when it is a
// JSON object any parser accepts, else as a string.
func workerRecord(queue string, now time.Time, payload []byte) []byte {
	q, _ := json.Marshal(queue)
	p := rawOrString(payload)
	b := make([]byte, 0, len(q)+len(p)+64)
	b = append(b, `{"queue":`...)
	b = append(b, q...)
	b = append(b, `,"run_at":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","payload":`...)
	b = append(b, p...)
	return append(b, '}')
}
