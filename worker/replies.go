package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/poolctl/poolctl/queue"
)

// Job status replies (docs/messages.md): a job whose payload names a
// reply_to gets "started" once it is known to be runnable (its payload
// decoded, its class known, its args accepted), then exactly one
// "completed" or "failed", which the queue's acknowledging script pushes
// with the acknowledgement itself.

// replyDataLines is how many of a job's last stdout lines make a completed
// reply's data when its stdout is not JSON.
const replyDataLines = 20

// wantReplies records on job where its replies go; to "" wants none.
func (w *Worker) wantReplies(job *queue.Job, to, corr string) {
	if to == "" {
		job.Reply = nil
		return
	}
	job.Reply = &queue.JobReply{To: to, CorrelationID: corr, TTL: w.cfg.ReplyTTL}
}

// message is a reply of job as run (ran), at now.
func (w *Worker) message(job *queue.Job, ran jobRun, status string) queue.ReplyMessage {
	return queue.ReplyMessage{
		CorrelationID: job.Reply.CorrelationID,
		Status:        status,
		JobID:         ran.id,
		Class:         ran.class,
		Queue:         job.Queue,
		Worker:        w.id,
		At:            w.cfg.Now().UTC().Format(queue.ReplyTimeLayout),
	}
}

// sendStarted pushes job's started reply, retrying while Redis is down.
// It fails only when the worker stops meanwhile: the job has not run and
// goes back to its queue.
func (w *Worker) sendStarted(job *queue.Job, ran jobRun) error {
	msg, err := queue.EncodeReply(w.message(job, ran, queue.ReplyStarted))
	if err != nil {
		return err
	}
	return w.retry(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), bookkeepingTimeout)
		defer cancel()
		_, err := w.q.StartedReply(ctx, job, msg)
		return err
	}, true)
}

// setFinal prepares job's terminal reply from its outcome (jobErr nil:
// completed), for the acknowledging call to push.
func (w *Worker) setFinal(job *queue.Job, ran jobRun, jobErr error) {
	if job.Reply == nil {
		return
	}
	m := w.message(job, ran, queue.ReplyCompleted)
	secs := ran.run.Seconds()
	m.DurationSeconds = &secs
	m.Data = outputData(ran.stdout)
	if jobErr != nil {
		m.Status = queue.ReplyFailed
		m.Data = failureData(jobErr)
	}
	msg, err := queue.EncodeReply(m)
	if err != nil {
		w.logf("cannot encode the reply of a job from %s: %v", job.Queue, err)
		return
	}
	job.Reply.Final = msg
}

// outputData is a completed job's data: its stdout when that is JSON,
// else its last lines as a string; null when it printed nothing (or is
// a built-in class, which prints nothing).
func outputData(out *tailBuffer) json.RawMessage {
	if out == nil {
		return json.RawMessage("null")
	}
	b, whole := out.contents()
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if whole && json.Valid(b) {
		var compact bytes.Buffer
		if json.Compact(&compact, b) == nil {
			return compact.Bytes()
		}
	}
	lines := strings.Split(strings.ToValidUTF8(string(b), "\uFFFD"), "\n")
	if !whole && len(lines) > 1 {
		lines = lines[1:] // the first is cut
	}
	if len(lines) > replyDataLines {
		lines = lines[len(lines)-replyDataLines:]
	}
	s, _ := json.Marshal(strings.Join(lines, "\n"))
	return s
}

// failureData is a failed job's data.
func failureData(err error) json.RawMessage {
	f := toFailure(err)
	d := queue.FailureData{Exception: f.Exception, Error: f.Error, StderrTail: f.Backtrace}
	if d.StderrTail == nil {
		d.StderrTail = []string{}
	}
	var je *JobError
	if errors.As(err, &je) {
		d.ExitStatus = je.ExitStatus
	}
	b, _ := json.Marshal(d)
	return b
}
