package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Replies are JSON messages a worker (job status replies) or a master
// (control replies, package fleet) pushes to a list its requester named
// with "reply_to". The name is relative to the namespace, as every Resque
// key is: reply_to "replies:42" is the list <ns>replies:42, which a Ruby
// requester using Resque.redis (redis-namespace) reads as "replies:42".

// DefaultReplyTTL is how long a reply list lives after its last reply when
// the configuration sets no reply_ttl: abandoned lists do not pile up.
const DefaultReplyTTL = time.Hour

// maxReplyTo bounds a reply_to name.
const maxReplyTo = 512

// ReplyPrefix is where poolctl's own requesters (enqueue --wait, fleet)
// make their reply lists: <ns>poolctl:reply:RANDOM.
const ReplyPrefix = "poolctl:reply:"

// ValidateReplyTo reports why name cannot be a reply list: empty, too
// long, not UTF-8, or one of Resque's or poolctl's own keys (a reply
// pushed onto a queue would be taken for a job).
func ValidateReplyTo(name string) error {
	switch {
	case name == "":
		return fmt.Errorf(`"reply_to" is empty`)
	case len(name) > maxReplyTo:
		return fmt.Errorf(`"reply_to" is %d bytes long; the limit is %d`, len(name), maxReplyTo)
	case !utf8.ValidString(name):
		return fmt.Errorf(`"reply_to" is not valid UTF-8`)
	case strings.HasPrefix(name, ReplyPrefix):
		return nil
	}
	for _, reserved := range []string{"queue:", "worker:", "stat:", "poolctl:"} {
		if strings.HasPrefix(name, reserved) {
			return fmt.Errorf(`"reply_to" %q names one of Resque's or poolctl's own keys (%s...); use another name, e.g. %sNAME`, name, reserved, ReplyPrefix)
		}
	}
	for _, reserved := range []string{"queues", "workers", "failed", "workers:heartbeat"} {
		if name == reserved {
			return fmt.Errorf(`"reply_to" %q names one of Resque's own keys; use another name, e.g. %sNAME`, name, ReplyPrefix)
		}
	}
	return nil
}

// ReplyKey is the list a reply_to name denotes.
func (k Keys) ReplyKey(replyTo string) string { return k.ns + replyTo }

// PushReply appends msgs (JSON documents) to the reply list named replyTo
// and sets the list to expire ttl after this push (DefaultReplyTTL when
// ttl <= 0), in one transaction. replyTo must pass ValidateReplyTo.
func (c *Client) PushReply(ctx context.Context, replyTo string, ttl time.Duration, msgs ...[]byte) error {
	if err := ValidateReplyTo(replyTo); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = DefaultReplyTTL
	}
	key := c.keys.ReplyKey(replyTo)
	vals := make([]any, len(msgs))
	for i, m := range msgs {
		vals[i] = m
	}
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, key, vals...)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("push reply to %s: %w", replyTo, err)
	}
	return nil
}

// Job status replies (docs/messages.md): a payload's "reply_to" and
// "correlation_id" ask the worker to report on the job. "started" goes
// out once per reservation (StartedReply); the terminal reply
// ("completed" or "failed") is pushed by the very script that
// acknowledges or fails the job (Ack, Fail, AckReserve), so that exactly
// one goes out per acknowledged job, whatever replies are lost.

// Reply statuses.
const (
	ReplyStarted   = "started"
	ReplyCompleted = "completed"
	ReplyFailed    = "failed"
)

// ReplyMessage is a job status reply as pushed to a reply list.
type ReplyMessage struct {
	CorrelationID string `json:"correlation_id"`
	Status        string `json:"status"`
	JobID         string `json:"job_id"`
	Class         string `json:"class"`
	Queue         string `json:"queue"`
	Worker        string `json:"worker"`
	At            string `json:"at"` // RFC 3339 with milliseconds, UTC
	// Data is the result of a completed job, the failure of a failed one;
	// absent from "started", JSON null when a job printed nothing.
	Data            json.RawMessage `json:"data,omitzero"`
	DurationSeconds *float64        `json:"duration_seconds,omitempty"`
	// Attempt counts the runs of this correlation id (1, then 2 after a
	// crash requeued the job, ...). The pushing script fills it in.
	Attempt int `json:"attempt,omitzero"`
}

// FailureData is the "data" of a failed reply.
type FailureData struct {
	Exception  string   `json:"exception"`
	Error      string   `json:"error"`
	ExitStatus *int     `json:"exit_status,omitempty"` // command jobs that exited
	StderrTail []string `json:"stderr_tail"`
}

// ReplyTimeLayout formats a reply's "at".
const ReplyTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// JobReply is where a job's replies go and its terminal reply, set by the
// worker before it acknowledges or fails the job.
type JobReply struct {
	To            string        // reply_to; must pass ValidateReplyTo
	CorrelationID string        // the attempts counter's field
	TTL           time.Duration // <= 0: DefaultReplyTTL
	// Final is the terminal message (EncodeReply's output), pushed by the
	// acknowledging script when it does acknowledge the job; nil: none.
	Final []byte
}

// EncodeReply encodes m for the pushing scripts: without its closing
// brace and with a trailing `"attempt":`, which the script completes
// with the attempt number it counted.
func EncodeReply(m ReplyMessage) ([]byte, error) {
	m.Attempt = 0
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s reply: %w", m.Status, err)
	}
	return append(b[:len(b)-1], `,"attempt":`...), nil
}

// AttemptsKey is the hash counting the attempts of each correlation id
// replying to replyTo (field: the correlation id; value: "N:TOKEN", the
// count and the reservation that counted last).
func (k Keys) AttemptsKey(replyTo string) string { return k.ns + "poolctl:attempts:" + replyTo }

// replyKeys are the reply list and attempts hash of r, or (when r is nil)
// keys in the namespace that the scripts will not touch: every key a
// script names is passed in KEYS, and they share the namespace's slot on
// a Cluster with a hash-tagged namespace.
func (c *Client) replyKeys(r *JobReply) (list, attempts string) {
	if r == nil || r.Final == nil {
		return c.keys.AttemptsKey(""), c.keys.AttemptsKey("")
	}
	return c.keys.ReplyKey(r.To), c.keys.AttemptsKey(r.To)
}

// replyArgs are the message, TTL (ms) and correlation id ARGV of the
// acknowledging scripts; the message is "" when there is none.
func replyArgs(r *JobReply) (msg []byte, ttlMS int64, cid string) {
	if r == nil || r.Final == nil {
		return []byte{}, 0, ""
	}
	return r.Final, replyTTL(r.TTL).Milliseconds(), r.CorrelationID
}

func replyTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return DefaultReplyTTL
	}
	return ttl
}

// StartedReply pushes msg (EncodeReply's output, status "started") for
// job to job.Reply.To, counting the attempt, and returns the attempt
// number. It is idempotent per reservation: a retry after a lost reply
// pushes nothing more and counts nothing more.
func (c *Client) StartedReply(ctx context.Context, job *Job, msg []byte) (int, error) {
	r := job.Reply
	if r == nil {
		return 0, fmt.Errorf("started reply: the job has no reply_to")
	}
	if err := ValidateReplyTo(r.To); err != nil {
		return 0, err
	}
	n, err := startedScript.Run(ctx, c.rdb, []string{c.keys.AttemptsKey(r.To), c.keys.ReplyKey(r.To)},
		r.CorrelationID, job.Token, msg, replyTTL(r.TTL).Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("push started reply to %s: %w", r.To, err)
	}
	return n, nil
}

// NewReplyTo returns a fresh reply list name under ReplyPrefix.
func NewReplyTo() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return ReplyPrefix + hex.EncodeToString(b[:])
}

// WithReplyTo returns a copy of payload (a JSON object, as EncodePayload
// makes) with "reply_to" and "correlation_id" added.
func WithReplyTo(payload []byte, replyTo, correlationID string) ([]byte, error) {
	if len(payload) < 2 || payload[0] != '{' || payload[len(payload)-1] != '}' {
		return nil, fmt.Errorf("add reply_to: the payload is not a JSON object")
	}
	extra, err := json.Marshal(struct {
		ReplyTo       string `json:"reply_to"`
		CorrelationID string `json:"correlation_id"`
	}{replyTo, correlationID})
	if err != nil {
		return nil, fmt.Errorf("add reply_to: %w", err)
	}
	out := make([]byte, 0, len(payload)+len(extra))
	out = append(out, payload[:len(payload)-1]...)
	if len(payload) > 2 {
		out = append(out, ',')
	}
	return append(out, extra[1:]...), nil
}

// maxReplyWait bounds one blocking pop of PopReply, so that a client's
// default read timeout always outlasts it.
const maxReplyWait = time.Second

// PopReply waits up to timeout (at most a second: call it in a loop) for
// the next message on the reply list named replyTo and takes it; it
// returns nil, nil when none came.
func (c *Client) PopReply(ctx context.Context, replyTo string, timeout time.Duration) ([]byte, error) {
	timeout = min(max(timeout, time.Millisecond), maxReplyWait)
	// Sent by hand: go-redis's BLPop rounds timeouts up to whole seconds.
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	res, err := c.rdb.Do(ctx, "BLPOP", c.keys.ReplyKey(replyTo), secs).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wait for a reply on %s: %w", replyTo, err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("wait for a reply on %s: unexpected reply %q", replyTo, res)
	}
	return []byte(res[1]), nil
}

// DeleteReplies removes the reply list named replyTo and its attempts
// counter.
func (c *Client) DeleteReplies(ctx context.Context, replyTo string) error {
	pipe := c.rdb.Pipeline()
	pipe.Del(ctx, c.keys.ReplyKey(replyTo))
	pipe.Del(ctx, c.keys.AttemptsKey(replyTo))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete reply list %s: %w", replyTo, err)
	}
	return nil
}
