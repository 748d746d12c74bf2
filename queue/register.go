package queue

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// heartbeatLua defines iso8601(secs): Redis's clock, whole seconds since
// the epoch, as Resque's heartbeat value in UTC (heartbeatLayout, e.g.
// "2026-11-30T08:58:14+00:00"). Redis's Lua has no os.date: the civil
// date comes from the day count by H. Hinnant's days-to-civil algorithm.
const heartbeatLua = `
local function iso8601(secs)
  local days = math.floor(secs / 86400)
  local s = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d+00:00', y, m, d,
    math.floor(s / 3600), math.floor(s % 3600 / 60), s % 60)
end
`

// registerLua records a worker the way Resque does, plus its process
// identity, with a heartbeat by Redis's clock (TIME): what Heartbeat
// writes, in one round trip instead of TIME and then a transaction.
// Keys and arguments start after the first K keys and A arguments, which
// belong to the script registerLua is part of:
//
// KEYS[K+1] workers set, KEYS[K+2] started key, KEYS[K+3] heartbeat
// hash, KEYS[K+4] process identity key
// ARGV[A+1] worker id, ARGV[A+2] started (Resque's layout), ARGV[A+3]
// identity ("" = none: the key is left alone)
const registerLua = heartbeatLua + `
local now = redis.call('TIME')
redis.call('SADD', KEYS[K+1], ARGV[A+1])
redis.call('SET', KEYS[K+2], ARGV[A+2])
redis.call('HSET', KEYS[K+3], ARGV[A+1], iso8601(tonumber(now[1])))
if ARGV[A+3] ~= '' then redis.call('SET', KEYS[K+4], ARGV[A+3]) end
`

// beatScript re-asserts a registration (registerLua alone): Register and
// Beat.
//
// KEYS[1] workers set, KEYS[2] started key, KEYS[3] heartbeat hash,
// KEYS[4] process identity key
// ARGV[1] worker id, ARGV[2] started, ARGV[3] identity
var beatScript = redis.NewScript("local K, A = 0, 0\n" + registerLua + "return 1\n")

// enrollScript starts a worker: it puts back whatever a dead predecessor
// with the same id left in flight (requeueLua) before it registers the
// worker (registerLua), so the new worker never takes those jobs for its
// own, and returns how many jobs went back.
//
// KEYS[1] in-flight index, KEYS[2] worker key, KEYS[3] reservation key,
// KEYS[4..7] as beatScript's KEYS[1..4]
// ARGV[1] key prefix of in-flight lists, ARGV[2] key prefix of queues,
// ARGV[3..5] as beatScript's ARGV[1..3]
var enrollScript = redis.NewScript(requeueLua + "local K, A = 3, 2\n" + registerLua + "return n\n")

// registration returns registerLua's keys and arguments for r.
func (c *Client) registration(r Registration) ([]string, []any) {
	return []string{c.keys.Workers(), c.keys.WorkerStarted(r.ID), c.keys.Heartbeat(), c.keys.Identity(r.ID)},
		[]any{r.ID, r.Started.Format(startedLayout), r.Identity}
}

// Enroll starts worker r in one round trip: it requeues every job a dead
// worker with the same id (a reused pid, the same queues) left in flight,
// then registers r as Register does. Call it before the worker holds
// anything. It returns how many jobs went back to their queues.
func (c *Client) Enroll(ctx context.Context, r Registration) (requeued int, err error) {
	rk, ra := c.registration(r)
	keys := append([]string{c.keys.InFlightIndex(r.ID), c.keys.Worker(r.ID), c.keys.Reservation(r.ID)}, rk...)
	args := append([]any{c.keys.InFlight(r.ID, ""), c.keys.Queue("")}, ra...)
	n, err := enrollScript.Run(ctx, c.rdb, keys, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("register worker %s: %w", r.ID, err)
	}
	return n, nil
}

// Beat is a worker's heartbeat: it refreshes the heartbeat by Redis's
// clock and re-asserts the rest of the registration, in one round trip,
// so a worker whose registration was lost (Redis restarted empty, or
// pruned by another tool) is back within one heartbeat.
func (c *Client) Beat(ctx context.Context, r Registration) error {
	keys, args := c.registration(r)
	if err := beatScript.Run(ctx, c.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("heartbeat %s: %w", r.ID, err)
	}
	return nil
}
