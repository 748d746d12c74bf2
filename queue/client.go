package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/poolctl/poolctl/redisconn"
	"github.com/redis/go-redis/v9"
)

// Client reads and writes Resque's data in one namespace.
type Client struct {
	rdb  redis.UniversalClient
	keys Keys

	tokenPrefix string       // random per Client: tokens never repeat across processes
	tokenSeq    atomic.Int64 // makes tokens unique within the Client
}

// New returns a Client over rdb for namespace ns ("" = "resque:").
func New(rdb redis.UniversalClient, ns string) *Client {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return &Client{rdb: rdb, keys: NewKeys(ns), tokenPrefix: hex.EncodeToString(b[:]) + "-"}
}

// newToken returns a reservation token no other reservation has.
func (c *Client) newToken() string {
	return c.tokenPrefix + strconv.FormatInt(c.tokenSeq.Add(1), 36)
}

// Keys returns the key builder.
func (c *Client) Keys() Keys { return c.keys }

// Redis returns the underlying client.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Job is a payload reserved from a queue.
type Job struct {
	Queue   string
	Payload []byte
	// Token identifies this reservation: acknowledging a job needs it, so
	// no retried acknowledgement can remove another job with the same
	// payload.
	Token string
	// Reserved is when the job was reserved, by the reserving caller's
	// clock (the now it passed): the end of the job's wait in its queue.
	Reserved time.Time
	// Reply, when set, is where the job's status replies go; its Final
	// message is pushed by the call that acknowledges or fails the job.
	Reply *JobReply
}

// Resque's time formats.
const (
	startedLayout  = "2006-01-02 15:04:05 -0700"
	failedAtLayout = "2006/01/02 15:04:05 MST"
)

// heartbeatLayout is ISO-8601 as Ruby's Time#iso8601 writes it.
const heartbeatLayout = "2006-01-02T15:04:05-07:00"

// Enqueue pushes payloads onto queue (RPUSH, after SADD to the queues
// set), in batches in one transaction, with the tokens that wake idle
// workers (notify.go) in the same transaction.
func (c *Client) Enqueue(ctx context.Context, queue string, payloads ...[]byte) error {
	const batch = 1000
	pipe := c.rdb.TxPipeline()
	pipe.SAdd(ctx, c.keys.Queues(), queue)
	for i := 0; i < len(payloads); i += batch {
		end := min(i+batch, len(payloads))
		vals := make([]any, 0, end-i)
		for _, p := range payloads[i:end] {
			vals = append(vals, p)
		}
		pipe.RPush(ctx, c.keys.Queue(queue), vals...)
	}
	c.notifyPipe(ctx, pipe, queue, len(payloads))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("enqueue to %s: %w", queue, redisconn.Explain(err))
	}
	return nil
}

// EncodePayload builds Resque's {"class":...,"args":[...]} payload.
func EncodePayload(class string, args []any) ([]byte, error) {
	return EncodePayloadAt(class, args, time.Time{})
}

// EncodePayloadAt builds Resque's payload stamped with enqueued_at (see
// EnqueuedAtKey): {"class":...,"args":[...],"enqueued_at":1795337900.123456}.
// A zero at stamps nothing.
func EncodePayloadAt(class string, args []any, at time.Time) ([]byte, error) {
	if args == nil {
		args = []any{}
	}
	var stamp json.RawMessage
	if !at.IsZero() {
		stamp = json.RawMessage(FormatEnqueuedAt(at))
	}
	b, err := json.Marshal(struct {
		Class      string          `json:"class"`
		Args       []any           `json:"args"`
		EnqueuedAt json.RawMessage `json:"enqueued_at,omitempty"`
	}{class, args, stamp})
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return b, nil
}

// QueueNames lists the known queues, sorted.
func (c *Client) QueueNames(ctx context.Context) ([]string, error) {
	names, err := c.rdb.SMembers(ctx, c.keys.Queues()).Result()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Expand resolves a queue list: plain names stay as they are; "*" and
// other glob patterns are replaced by the matching known queues, each
// pattern's matches sorted alphabetically, as Resque does. A name appears
// once, at its first position.
func (c *Client) Expand(ctx context.Context, patterns []string) ([]string, error) {
	var known []string
	for _, p := range patterns {
		if IsPattern(p) {
			var err error
			if known, err = c.QueueNames(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	return ExpandNames(patterns, known), nil
}

// IsPattern reports whether a queue name is a glob pattern, by Resque's
// rule: it contains one of * ? [ ] { } (Resque::Worker::WILDCARDS).
func IsPattern(name string) bool { return strings.ContainsAny(name, "*?[]{}") }

// WorkerID is Resque's worker id: HOST:PID:QUEUES with the queue list as
// given (globs unexpanded).
func WorkerID(host string, pid int, queues []string) string {
	return host + ":" + strconv.Itoa(pid) + ":" + strings.Join(queues, ",")
}

// ParseWorkerID splits a worker id into host, pid and queue list. Host
// names never contain ':', and pids are numbers, so the first two colons
// delimit the fields even when queue names contain colons.
func ParseWorkerID(id string) (host string, pid int, queues string, err error) {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) != 3 {
		return "", 0, "", fmt.Errorf("malformed worker id %q", id)
	}
	pid, err = strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, "", fmt.Errorf("malformed worker id %q: pid %q", id, parts[1])
	}
	return parts[0], pid, parts[2], nil
}

// Registration is what a worker records about itself in Redis.
type Registration struct {
	ID string
	// Started is the worker's own clock at start, Resque's "started";
	// shown to people, never used to judge liveness.
	Started time.Time
	// Identity tells this process apart from any later process with the
	// same pid on its host (internal/procid); "" when unknown.
	Identity string
}

// Register records a starting worker the way Resque does, plus its
// process identity, with a heartbeat by Redis's clock, in one round trip
// (Beat). A worker that may have a dead predecessor with its id uses
// Enroll.
func (c *Client) Register(ctx context.Context, r Registration) error {
	if err := c.Beat(ctx, r); err != nil {
		return fmt.Errorf("register worker %s: %w", r.ID, err)
	}
	return nil
}

// ServerTime is Redis's clock. Heartbeats are written and judged by it,
// as Resque does, so hosts with skewed clocks do not prune each other's
// live workers.
func (c *Client) ServerTime(ctx context.Context) (time.Time, error) {
	t, err := c.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("read Redis time: %w", err)
	}
	return t, nil
}

// Heartbeat refreshes a worker's heartbeat (pass ServerTime) and
// re-asserts the rest of its registration in the same transaction, so a
// worker whose registration was lost (Redis restarted empty, or pruned by
// another tool) is back within one heartbeat.
func (c *Client) Heartbeat(ctx context.Context, r Registration, now time.Time) error {
	pipe := c.rdb.TxPipeline()
	pipe.SAdd(ctx, c.keys.Workers(), r.ID)
	pipe.Set(ctx, c.keys.WorkerStarted(r.ID), r.Started.Format(startedLayout), 0)
	pipe.HSet(ctx, c.keys.Heartbeat(), r.ID, now.Format(heartbeatLayout))
	if r.Identity != "" {
		pipe.Set(ctx, c.keys.Identity(r.ID), r.Identity, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("heartbeat %s: %w", r.ID, err)
	}
	return nil
}

// Reserve atomically moves the first job of the first non-empty queue (in
// the given priority order) into the worker's in-flight list and records
// it as the worker's current job, with a new reservation token. It returns
// nil, nil when all queues are empty.
func (c *Client) Reserve(ctx context.Context, id string, queues []string, now time.Time) (*Job, error) {
	token := c.newToken()
	keys := make([]string, 3, 3+2*len(queues))
	keys[0], keys[1], keys[2] = c.keys.Worker(id), c.keys.InFlightIndex(id), c.keys.Reservation(id)
	args := make([]any, 2, 2+len(queues))
	args[0], args[1] = token, now.UTC().Format(time.RFC3339)
	for _, q := range queues {
		keys = append(keys, c.keys.Queue(q), c.keys.InFlight(id, q))
		args = append(args, q)
	}
	jobs, err := reserved(reserveScript.Run(ctx, c.rdb, keys, args...), queues, token, 1, now)
	if len(jobs) == 0 {
		return nil, err
	}
	return jobs[0], err
}

// reserved decodes the reply of a reserving script asked for up to k
// jobs: the first job, and the rest of a batch (reserveLua).
func reserved(cmd *redis.Cmd, queues []string, token string, k int, now time.Time) ([]*Job, error) {
	res, err := cmd.Slice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reserve from %s: %w", strings.Join(queues, ","), err)
	}
	i, _ := res[0].(int64)
	if i < 1 || int(i) > len(queues) || len(res) < 2 {
		return nil, fmt.Errorf("reserve: unexpected reply %v", res)
	}
	batched := k > 1 && i == 1
	jobs := make([]*Job, 0, len(res)-1)
	for j, v := range res[1:] {
		payload, _ := v.(string)
		tok := token
		if batched {
			tok = token + "." + strconv.Itoa(j+1)
		}
		jobs = append(jobs, &Job{Queue: queues[i-1], Payload: []byte(payload), Token: tok, Reserved: now})
	}
	return jobs, nil
}

// AckReserve acknowledges done as a success with its timing t
// (idempotently, like Ack, terminal reply included) and reserves the next job from queues (like
// Reserve) in one round trip, the busy worker's fast path. It returns nil,
// nil when the queues are empty. On error the caller cannot tell which
// half ran: retry the Ack, then requeue the worker's in-flight lists.
func (c *Client) AckReserve(ctx context.Context, id string, done *Job, t Timing, queues []string, now time.Time) (*Job, error) {
	jobs, err := c.AckReserveBatch(ctx, id, done, t, queues, 1, now)
	if len(jobs) == 0 {
		return nil, err
	}
	return jobs[0], err
}

// AckReserveBatch is AckReserve taking up to most jobs at once when the
// first queue is deep (see reserveLua): the first is the worker's current
// job; each is acknowledged in turn with FinishAll, whose next job is the
// one after it. most < 1 counts as 1.
func (c *Client) AckReserveBatch(ctx context.Context, id string, done *Job, t Timing, queues []string, most int, now time.Time) ([]*Job, error) {
	most = max(most, 1)
	next := c.newToken()
	keys, args := c.ackReserveArgs(id, done, t, most, next, queues, now)
	return reserved(ackReserveScript.Run(ctx, c.rdb, keys, args...), queues, next, most, now)
}

// AckReserveCmd queues AckReserve's script by EVALSHA on s, a client or a
// pipeline, for callers measuring the command mix itself (the benchmark's
// ceiling), and returns the token the next job will carry if the script
// reserves one. Call LoadScripts first.
func (c *Client) AckReserveCmd(ctx context.Context, s redis.Scripter, id string, done *Job, t Timing, queues []string, now time.Time) (cmd *redis.Cmd, nextToken string) {
	next := c.newToken()
	keys, args := c.ackReserveArgs(id, done, t, 1, next, queues, now)
	return ackReserveScript.EvalSha(ctx, s, keys, args...), next
}

// LoadScripts loads every script into Redis's script cache (on a
// Cluster, every node's), so that the clients that run them (EVALSHA
// first, the body only on NOSCRIPT) never need to send a body. A pool
// master does it once for its workers (LoadScriptsAt). One SCRIPT LOAD
// per script: go-redis's Script.Load takes the digest from the reply, so
// a pipelined one would record an empty digest.
func (c *Client) LoadScripts(ctx context.Context) error {
	for _, s := range []*redis.Script{reserveScript, ackReserveScript, claimScript, ackScript, startedScript, requeueScript, unregisterScript, retryScript, enrollScript, beatScript} {
		if err := s.Load(ctx, c.rdb).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
	}
	return nil
}

// LoadScriptsAt loads every script into the script cache of the Redis at
// url (LoadScripts), with a client of its own that it closes: a pool
// master calls it once before it starts workers, so that none of them
// sends a script's body.
func LoadScriptsAt(ctx context.Context, url string) error {
	rdb, err := redisconn.Open(url, redisconn.Options{Name: "poolctl-master-scripts", PoolSize: 1, NoRetry: true, Lean: true})
	if err != nil {
		return err
	}
	defer rdb.Close()
	return New(rdb, "").LoadScripts(ctx)
}

func (c *Client) ackReserveArgs(id string, done *Job, t Timing, most int, next string, queues []string, now time.Time) ([]string, []any) {
	keys := make([]string, 9, 9+2*len(queues))
	keys[0] = c.keys.Worker(id)
	keys[1] = c.keys.InFlight(id, done.Queue)
	keys[2] = c.keys.Processed()
	keys[3] = c.keys.ProcessedBy(id)
	keys[4] = c.keys.Stats(done.Queue)
	keys[5], keys[6] = c.replyKeys(done.Reply)
	keys[7] = c.keys.InFlightIndex(id)
	keys[8] = c.keys.Reservation(id)
	st := t.statsArgs()
	msg, ttl, cid := replyArgs(done.Reply)
	args := make([]any, 0, 8+len(st)+len(queues))
	args = append(args, done.Payload, done.Token)
	args = append(args, st[:]...)
	args = append(args, msg, ttl, cid)
	args = append(args, most, next, now.UTC().Format(time.RFC3339))
	for _, q := range queues {
		keys = append(keys, c.keys.Queue(q), c.keys.InFlight(id, q))
		args = append(args, q)
	}
	return keys, args
}

// BlockingReserve waits up to timeout for a job on one queue, moving it to
// the in-flight list as it arrives (BLMOVE, preceded on the same
// connection by declaring the queue in the worker's in-flight index, so
// recovery can always find the list), then claims it (Claim). It returns
// nil, nil on timeout. The timeout may be fractional; go-redis cannot
// interrupt the wait, so close the client to abandon it. blocking's read
// timeout must exceed timeout: go-redis does not extend it for commands
// sent with Do.
//
// When the claim fails the job is returned with the error: it is safe in
// the in-flight list, and the caller must Claim it before running it.
func (c *Client) BlockingReserve(ctx context.Context, blocking redis.UniversalClient, id, queue string, timeout time.Duration, now func() time.Time) (*Job, error) {
	// Sent by hand: go-redis's BLMove rounds timeouts up to whole seconds.
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	pipe := blocking.Pipeline()
	pipe.SAdd(ctx, c.keys.InFlightIndex(id), queue)
	move := pipe.Do(ctx, "BLMOVE", c.keys.Queue(queue), c.keys.InFlight(id, queue), "LEFT", "RIGHT", secs)
	_, _ = pipe.Exec(ctx)
	v, err := move.Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wait for a job on %s: %w", queue, err)
	}
	job := &Job{Queue: queue, Payload: []byte(v), Token: c.newToken(), Reserved: now()}
	return job, c.Claim(ctx, id, job, job.Reserved)
}

// Claim records job, moved into worker id's in-flight list by a blocking
// wait, as the worker's current reservation (its token) and current job
// (Resque's record). It is idempotent: retry it until it succeeds.
func (c *Client) Claim(ctx context.Context, id string, job *Job, now time.Time) error {
	err := claimScript.Run(ctx, c.rdb,
		[]string{c.keys.Worker(id), c.keys.InFlightIndex(id), c.keys.Reservation(id)},
		job.Token, job.Queue, now.UTC().Format(time.RFC3339), job.Payload).Err()
	if err != nil {
		return fmt.Errorf("claim job from %s for %s: %w", job.Queue, id, err)
	}
	return nil
}

// rawOrString returns payload itself when it is a JSON object, else the
// payload as a JSON string, so records stay valid JSON whatever arrived.
func rawOrString(payload []byte) json.RawMessage {
	if len(payload) > 0 && payload[0] == '{' && json.Valid(payload) {
		return payload
	}
	b, _ := json.Marshal(string(payload))
	return b
}

// Ack records a successful job, and its timing t in the stats hash of its
// queue, pushes its terminal reply (job.Reply.Final) and removes it from
// the in-flight list, in one script. It is idempotent: it acts only while
// the worker's reservation still carries job's token, so retrying after a
// lost reply can neither count it (or reply) twice nor remove another job
// with the same payload.
func (c *Client) Ack(ctx context.Context, id string, job *Job, t Timing) error {
	if err := c.finish(ctx, id, job, t, nil, ""); err != nil {
		return fmt.Errorf("acknowledge job from %s: %w", job.Queue, err)
	}
	return nil
}

// finish runs ackScript: a success when rec is nil, else a failure with
// its record and the class's failed field.
func (c *Client) finish(ctx context.Context, id string, job *Job, t Timing, rec []byte, failedField string) error {
	keys, args := c.finishArgs(id, job, t, rec, failedField, nil, time.Time{})
	return ackScript.Run(ctx, c.rdb, keys, args...).Err()
}

// finishArgs are ackScript's keys and arguments; next, when not nil, is
// the job of the same batch that starts now (its token and record).
func (c *Client) finishArgs(id string, job *Job, t Timing, rec []byte, failedField string, next *Job, now time.Time) ([]string, []any) {
	if rec == nil {
		rec = []byte{}
	}
	list, attempts := c.replyKeys(job.Reply)
	msg, ttl, cid := replyArgs(job.Reply)
	st := t.statsArgs()
	nextToken, nextRecord := "", []byte{}
	if next != nil {
		nextToken, nextRecord = next.Token, workerRecord(next.Queue, now, next.Payload)
	}
	return []string{c.keys.InFlight(id, job.Queue), c.keys.Worker(id), c.keys.Reservation(id), c.keys.Processed(), c.keys.ProcessedBy(id),
			c.keys.Stats(job.Queue), c.keys.Failed(), c.keys.FailedBy(id), c.keys.FailedList(), list, attempts},
		[]any{job.Payload, job.Token, st[0], st[1], st[2], st[3], st[4], rec, failedField, msg, ttl, cid, nextToken, nextRecord}
}

// Failure describes why a job failed, for Resque's failure record.
type Failure struct {
	Exception string   // e.g. "Poolctl::JobFailed"
	Error     string   // human-readable message
	Backtrace []string // e.g. the tail of a command's stderr
}

// FailureRecord is one entry of Resque's failed list.
type FailureRecord struct {
	FailedAt  string          `json:"failed_at"`
	Payload   json.RawMessage `json:"payload"`
	Exception string          `json:"exception"`
	Error     string          `json:"error"`
	Backtrace []string        `json:"backtrace"`
	Worker    string          `json:"worker"`
	Queue     string          `json:"queue"`
	RetriedAt string          `json:"retried_at,omitempty"`
}

// Fail records a failed job (failure record, stats, its timing t),
// pushes its terminal reply and removes it from the in-flight list,
// atomically and idempotently, like Ack. As in Resque, a failed job counts as processed too.
func (c *Client) Fail(ctx context.Context, id string, job *Job, t Timing, f Failure, now time.Time) error {
	rec, err := failureRecord(id, job, f, now)
	if err != nil {
		return err
	}
	if err := c.finish(ctx, id, job, t, rec, ClassField(StatFailed, t.RecordedClass())); err != nil {
		return fmt.Errorf("record failed job from %s: %w", job.Queue, err)
	}
	return nil
}

// Requeue puts every in-flight job of worker id back at the head of its
// queue and clears its current job. It returns how many jobs moved.
func (c *Client) Requeue(ctx context.Context, id string) (int, error) {
	n, err := requeueScript.Run(ctx, c.rdb,
		[]string{c.keys.InFlightIndex(id), c.keys.Worker(id), c.keys.Reservation(id)},
		c.keys.InFlight(id, ""), c.keys.Queue("")).Int()
	if err != nil {
		return 0, fmt.Errorf("requeue in-flight jobs of %s: %w", id, err)
	}
	return n, nil
}

// Unregister requeues the worker's in-flight jobs and removes every trace
// of it: the workers set entry, its keys, heartbeat and per-worker stats.
func (c *Client) Unregister(ctx context.Context, id string) (requeued int, err error) {
	n, err := c.unregister(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("unregister worker %s: %w", id, err)
	}
	return n, nil
}

// ErrIdentityChanged says a worker id now belongs to another process than
// the one judged.
var ErrIdentityChanged = errors.New("the worker id was taken by another process meanwhile")

// UnregisterIf is Unregister, done only while the worker's recorded
// process identity is still identity ("" = none recorded); otherwise it
// changes nothing and returns ErrIdentityChanged.
func (c *Client) UnregisterIf(ctx context.Context, id, identity string) (requeued int, err error) {
	n, err := c.unregister(ctx, id, identity)
	if err == nil && n < 0 {
		err = ErrIdentityChanged
	}
	if err != nil {
		return 0, fmt.Errorf("unregister worker %s: %w", id, err)
	}
	return n, nil
}

func (c *Client) unregister(ctx context.Context, id string, identity ...string) (int, error) {
	args := []any{c.keys.InFlight(id, ""), c.keys.Queue(""), id}
	for _, i := range identity {
		args = append(args, i)
	}
	return unregisterScript.Run(ctx, c.rdb,
		[]string{c.keys.InFlightIndex(id), c.keys.Worker(id), c.keys.Reservation(id), c.keys.Workers(), c.keys.WorkerStarted(id),
			c.keys.ProcessedBy(id), c.keys.FailedBy(id), c.keys.Heartbeat(), c.keys.Identity(id)},
		args...).Int()
}
