package fleet

// This file declares the API the rest of poolctl codes against while its
// implementation is written (registry.go, control.go, listener.go,
// client.go replace it, and this file is then deleted).

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

var errTODO = errors.New("fleet: not implemented yet")

// ErrNoReply is wrapped by Send when no reply came within its timeout.
var ErrNoReply = errors.New("no reply")

// Client sends control messages.
type Client struct{}

// NewClient returns a client for namespace ns.
func NewClient(rdb redis.UniversalClient, ns string) *Client { return &Client{} }

// Send pushes cmd to pool target's control list and waits up to timeout
// for its reply. It fills in an empty ID, ReplyTo (queue.ReplyPrefix +
// random) and, when zero, ExpiresAt (now + timeout). No reply in time is
// an error wrapping ErrNoReply.
func (c *Client) Send(ctx context.Context, target string, cmd Command, timeout time.Duration) (Reply, error) {
	return Reply{}, errTODO
}

// Broadcast publishes cmd to every pool and returns the replies received
// within timeout (it returns sooner once every pool of the registry that
// is not stale has answered).
func (c *Client) Broadcast(ctx context.Context, cmd Command, timeout time.Duration) ([]Reply, error) {
	return nil, errTODO
}
