package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Idle workers wait on notify lists instead of polling every queue: each
// of poolctl's producers (Enqueue, RetryFailed, every requeue) pushes a
// token to the queue's own notify list (resque:poolctl:notify:QUEUE) and to
// the namespace's any-queue list (resque:poolctl:notify-any), in the same
// transaction or script as the job itself, so a token never precedes or
// lags its job. A worker whose queue list contains "*" listens to every
// queue, so it waits on the any-queue list alone (one key, whatever the
// number of queues); any other worker waits on its queues' own lists, so
// a `foo` worker never swallows a `bar` token. A token wakes exactly one
// waiter (a list pop), never the whole pool. Both lists are trimmed to
// NotifyCap tokens: tokens only decide how many idle workers wake at
// once; the jobs themselves are found by the workers' reserves.
//
// Foreign producers (Resque.push) push no token: idle workers also poll,
// one of them at a time per queue list (TryIdlePoll), so their jobs are
// picked up within about a second.

// NotifyCap bounds each notify list: at most this many idle workers wake
// for a burst at once (each worker woken that takes a job passes a token
// on while its queue holds more: Renotify).
const NotifyCap = 64

// notifyLua defines notify(qkey, anykey): push one token to a queue's
// notify list and to the any-queue list, each trimmed to NotifyCap.
var notifyLua = `
local function notify(qkey, anykey)
  redis.call('RPUSH', qkey, '1')
  redis.call('LTRIM', qkey, -` + strconv.Itoa(NotifyCap) + `, -1)
  redis.call('RPUSH', anykey, '1')
  redis.call('LTRIM', anykey, -` + strconv.Itoa(NotifyCap) + `, -1)
end
`

// notifyPipe queues the tokens for n jobs pushed to queue on pipe (a
// MULTI, so they land with the jobs).
func (c *Client) notifyPipe(ctx context.Context, pipe redis.Pipeliner, queue string, n int) {
	tokens := make([]any, min(n, NotifyCap))
	for i := range tokens {
		tokens[i] = "1"
	}
	for _, key := range []string{c.keys.NotifyQueue(queue), c.keys.NotifyAny()} {
		pipe.RPush(ctx, key, tokens...)
		pipe.LTrim(ctx, key, -NotifyCap, -1)
	}
}

// NotifyKeys returns the notify lists an idle worker with queue list
// patterns waits on, given the list's current expansion: the any-queue
// list when the list contains "*", else the expanded queues' own lists.
func (c *Client) NotifyKeys(patterns, expanded []string) []string {
	for _, p := range patterns {
		if p == "*" {
			return []string{c.keys.NotifyAny()}
		}
	}
	keys := make([]string, len(expanded))
	for i, q := range expanded {
		keys[i] = c.keys.NotifyQueue(q)
	}
	return keys
}

// WaitNotify pops one token from the first of keys that has one, waiting
// up to timeout (BLPOP, fractional seconds) on blocking. It returns the
// key the token came from, or "" on timeout. As with BlockingReserve,
// close blocking to abandon the wait, and give it a read timeout longer
// than timeout.
func (c *Client) WaitNotify(ctx context.Context, blocking redis.UniversalClient, keys []string, timeout time.Duration) (string, error) {
	args := make([]any, 0, len(keys)+2)
	args = append(args, "BLPOP")
	for _, k := range keys {
		args = append(args, k)
	}
	// Sent by hand: go-redis rounds blocking timeouts up to whole seconds.
	args = append(args, strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64))
	res, err := blocking.Do(ctx, args...).StringSlice()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("wait for a job notification: %w", err)
	}
	if len(res) != 2 {
		return "", fmt.Errorf("wait for a job notification: unexpected reply %q", res)
	}
	return res[0], nil
}

// renotifyScript passes a token on: it pushes one to a notify list only
// while the queue still holds jobs, so that a burst wakes further idle
// workers one by one without leaving stale tokens behind.
//
// KEYS[1] queue list, KEYS[2] notify list
// Returns 1 when a token was pushed.
var renotifyScript = redis.NewScript(`
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], -` + strconv.Itoa(NotifyCap) + `, -1)
return 1
`)

// Renotify pushes a token to notifyKey when queue still holds jobs. An
// idle worker calls it after it woke and took a job (more may wait behind
// it), or when it consumed a token it will not act on (it was paused or
// told to stop meanwhile), so that the token is not lost.
func (c *Client) Renotify(ctx context.Context, queue, notifyKey string) error {
	if err := renotifyScript.Run(ctx, c.rdb, []string{c.keys.Queue(queue), notifyKey}).Err(); err != nil {
		return fmt.Errorf("notify %s: %w", queue, err)
	}
	return nil
}

// RenotifyAny pushes a token to notifyKey, unconditionally: for a token
// from the any-queue list, the queue it stood for is unknown.
func (c *Client) RenotifyAny(ctx context.Context, notifyKey string) error {
	pipe := c.rdb.TxPipeline()
	pipe.RPush(ctx, notifyKey, "1")
	pipe.LTrim(ctx, notifyKey, -NotifyCap, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// TryIdlePoll reports whether the caller won the right to poll every
// queue of queueList now, for jobs foreign producers pushed without a
// token: at most one idle worker per queue list does so per every (SET NX
// PX), however many wait, so polling costs Redis one reserve per every
// rather than one per worker.
func (c *Client) TryIdlePoll(ctx context.Context, queueList []string, every time.Duration) (bool, error) {
	ok, err := c.rdb.SetNX(ctx, c.keys.IdlePoll(strings.Join(queueList, ",")), "1", every).Result()
	if err != nil {
		return false, fmt.Errorf("idle poll lock: %w", err)
	}
	return ok, nil
}

// WakeWorker ends worker id's idle wait on its notify lists at once (it
// waits on WorkerWake(id) too): a control change such as a pause must
// not wait for the wait's timeout. The token expires should no wait
// consume it.
func (c *Client) WakeWorker(ctx context.Context, id string) error {
	key := c.keys.WorkerWake(id)
	pipe := c.rdb.TxPipeline()
	pipe.RPush(ctx, key, "1")
	pipe.PExpire(ctx, key, time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("wake worker %s: %w", id, err)
	}
	return nil
}
