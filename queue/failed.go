package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// FailedRecords returns up to count failure records starting at index
// start (0 = oldest). Records that are not valid JSON are skipped.
func (c *Client) FailedRecords(ctx context.Context, start, count int64) ([]FailureRecord, error) {
	raw, err := c.rdb.LRange(ctx, c.keys.FailedList(), start, start+count-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read failed list: %w", err)
	}
	out := make([]FailureRecord, 0, len(raw))
	for _, r := range raw {
		var rec FailureRecord
		if json.Unmarshal([]byte(r), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out, nil
}

// ErrNoSuchFailure is returned when a failure index is out of range.
var ErrNoSuchFailure = errors.New("no failure record at that index")

// RetryFailed puts the payload of failure record index back on its queue
// (at the tail, like a new job) and removes the record, atomically and
// only if the record at index is still the one read.
func (c *Client) RetryFailed(ctx context.Context, index int64) error {
	raw, err := c.rdb.LIndex(ctx, c.keys.FailedList(), index).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("retry %d: %w", index, ErrNoSuchFailure)
	}
	if err != nil {
		return fmt.Errorf("retry %d: %w", index, err)
	}
	var rec FailureRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return fmt.Errorf("retry %d: record is not JSON: %w", index, err)
	}
	if rec.Queue == "" {
		return fmt.Errorf("retry %d: record has no queue", index)
	}
	payload := []byte(rec.Payload)
	var s string
	if json.Unmarshal(rec.Payload, &s) == nil {
		payload = []byte(s) // the payload was stored as a string (it was not an object)
	}
	moved, err := retryScript.Run(ctx, c.rdb,
		[]string{c.keys.FailedList(), c.keys.Queues(), c.keys.Queue(rec.Queue)},
		index, raw, payload, rec.Queue).Int()
	if err != nil {
		return fmt.Errorf("retry %d: %w", index, err)
	}
	if moved == 0 {
		return fmt.Errorf("retry %d: the failed list changed meanwhile; list it again", index)
	}
	return nil
}

// retryScript moves a failure record's payload back to its queue, only if
// the record at the index is still the one the caller read.
//
// KEYS: failed list, queues set, queue list
// ARGV: index, record, payload, queue name
var retryScript = redis.NewScript(`
if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local tomb = 'poolctl-retried:' .. ARGV[1] .. ':' .. redis.call('TIME')[1]
redis.call('LSET', KEYS[1], ARGV[1], tomb)
redis.call('LREM', KEYS[1], 1, tomb)
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
`)

// ClearFailed deletes every failure record and returns how many there were.
func (c *Client) ClearFailed(ctx context.Context) (int64, error) {
	pipe := c.rdb.TxPipeline()
	n := pipe.LLen(ctx, c.keys.FailedList())
	pipe.Del(ctx, c.keys.FailedList())
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("clear failed list: %w", err)
	}
	return n.Val(), nil
}
