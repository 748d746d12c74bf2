package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
)

// DefaultExecTimeout bounds one Executor call when ListenerOptions sets
// none.
const DefaultExecTimeout = 5 * time.Second

// ListenerOptions tunes a Listener.
type ListenerOptions struct {
	// PollTimeout bounds each blocking pop (so ctx is seen); 0 = 1 s.
	PollTimeout time.Duration
	// ReplyTTL is the reply lists' TTL; 0 = queue.DefaultReplyTTL.
	ReplyTTL time.Duration
	// ExecTimeout bounds one Executor call; 0 = DefaultExecTimeout. A call
	// still running then is answered as an error (it may yet take
	// effect), and the next command waits for it to return.
	ExecTimeout time.Duration
	// Logf logs what the listener does (commands served, refused,
	// expired; Redis trouble once per outage). It is called from two
	// goroutines (the list's and the channel's), so it must be safe for
	// concurrent use, as log.Printf is.
	Logf func(format string, args ...any)
}

// Listener serves a master's control list and the broadcast channel.
type Listener struct {
	rdb, blocking redis.UniversalClient
	q             *queue.Client
	id            string
	key, channel  string
	taken         string // TakenKey: commands taken, not yet answered
	// served is a command answered but still on the taken list (its
	// removal failed); owned by the list loop.
	served []byte
	exec   Executor
	o      ListenerOptions
	// execSlot holds one token while an Executor call runs: calls never
	// overlap, even one abandoned after ExecTimeout and the next.
	execSlot chan struct{}
	// silence is how long the subscription may stay silent, after a
	// PING of ours, before it is taken for dead and made anew.
	silence time.Duration
}

// NewListener returns the listener of pool id. blocking is a client of its
// own for the blocking pops.
func NewListener(rdb, blocking redis.UniversalClient, ns, id string, exec Executor, o ListenerOptions) *Listener {
	ns = namespace(ns)
	if o.PollTimeout <= 0 {
		o.PollTimeout = time.Second
	}
	if o.ExecTimeout <= 0 {
		o.ExecTimeout = DefaultExecTimeout
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return &Listener{
		rdb: rdb, blocking: blocking, q: queue.New(rdb, ns),
		id: id, key: ControlKey(ns, id), taken: TakenKey(ns, id), channel: BroadcastChannel(ns),
		exec: exec, o: o, execSlot: make(chan struct{}, 1),
		silence: defaultSilence,
	}
}

// Run serves commands until ctx ends, surviving Redis outages: the pool's
// own list one command at a time in order, the broadcast channel
// alongside. It returns nil once ctx has ended and both loops stopped;
// a command taken as ctx ended goes back to the head of the list for the
// next master, and one whose master died serving it is served again by
// the next (at least once). With a stalled Redis, the return can wait for the
// client's blocking read deadline (go-redis: the pop's timeout + 10 s).
func (l *Listener) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.broadcastLoop(ctx)
	}()
	l.listLoop(ctx)
	wg.Wait()
	return nil
}

func (l *Listener) listLoop(ctx context.Context) {
	out := outage{logf: l.o.Logf, what: "control list " + l.key}
	var b backoff
	for ctx.Err() == nil {
		raw, err := l.take(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			out.fail(err)
			b.wait(ctx)
			continue
		}
		out.ok()
		b.reset()
		if raw == nil {
			continue
		}
		if ctx.Err() != nil {
			l.giveBack(ctx, raw)
			return
		}
		l.serve(ctx, raw, "list")
		l.done(ctx, raw)
	}
}

// take returns the next command: one left on the taken list (by a
// previous master that died serving it, or by a pop whose answer was
// lost), else one moved there from the pool's list within PollTimeout;
// nil when none came.
//
// Commands go through the taken list because a blocking pop can outlive
// its client: when Redis stalls past the client's read timeout, go-redis
// drops the connection, yet the server may still serve the pop it had
// received, on a socket nobody reads. A BLPOP would lose that command; a
// BLMOVE leaves it on the taken list, where the next take finds it.
func (l *Listener) take(ctx context.Context) ([]byte, error) {
	// Never cancelled midway, so an answer the server sent is read.
	pctx := context.WithoutCancel(ctx)
	if l.served != nil {
		// Served, but its removal failed: never serve it twice for that.
		if err := l.rdb.LRem(pctx, l.taken, 1, l.served).Err(); err != nil {
			return nil, fmt.Errorf("clear a served command from %s: %w", l.taken, err)
		}
		l.served = nil
	}
	left, err := l.blocking.LIndex(pctx, l.taken, 0).Result()
	switch {
	case err == nil:
		return []byte(left), nil
	case !errors.Is(err, redis.Nil):
		return nil, fmt.Errorf("read %s: %w", l.taken, err)
	}
	var v string
	if l.o.PollTimeout < time.Second {
		// go-redis's BLMove rounds to whole seconds; Redis takes fractions.
		secs := strconv.FormatFloat(l.o.PollTimeout.Seconds(), 'f', 3, 64)
		v, err = l.blocking.Do(pctx, "blmove", l.key, l.taken, "LEFT", "RIGHT", secs).Text()
	} else {
		v, err = l.blocking.BLMove(pctx, l.key, l.taken, "LEFT", "RIGHT", l.o.PollTimeout).Result()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("take a command from %s: %w", l.key, err)
	}
	return []byte(v), nil
}

// done removes a served command from the taken list. Should that fail,
// the next take retries the removal before anything else; only a master
// that dies meanwhile leaves it to be served again by the next (at least
// once, as jobs are).
func (l *Listener) done(ctx context.Context, raw []byte) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.rdb.LRem(dctx, l.taken, 1, raw).Err(); err != nil {
		l.served = raw
	}
}

// giveBack returns a command taken as the listener stopped to the head of
// the pool's list, where the next master finds it.
func (l *Listener) giveBack(ctx context.Context, raw []byte) {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := l.rdb.TxPipelined(gctx, func(p redis.Pipeliner) error {
		p.LRem(gctx, l.taken, 1, raw)
		p.LPush(gctx, l.key, raw)
		return nil
	})
	if err != nil {
		l.o.Logf("fleet: could not return a command taken while stopping to %s (it stays on %s): %v", l.key, l.taken, err)
	}
}

// defaultSilence is Listener.silence unless a test changes it.
const defaultSilence = 15 * time.Second

func (l *Listener) broadcastLoop(ctx context.Context) {
	// go-redis remembers the channel even when this first subscribe
	// fails, and resubscribes on every reconnection (after a Redis
	// restart among them).
	ps := l.rdb.Subscribe(ctx, l.channel)
	// The wait for a message is not cancelled by ctx: closing the
	// subscription ends it, so that a stopping master does not sit out
	// PollTimeout here (it was most of a pool's stop).
	var mu sync.Mutex
	stopped := false
	resubscribe := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close()
		if !stopped {
			ps = l.rdb.Subscribe(ctx, l.channel)
		}
	}
	defer context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		_ = ps.Close()
	})()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close()
	}()
	out := outage{logf: l.o.Logf, what: "broadcast channel " + l.channel}
	var b backoff
	// A connection that died without a word (a host or a network gone)
	// only times out, which go-redis takes for a quiet channel: PING it
	// when quiet, and start over when even that goes unanswered.
	lastHeard, lastPing := time.Now(), time.Now()
	for ctx.Err() == nil {
		if time.Since(lastHeard) > l.silence {
			out.fail(fmt.Errorf("no answer to PING for %s", time.Since(lastHeard).Round(time.Second)))
			resubscribe()
			lastHeard, lastPing = time.Now(), time.Now()
		} else if time.Since(lastPing) > l.silence/3 {
			_ = ps.Ping(ctx)
			lastPing = time.Now()
		}
		msg, err := ps.ReceiveTimeout(ctx, l.o.PollTimeout)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // nothing published: the connection is kept
			}
			out.fail(err)
			b.wait(ctx)
			continue
		}
		lastHeard = time.Now()
		out.ok()
		b.reset()
		if m, ok := msg.(*redis.Message); ok {
			l.serve(ctx, []byte(m.Payload), "broadcast channel")
		}
	}
}

// serve answers one raw command on its reply list.
func (l *Listener) serve(ctx context.Context, raw []byte, src string) {
	cmd, err := DecodeCommand(raw)
	if err != nil {
		id, to, ok := replyAddress(raw)
		if !ok {
			l.o.Logf("fleet: dropped a control message from the %s that has no id or reply_to to answer: %v", src, err)
			return
		}
		l.o.Logf("fleet: refused control message %s from the %s: %v", id, src, err)
		l.reply(ctx, to, Reply{ID: id, Status: StatusError, Error: err.Error()})
		return
	}
	r := l.handle(ctx, cmd)
	r.ID, r.Pool = cmd.ID, l.id
	if r.Status == StatusOK {
		l.o.Logf("fleet: %s %s from the %s: ok", cmd.ID, cmd.what(), src)
	} else {
		l.o.Logf("fleet: %s %s from the %s: %s: %s", cmd.ID, cmd.what(), src, r.Status, r.Error)
	}
	l.reply(ctx, cmd.ReplyTo, r)
}

// what names a command for logs and errors.
func (c Command) what() string {
	if c.Operation != "" {
		return c.Operation + " " + c.Queues
	}
	return c.Verb
}

// handle checks a decoded command's expiry and permission and carries it
// out.
func (l *Listener) handle(ctx context.Context, cmd Command) Reply {
	if !cmd.ExpiresAt.IsZero() {
		if now := l.now(ctx); now.After(cmd.ExpiresAt) {
			return Reply{Status: StatusExpired, Error: fmt.Sprintf("the command expired at %s, before this pool took it (%s later)",
				cmd.ExpiresAt.UTC().Format(time.RFC3339Nano), now.Sub(cmd.ExpiresAt).Round(time.Millisecond))}
		}
	}
	mutating := cmd.Operation != "" || !ReadOnly(cmd.Verb)
	if mutating && !l.exec.RemoteControl() {
		return Reply{Status: StatusError, Error: "remote control is off for this pool: set remote_control: true in its config"}
	}
	if cmd.Verb == VerbPing {
		return Reply{Status: StatusOK, Result: json.RawMessage(`"pong"`)}
	}
	v, err := l.execute(ctx, cmd)
	if err != nil {
		return Reply{Status: StatusError, Error: err.Error()}
	}
	r := Reply{Status: StatusOK}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return Reply{Status: StatusError, Error: fmt.Sprintf("%s was carried out, but its result does not encode: %v", cmd.what(), err)}
		}
		r.Result = b
	}
	return r
}

// now is the Redis server's time (commands' expiries are set by it), or
// this host's when Redis does not answer.
func (l *Listener) now(ctx context.Context) time.Time {
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if t, err := l.rdb.Time(tctx).Result(); err == nil {
		return t
	}
	return time.Now()
}

type execResult struct {
	v   any
	err error
}

// execute calls the Executor, bounded by ExecTimeout and ctx: the
// listener never waits longer, even for an Executor that ignores its
// context (the call then finishes on its own and holds execSlot until
// it does).
func (l *Listener) execute(ctx context.Context, cmd Command) (any, error) {
	ectx, cancel := context.WithTimeout(ctx, l.o.ExecTimeout)
	select {
	case l.execSlot <- struct{}{}:
	case <-ectx.Done():
		cancel()
		return nil, fmt.Errorf("%s not carried out: the previous command is still running after %s", cmd.what(), l.o.ExecTimeout)
	}
	done := make(chan execResult, 1)
	go func() {
		defer func() { <-l.execSlot }()
		defer cancel()
		v, err := l.call(ectx, cmd)
		done <- execResult{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ectx.Done():
		select {
		case r := <-done:
			return r.v, r.err
		default:
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s interrupted: the pool's listener is stopping (it may still take effect)", cmd.what())
		}
		return nil, fmt.Errorf("%s did not finish within %s (it may still take effect)", cmd.what(), l.o.ExecTimeout)
	}
}

// call maps a command onto the Executor.
func (l *Listener) call(ctx context.Context, cmd Command) (any, error) {
	if cmd.Operation != "" {
		words, err := cmd.ConfigWords()
		if err != nil {
			return nil, err
		}
		return l.exec.Config(ctx, words)
	}
	switch cmd.Verb {
	case VerbStatus:
		return l.exec.Status(ctx)
	case VerbConfig:
		return l.exec.Config(ctx, cmd.Args)
	case VerbReload:
		return l.exec.Reload(ctx)
	case VerbPause:
		return l.exec.Pause(ctx, cmd.Args)
	case VerbResume:
		return l.exec.Resume(ctx, cmd.Args)
	case VerbStop:
		return l.exec.Stop(ctx)
	case VerbAutoscale:
		return l.exec.Autoscale(ctx, cmd.Args[0] == "on", cmd.Args[1:])
	}
	return nil, fmt.Errorf("verb %q has no action", cmd.Verb)
}

// reply pushes r to the reply list, even as ctx ends (a "stop" is
// answered while the master stops).
func (l *Listener) reply(ctx context.Context, replyTo string, r Reply) {
	b, err := json.Marshal(r)
	if err != nil {
		l.o.Logf("fleet: could not encode the reply to %s: %v", r.ID, err)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.q.PushReply(rctx, replyTo, l.o.ReplyTTL, b); err != nil {
		l.o.Logf("fleet: could not answer %s: %v", r.ID, err)
	}
}

// outage logs a loop's Redis trouble once per outage, and its end.
type outage struct {
	logf func(format string, args ...any)
	what string
	down bool
}

func (o *outage) fail(err error) {
	if !o.down {
		o.down = true
		o.logf("fleet: %s: Redis unavailable (%v); retrying", o.what, err)
	}
}

func (o *outage) ok() {
	if o.down {
		o.down = false
		o.logf("fleet: %s: Redis available again", o.what)
	}
}

// backoff spaces retries: 100 ms, doubling up to 2 s.
type backoff struct{ d time.Duration }

func (b *backoff) reset() { b.d = 0 }

func (b *backoff) wait(ctx context.Context) {
	if b.d == 0 {
		b.d = 100 * time.Millisecond
	} else {
		b.d = min(2*b.d, 2*time.Second)
	}
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
