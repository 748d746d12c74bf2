package queue

import "github.com/redis/go-redis/v9"

// reserveLua is the body shared by reserveScript and ackReserveScript: it
// takes the first job from the queues in priority order, moves it to the
// worker's in-flight list for that queue and records it as the worker's
// current job, all in one atomic step. The payload is embedded raw in the
// worker record when it is a JSON object, so Resque tools see Resque's
// shape; anything else is stored as a JSON string.
//
// KEYS[1]        worker key (resque:worker:ID)
// KEYS[B+2i-1]   queue list i; KEYS[B+2i] its in-flight list
// ARGV[A]        run_at (ISO-8601); ARGV[A+i] queue name i
//
// Returns {i, payload}, or deletes the worker record and returns false
// when every queue is empty.
const reserveLua = `
for i = 1, (#KEYS - B) / 2 do
  local v = redis.call('LMOVE', KEYS[B+2*i-1], KEYS[B+2*i], 'LEFT', 'RIGHT')
  if v then
    local rec
    local ok, decoded = pcall(cjson.decode, v)
    if ok and type(decoded) == 'table' and string.sub(v, 1, 1) == '{' then
      rec = '{"queue":' .. cjson.encode(ARGV[A+i]) .. ',"run_at":' .. cjson.encode(ARGV[A]) .. ',"payload":' .. v .. '}'
    else
      rec = cjson.encode({queue = ARGV[A+i], run_at = ARGV[A], payload = v})
    end
    redis.call('SET', KEYS[1], rec)
    return {i, v}
  end
end
redis.call('DEL', KEYS[1])
return false
`

// reserveScript: reserveLua alone (KEYS from 2, ARGV from 1).
var reserveScript = redis.NewScript("local B, A = 1, 1\n" + reserveLua)

// ackReserveScript acknowledges a successful job and reserves the next
// one in a single round trip: the ack half is ackScript's (idempotent),
// the reserve half is reserveLua.
//
// KEYS[2] the done job's in-flight list, KEYS[3] total processed,
// KEYS[4] worker processed, then the queue pairs from KEYS[5]
// ARGV[1] the done job's payload, ARGV[2] run_at, ARGV[2+i] queue names
var ackReserveScript = redis.NewScript(`
if redis.call('LREM', KEYS[2], -1, ARGV[1]) == 1 then
  redis.call('INCR', KEYS[3])
  redis.call('INCR', KEYS[4])
end
local B, A = 4, 2
` + reserveLua)

// requeueLua puts every in-flight job of a worker back at the head of its
// queue, in the order they were taken, and forgets the in-flight lists
// and the worker's current job.
//
// KEYS[1] in-flight index; KEYS[2] worker key
// ARGV[1] key prefix of in-flight lists ("resque:poolctl:inflight:ID:")
// ARGV[2] key prefix of queues ("resque:queue:")
const requeueLua = `
local n = 0
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local src = ARGV[1] .. q
  local dst = ARGV[2] .. q
  while redis.call('LMOVE', src, dst, 'RIGHT', 'LEFT') do
    n = n + 1
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
`

// requeueScript runs requeueLua and returns the number of jobs requeued.
var requeueScript = redis.NewScript(requeueLua + "return n\n")

// unregisterScript requeues like requeueScript, then removes every trace
// of the worker, in one round trip (a pool stopping a hundred workers
// pays it a hundred times).
//
// KEYS[3] workers set, KEYS[4] started key, KEYS[5] processed:ID,
// KEYS[6] failed:ID, KEYS[7] heartbeat hash; ARGV[3] the worker id
var unregisterScript = redis.NewScript(requeueLua + `
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
redis.call('HDEL', KEYS[7], ARGV[3])
return n
`)

// ackScript finishes a job: if it is still in the worker's in-flight list
// it is removed, the worker's current-job record is deleted and the two
// counters are incremented; with a record (ARGV[2]) it is also appended
// to the failed list. A job no longer in flight (a retried call whose
// first reply was lost, or a job requeued meanwhile) changes nothing.
//
// KEYS: in-flight list, worker key, total counter, worker counter[, failed list]
// ARGV: payload[, failure record]
//
// Returns 1 when the job was finished by this call, else 0.
var ackScript = redis.NewScript(`
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('INCR', KEYS[4])
if ARGV[2] then redis.call('RPUSH', KEYS[5], ARGV[2]) end
return 1
`)
