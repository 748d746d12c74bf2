package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
)

// ErrNoReply is wrapped by Send when no reply came within its timeout.
var ErrNoReply = errors.New("no reply")

// Client sends control messages.
type Client struct {
	rdb redis.UniversalClient
	ns  string
	q   *queue.Client
}

// NewClient returns a client for namespace ns.
func NewClient(rdb redis.UniversalClient, ns string) *Client {
	ns = namespace(ns)
	return &Client{rdb: rdb, ns: ns, q: queue.New(rdb, ns)}
}

// Send pushes cmd to pool target's control list and waits up to timeout
// for its reply. It fills in an empty ID, ReplyTo (queue.ReplyPrefix +
// random) and, when zero, ExpiresAt (now + timeout, by the Redis server's
// clock, which the listener judges it by). No reply in time is an error
// wrapping ErrNoReply; the command then stays in the list until it
// expires, for a master that is restarting. A reply of status error or
// expired is returned as a Reply, not as an error.
func (c *Client) Send(ctx context.Context, target string, cmd Command, timeout time.Duration) (Reply, error) {
	if target == "" {
		return Reply{}, errors.New("send a control message: no target pool (HOST/NAME)")
	}
	cmd, raw, err := c.prepare(ctx, cmd, timeout)
	if err != nil {
		return Reply{}, err
	}
	replyKey := c.q.Keys().ReplyKey(cmd.ReplyTo)
	defer c.drop(ctx, replyKey)
	key := ControlKey(c.ns, target)
	if err := c.rdb.RPush(ctx, key, raw).Err(); err != nil {
		return Reply{}, fmt.Errorf("send %s to %s: %w", cmd.what(), target, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			stays := "until it expires at " + cmd.ExpiresAt.UTC().Format(time.RFC3339)
			if cmd.ExpiresAt.IsZero() {
				stays = "until a master takes it (it never expires)"
			}
			return Reply{}, fmt.Errorf("%s did not answer %s (id %s) within %s; the command stays queued on %s %s: %w",
				target, cmd.what(), cmd.ID, timeout, key, stays, ErrNoReply)
		}
		r, ok, err := c.popReply(ctx, replyKey, remaining)
		switch {
		case err != nil:
			return Reply{}, fmt.Errorf("wait for %s's reply to %s: %w", target, cmd.what(), err)
		case ok && r.ID == cmd.ID:
			return r, nil
		}
	}
}

// Broadcast publishes cmd to every pool and returns the replies received
// within timeout (it returns sooner once every pool of the registry that
// is not stale has answered), one per pool, sorted by pool.
func (c *Client) Broadcast(ctx context.Context, cmd Command, timeout time.Duration) ([]Reply, error) {
	return c.BroadcastWith(ctx, cmd, timeout, ListOptions{})
}

// BroadcastWith is Broadcast judging which registered pools it waits for
// (those not stale) by o's thresholds.
func (c *Client) BroadcastWith(ctx context.Context, cmd Command, timeout time.Duration, o ListOptions) ([]Reply, error) {
	cmd, raw, err := c.prepare(ctx, cmd, timeout)
	if err != nil {
		return nil, err
	}
	pools, err := ListWith(ctx, c.rdb, c.ns, o)
	if err != nil {
		return nil, err
	}
	expected := make(map[string]bool)
	for _, p := range pools {
		if !p.Stale {
			expected[p.ID] = true
		}
	}
	replyKey := c.q.Keys().ReplyKey(cmd.ReplyTo)
	defer c.drop(ctx, replyKey)
	start := time.Now()
	deadline := start.Add(timeout)
	if err := c.rdb.Publish(ctx, BroadcastChannel(c.ns), raw).Err(); err != nil {
		return nil, fmt.Errorf("broadcast %s: %w", cmd.what(), err)
	}
	var replies []Reply
	seen := make(map[string]bool)
	missing := len(expected)
	for remaining := time.Until(deadline); remaining > 0; remaining = time.Until(deadline) {
		r, ok, err := c.popReply(ctx, replyKey, remaining)
		if err != nil {
			return sortReplies(replies), fmt.Errorf("collect replies to %s: %w", cmd.what(), err)
		}
		if !ok || r.ID != cmd.ID || seen[r.Pool] {
			continue
		}
		seen[r.Pool] = true
		r.Elapsed = time.Since(start)
		replies = append(replies, r)
		if expected[r.Pool] {
			missing--
		}
		if len(expected) > 0 && missing == 0 {
			break
		}
	}
	return sortReplies(replies), nil
}

func sortReplies(rs []Reply) []Reply {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Pool < rs[j].Pool })
	return rs
}

// prepare fills in cmd's id, reply list and expiry and checks it as a
// listener will, so that a bad command is refused here, before it is sent.
func (c *Client) prepare(ctx context.Context, cmd Command, timeout time.Duration) (Command, []byte, error) {
	if timeout <= 0 {
		return cmd, nil, fmt.Errorf("send %s: the timeout must be positive, got %s", cmd.what(), timeout)
	}
	if cmd.ID == "" {
		cmd.ID = randomID()
	}
	if cmd.ReplyTo == "" {
		cmd.ReplyTo = queue.ReplyPrefix + randomID()
	}
	if cmd.ExpiresAt.IsZero() {
		now, err := c.q.ServerTime(ctx)
		if err != nil {
			return cmd, nil, fmt.Errorf("send %s: %w", cmd.what(), err)
		}
		cmd.ExpiresAt = now.Add(timeout).UTC()
	}
	raw, err := json.Marshal(cmd)
	if err != nil {
		return cmd, nil, fmt.Errorf("encode %s: %w", cmd.what(), err)
	}
	if _, err := DecodeCommand(raw); err != nil {
		return cmd, nil, fmt.Errorf("refusing to send it: %w", err)
	}
	return cmd, raw, nil
}

// popReply waits up to timeout (at most a second per call, so that ctx is
// seen) for a reply on key; ok is false when none came or it does not
// decode.
func (c *Client) popReply(ctx context.Context, key string, timeout time.Duration) (r Reply, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return Reply{}, false, err
	}
	var vals []string
	if timeout < time.Second {
		// go-redis's BLPop rounds to whole seconds; Redis takes fractions.
		secs := strconv.FormatFloat(max(timeout.Seconds(), 0.001), 'f', 3, 64)
		vals, err = c.rdb.Do(ctx, "blpop", key, secs).StringSlice()
	} else {
		vals, err = c.rdb.BLPop(ctx, time.Second, key).Result()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return Reply{}, false, nil
	case err != nil:
		return Reply{}, false, err
	case len(vals) != 2 || json.Unmarshal([]byte(vals[1]), &r) != nil:
		return Reply{}, false, nil
	}
	return r, true, nil
}

// drop deletes a reply list once its requester stops reading it.
func (c *Client) drop(ctx context.Context, key string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = c.rdb.Del(dctx, key).Err()
}

// randomID is 128 random bits in hex.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}
