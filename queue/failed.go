package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// RetryMode says what retrying a failure does with its record.
type RetryMode int

const (
	// RetryKeep keeps the record and sets its retried_at, as Resque's
	// Failure.requeue does (resque-web shows it as retried).
	RetryKeep RetryMode = iota
	// RetryRemove removes the record, as Resque's requeue_and_remove;
	// later records move down one index.
	RetryRemove
)

// retriedAtLayout is Resque's retried_at format.
const retriedAtLayout = "2006/01/02 15:04:05"

// RetryFailed puts the payload of failure record index back on its queue
// (at the tail, like a new job), keeping or removing the record as mode
// says, atomically and only if the record at index is still the one read.
func (c *Client) RetryFailed(ctx context.Context, index int64, mode RetryMode, now time.Time) error {
	raw, err := c.rdb.LIndex(ctx, c.keys.FailedList(), index).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("retry %d: %w", index, ErrNoSuchFailure)
	}
	if err != nil {
		return fmt.Errorf("retry %d: %w", index, err)
	}
	if err := c.retryRecord(ctx, index, raw, mode, now); err != nil {
		return fmt.Errorf("retry %d: %w", index, err)
	}
	return nil
}

// ErrFailedListChanged says a record was not at its index any more.
var ErrFailedListChanged = errors.New("the failed list changed meanwhile; list it again")

// RetryAllFailed retries exactly the failure records present when it
// starts, none that failures appended meanwhile add (retrying them would
// retry the failures it just caused, forever). It returns how many it
// retried; records that changed under it are skipped and reported by an
// error wrapping ErrFailedListChanged after the others are done.
func (c *Client) RetryAllFailed(ctx context.Context, mode RetryMode, now time.Time) (int, error) {
	snapshot, err := c.rdb.LRange(ctx, c.keys.FailedList(), 0, -1).Result()
	if err != nil {
		return 0, fmt.Errorf("read failed list: %w", err)
	}
	retried, skipped := 0, 0
	for k := range snapshot {
		i := k
		if mode == RetryRemove {
			// Last first: removing a record moves only those after it,
			// which are done already.
			i = len(snapshot) - 1 - k
		}
		err := c.retryRecord(ctx, int64(i), snapshot[i], mode, now)
		switch {
		case errors.Is(err, ErrFailedListChanged):
			skipped++
		case err != nil:
			return retried, fmt.Errorf("retry %d: %w", i, err)
		default:
			retried++
		}
	}
	if skipped > 0 {
		return retried, fmt.Errorf("%d record(s) not retried: %w", skipped, ErrFailedListChanged)
	}
	return retried, nil
}

// retryRecord requeues the payload of raw, the record read at index.
func (c *Client) retryRecord(ctx context.Context, index int64, raw string, mode RetryMode, now time.Time) error {
	var rec FailureRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return fmt.Errorf("record is not JSON: %w", err)
	}
	if rec.Queue == "" {
		return errors.New("record has no queue")
	}
	payload := []byte(rec.Payload)
	var s string
	if json.Unmarshal(rec.Payload, &s) == nil {
		payload = []byte(s) // the payload was stored as a string (it was not an object)
	}
	replacement := ""
	if mode == RetryKeep {
		// Set retried_at in the record as it is, keeping fields poolctl
		// does not know (Ruby's failure backends may add some).
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &fields); err != nil {
			return fmt.Errorf("record is not a JSON object: %w", err)
		}
		at, _ := json.Marshal(now.UTC().Format(retriedAtLayout))
		fields["retried_at"] = at
		b, err := json.Marshal(fields)
		if err != nil {
			return fmt.Errorf("encode record: %w", err)
		}
		replacement = string(b)
	}
	moved, err := retryScript.Run(ctx, c.rdb,
		[]string{c.keys.FailedList(), c.keys.Queues(), c.keys.Queue(rec.Queue), c.keys.NotifyQueue(rec.Queue), c.keys.NotifyAny()},
		index, raw, payload, rec.Queue, replacement).Int()
	if err != nil {
		return err
	}
	if moved == 0 {
		return ErrFailedListChanged
	}
	return nil
}

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
