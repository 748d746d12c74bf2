package queue

import (
	"context"
	"fmt"
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
