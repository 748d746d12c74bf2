package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/poolctl/poolctl/queue"
	"github.com/redis/go-redis/v9"
)

// namespace normalises ns as package queue does ("" is "resque:", a
// trailing ':' is added), so that fleet's keys and the reply lists
// queue.PushReply writes share one prefix.
func namespace(ns string) string { return queue.NewKeys(ns).Namespace() }

// Registrar keeps one master's registry entry fresh.
type Registrar struct {
	rdb      redis.UniversalClient
	key      string
	interval time.Duration

	// Logf, when set before Run, reports a failing heartbeat write once
	// per outage, and the recovery.
	Logf func(format string, args ...any)

	mu      sync.Mutex
	entry   *Entry        // latest Update, nil before the first
	updated chan struct{} // wakes Run at the first Update

	// writeMu orders heartbeat writes and Remove, so that no heartbeat
	// lands after Remove.
	writeMu sync.Mutex
	removed bool
}

// NewRegistrar returns a registrar writing to ns's registry every interval
// (HeartbeatInterval when 0).
func NewRegistrar(rdb redis.UniversalClient, ns string, interval time.Duration) *Registrar {
	if interval <= 0 {
		interval = HeartbeatInterval
	}
	return &Registrar{
		rdb:      rdb,
		key:      RegistryKey(namespace(ns)),
		interval: interval,
		updated:  make(chan struct{}, 1),
	}
}

// Update sets the entry the next heartbeat writes (its ID defaults to
// PoolID(Host, Name)). Safe from any goroutine; never blocks.
func (r *Registrar) Update(e Entry) {
	if e.ID == "" {
		e.ID = PoolID(e.Host, e.Name)
	}
	r.mu.Lock()
	r.entry = &e
	r.mu.Unlock()
	select {
	case r.updated <- struct{}{}:
	default:
	}
}

func (r *Registrar) latest() *Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entry
}

// Run writes the latest entry (Heartbeat from the Redis server's clock)
// at once after the first Update and then every interval, until ctx ends.
// A failed write is retried at the next tick. The ticker runs on the
// monotonic clock and the heartbeat comes from the server, so a clock step
// on this host neither delays nor ages the entry.
func (r *Registrar) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-r.updated:
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		err := r.write(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			r.logf("fleet: registry heartbeat failed (retrying every %s): %v", r.interval, err)
		case err == nil && failing:
			failing = false
			r.logf("fleet: registry heartbeat written again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Registrar) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// write stores the latest entry with the server's time as its heartbeat.
func (r *Registrar) write(ctx context.Context) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	e := r.latest()
	if r.removed || e == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.interval+time.Second)
	defer cancel()
	now, err := r.rdb.Time(ctx).Result()
	if err != nil {
		return fmt.Errorf("read Redis time: %w", err)
	}
	entry := *e
	entry.Heartbeat = now.UTC()
	b, err := json.Marshal(entry)
	if err != nil {
		return fmt.Errorf("encode registry entry %s: %w", entry.ID, err)
	}
	if err := r.rdb.HSet(ctx, r.key, entry.ID, b).Err(); err != nil {
		return fmt.Errorf("write registry entry %s: %w", entry.ID, err)
	}
	return nil
}

// removeScript deletes a registry entry only if it is still the one this
// master wrote: a newer master of the same name (another pid or start
// time) keeps its entry when an old one exits late.
//
//	KEYS[1] the registry hash (RegistryKey)
//	ARGV[1] the pool id (the hash field)
//	ARGV[2] the entry's pid, in decimal
//	ARGV[3] the entry's started_at, as encoding/json writes it
//
// It returns 1 when the entry was deleted, 0 otherwise.
var removeScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if not ok or type(e) ~= 'table' then return 0 end
if tostring(e.pid) ~= ARGV[2] or e.started_at ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`)

// Remove deletes the entry (a clean exit), if it is still this master's
// (same pid and started_at), and stops further heartbeats. Removing before
// any Update does nothing.
func (r *Registrar) Remove(ctx context.Context) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.removed = true
	e := r.latest()
	if e == nil {
		return nil
	}
	started, err := json.Marshal(e.StartedAt)
	if err != nil {
		return fmt.Errorf("encode started_at of %s: %w", e.ID, err)
	}
	var startedStr string
	if err := json.Unmarshal(started, &startedStr); err != nil {
		return fmt.Errorf("encode started_at of %s: %w", e.ID, err)
	}
	err = removeScript.Run(ctx, r.rdb, []string{r.key}, e.ID, strconv.Itoa(e.PID), startedStr).Err()
	if err != nil {
		return fmt.Errorf("remove registry entry %s: %w", e.ID, err)
	}
	return nil
}

// ListOptions sets a listing's thresholds.
type ListOptions struct {
	// StaleAfter is the heartbeat age from which an entry is stale;
	// 0 = StaleAfter.
	StaleAfter time.Duration
	// PruneAfter is the heartbeat age from which an entry is deleted;
	// 0 = PruneAfter.
	PruneAfter time.Duration
}

// List returns every registered pool sorted by ID, with Age and Stale by
// the server's clock, pruning entries absent longer than PruneAfter.
func List(ctx context.Context, rdb redis.UniversalClient, ns string) ([]Listed, error) {
	return ListWith(ctx, rdb, ns, ListOptions{})
}

// pruneScript deletes a registry entry only if it has not changed since a
// listing read it (a master that came back meanwhile keeps its entry).
//
//	KEYS[1] the registry hash (RegistryKey)
//	ARGV[1] the pool id (the hash field)
//	ARGV[2] the entry's JSON as the listing read it
var pruneScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`)

// ListWith is List with the thresholds of o. Entries that do not decode
// are skipped (another tool's, or a future version's); an entry without a
// heartbeat is stale but never pruned, as its age is unknown.
func ListWith(ctx context.Context, rdb redis.UniversalClient, ns string, o ListOptions) ([]Listed, error) {
	if o.StaleAfter <= 0 {
		o.StaleAfter = StaleAfter
	}
	if o.PruneAfter <= 0 {
		o.PruneAfter = PruneAfter
	}
	key := RegistryKey(namespace(ns))
	var all *redis.MapStringStringCmd
	var tm *redis.TimeCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, key)
		tm = p.Time(ctx)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the fleet registry %s: %w", key, err)
	}
	now := tm.Val()
	out := make([]Listed, 0, len(all.Val()))
	for id, raw := range all.Val() {
		var e Entry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			continue
		}
		if e.ID == "" {
			e.ID = id
		}
		l := Listed{Entry: e, Stale: true}
		if !e.Heartbeat.IsZero() {
			l.Age = max(now.Sub(e.Heartbeat), 0)
			l.Stale = l.Age > o.StaleAfter
			if l.Age > o.PruneAfter {
				// A failed prune is not the listing's failure: the
				// next listing tries again.
				_ = pruneScript.Run(ctx, rdb, []string{key}, id, raw).Err()
				continue
			}
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
