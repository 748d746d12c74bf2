package queue

import "github.com/redis/go-redis/v9"

// Every in-flight job carries a reservation token: a string the worker
// makes up for each reservation (unique per client: a random prefix and a
// counter) and that the reserving script stores in the worker's
// reservation key (resque:poolctl:reservation:ID). Acknowledging requires
// the token to match, so a retried acknowledgement whose first attempt did
// run (its reply lost in a stall) can never remove the next job, even when
// that job's payload is byte-identical. See docs/reliability.md.

// reserveLua is the body shared by reserveScript and ackReserveScript: it
// takes the first job from the queues in priority order, moves it to the
// worker's in-flight list for that queue, declares that queue in the
// worker's in-flight index (so recovery finds the list even after Redis
// lost the index), stores the reservation token and records the job as
// the worker's current job, all in one atomic step. The payload is
// embedded raw in the worker record only when it is strict JSON (an
// object; see strictJSONLua), so Resque's Ruby tools can decode it;
// anything else is stored as a JSON string.
//
// With K > 1 it reserves a batch: when the job came from the first queue
// (the worker's highest priority, so no job of a higher queue can wait
// behind the batch for more than the running job), up to K-1 more jobs
// follow it into the in-flight list, one for each 8 still queued (a
// shallow queue is left to the other workers). Job j of a batch carries
// the token TOKEN.j; the reservation holds the token of the job to be
// acknowledged next (TOKEN.1 now), and each acknowledgement moves it on
// (ackScript's next token), so every job stays individually
// acknowledgeable exactly once, byte-identical payloads included.
//
// KEYS[1]        worker key (resque:worker:ID)
// KEYS[B-1]      in-flight index; KEYS[B] reservation key
// KEYS[B+2i-1]   queue list i; KEYS[B+2i] its in-flight list
// ARGV[A-1]      the new reservation token
// ARGV[A]        run_at (ISO-8601); ARGV[A+i] queue name i
// K              the most jobs to take (a local set by the caller)
//
// Returns {i, payload, [payload 2, …]}, or deletes the worker record and
// the reservation and returns false when every queue is empty.
const reserveLua = `
for i = 1, (#KEYS - B) / 2 do
  local v = redis.call('LMOVE', KEYS[B+2*i-1], KEYS[B+2*i], 'LEFT', 'RIGHT')
  if v then
    redis.call('SADD', KEYS[B-1], ARGV[A+i])
    local out, tok = {i, v}, ARGV[A-1]
    if i == 1 and K > 1 then
      tok = tok .. '.1'
      local more = math.min(K - 1, math.floor(redis.call('LLEN', KEYS[B+1]) / 8))
      for _ = 1, more do
        local w = redis.call('LMOVE', KEYS[B+1], KEYS[B+2], 'LEFT', 'RIGHT')
        if not w then break end
        out[#out + 1] = w
      end
    end
    redis.call('SET', KEYS[B], tok)
    local rec
    if strict_object(v) then
      rec = '{"queue":' .. cjson.encode(ARGV[A+i]) .. ',"run_at":' .. cjson.encode(ARGV[A]) .. ',"payload":' .. v .. '}'
    else
      rec = cjson.encode({queue = ARGV[A+i], run_at = ARGV[A], payload = v})
    end
    redis.call('SET', KEYS[1], rec)
    return out
  end
end
redis.call('DEL', KEYS[1], KEYS[B])
return false
`

// strictJSONLua defines strict_object(s): true when s is a JSON object
// that any JSON parser accepts. Redis's cjson also accepts NaN, Infinity,
// hex and other strtod numbers, which Ruby's JSON rejects; those payloads
// must not be embedded raw in Resque's records. The check strips string
// literals (refusing raw control characters in them), replaces the
// literals true/false/null, and then allows only structure, whitespace
// and numbers of JSON's own grammar.
const strictJSONLua = `
local function strict_object(s)
  if string.sub(s, 1, 1) ~= '{' then return false end
  local ok, decoded = pcall(cjson.decode, s)
  if not ok or type(decoded) ~= 'table' then return false end
  local t = string.gsub(s, '\\.', '')
  local raw = false
  t = string.gsub(t, '"[^"]*"', function(str)
    if string.find(str, '%c') then raw = true end
    return '0'
  end)
  if raw then return false end
  t = string.gsub(t, '%a+', function(w)
    if w == 'true' or w == 'false' or w == 'null' then return '0' end
    if w == 'e' or w == 'E' then return w end
    return '!'
  end)
  if string.find(t, '[^%s%d%.eE%+%-{}%[%]:,]') then return false end
  for num in string.gmatch(t, '[%d%.eE%+%-]+') do
    if not (string.match(num, '^%-?0$') or string.match(num, '^%-?[1-9]%d*$')
        or string.match(num, '^%-?0%.%d+$') or string.match(num, '^%-?[1-9]%d*%.%d+$')
        or string.match(num, '^%-?0[eE][%+%-]?%d+$') or string.match(num, '^%-?[1-9]%d*[eE][%+%-]?%d+$')
        or string.match(num, '^%-?0%.%d+[eE][%+%-]?%d+$') or string.match(num, '^%-?[1-9]%d*%.%d+[eE][%+%-]?%d+$')) then
      return false
    end
  end
  return true
end
`

// statsLua defines record_stats(h, a, failed_f): it adds a finished job
// to h, the stats hash of its queue (see stats.go), from the five stats
// ARGV starting at ARGV[a] (Timing.statsArgs: the class's run_us field,
// the run time in µs, the class's run bucket field, the wait in µs or ""
// and the wait bucket field); failed_f, the class's failed field, is
// given for a failure only ("" or nil otherwise). The acknowledging scripts call it only when
// they did acknowledge the job.
const statsLua = `
local function record_stats(h, a, failed_f)
  redis.call('HINCRBY', h, '` + StatProcessed + `', 1)
  redis.call('HINCRBY', h, ARGV[a], ARGV[a+1])
  redis.call('HINCRBY', h, ARGV[a+2], 1)
  if ARGV[a+3] ~= '' then
    redis.call('HINCRBY', h, '` + StatWaitUS + `', ARGV[a+3])
    redis.call('HINCRBY', h, ARGV[a+4], 1)
  end
  if failed_f and failed_f ~= '' then
    redis.call('HINCRBY', h, '` + StatFailed + `', 1)
    redis.call('HINCRBY', h, failed_f, 1)
  end
end
`

// reserveScript: reserveLua alone.
//
// KEYS[1] worker key, KEYS[2] in-flight index, KEYS[3] reservation key,
// then the queue pairs; ARGV[1] token, ARGV[2] run_at, then queue names.
var reserveScript = redis.NewScript(strictJSONLua + "local B, A, K = 3, 2, 1\n" + reserveLua)

// replyLua defines push_reply(list, attempts, msg, ttl, cid): the
// terminal reply of an acknowledged job. msg is EncodeReply's output
// ("" = no reply wanted), completed here with the attempt the started
// reply counted (1 when none was counted: the job failed before it
// started); the count is then dropped, so that a later job with the same
// correlation id counts from 1 again. The acknowledging scripts call it
// only when they did acknowledge the job: that is what makes the terminal
// reply exactly-once.
const replyLua = `
local function push_reply(list, attempts, msg, ttl, cid)
  if msg == '' then return end
  local n = 1
  local cur = redis.call('HGET', attempts, cid)
  if cur then n = tonumber(string.match(cur, '^(%d+)')) or 1 end
  redis.call('HDEL', attempts, cid)
  redis.call('RPUSH', list, msg .. n .. '}')
  redis.call('PEXPIRE', list, ttl)
end
`

// startedScript pushes a job's "started" reply and counts its attempt,
// once per reservation: the attempts hash remembers the token that
// counted last, and a retried call for the same token (its first reply
// lost) pushes and counts nothing more. A job requeued after a crash is
// reserved again with a new token, and so counts attempt 2.
//
// KEYS[1] attempts hash, KEYS[2] reply list
// ARGV[1] correlation id, ARGV[2] token, ARGV[3] the message
// (EncodeReply), ARGV[4] TTL in ms
//
// Returns the attempt number.
var startedScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local n, tok = 0, ''
if cur then
  local a, b = string.match(cur, '^(%d+):(.*)$')
  if a then n, tok = tonumber(a), b end
end
if tok == ARGV[2] then return n end
n = n + 1
redis.call('HSET', KEYS[1], ARGV[1], n .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[3] .. n .. '}')
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return n
`)

// ackReserveScript acknowledges a successful job and reserves the next
// one in a single round trip, the busy worker's fast path. The ack half
// (counters, the done job's timing in its queue's stats hash and its
// terminal reply) runs only when the reservation key still holds the done
// job's token and the job was still in flight.
//
// KEYS[1] worker key, KEYS[2] the done job's in-flight list, KEYS[3] total
// processed, KEYS[4] worker processed, KEYS[5] the stats hash of the done
// job's queue, KEYS[6] the done job's reply list, KEYS[7] its attempts
// hash, KEYS[8] in-flight index, KEYS[9] reservation key, then the queue
// pairs from KEYS[10]
// ARGV[1] the done job's payload, ARGV[2] its token, ARGV[3..7] its
// timing (statsLua), ARGV[8..10] its reply message, TTL (ms) and
// correlation id (replyLua), ARGV[11] the most jobs to reserve (K of
// reserveLua), ARGV[12] the next token, ARGV[13] run_at, ARGV[13+i] queue
// names
var ackReserveScript = redis.NewScript(strictJSONLua + statsLua + replyLua + `
if redis.call('GET', KEYS[9]) == ARGV[2] and redis.call('LREM', KEYS[2], -1, ARGV[1]) == 1 then
  redis.call('INCR', KEYS[3])
  redis.call('INCR', KEYS[4])
  record_stats(KEYS[5], 3)
  push_reply(KEYS[6], KEYS[7], ARGV[8], ARGV[9], ARGV[10])
end
local B, A, K = 9, 13, tonumber(ARGV[11])
` + reserveLua)

// claimScript records a job that BLMOVE moved into the worker's in-flight
// list: its reservation token and the worker's current-job record. It is
// idempotent (the worker retries it until it succeeds).
//
// KEYS[1] worker key, KEYS[2] in-flight index, KEYS[3] reservation key
// ARGV[1] token, ARGV[2] queue name, ARGV[3] run_at, ARGV[4] payload
var claimScript = redis.NewScript(strictJSONLua + `
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[1])
local v = ARGV[4]
if strict_object(v) then
  redis.call('SET', KEYS[1], '{"queue":' .. cjson.encode(ARGV[2]) .. ',"run_at":' .. cjson.encode(ARGV[3]) .. ',"payload":' .. v .. '}')
else
  redis.call('SET', KEYS[1], cjson.encode({queue = ARGV[2], run_at = ARGV[3], payload = v}))
end
return 1
`)

// requeueLua puts every in-flight job of a worker back at the head of its
// queue, in the order they were taken, and forgets the in-flight lists,
// the reservation and the worker's current job.
//
// Each queue that got a job back gets a wake-up token (notify.go); the
// notify keys are derived from ARGV[2], the namespace followed by
// "queue:".
//
// KEYS[1] in-flight index; KEYS[2] worker key; KEYS[3] reservation key
// ARGV[1] key prefix of in-flight lists ("resque:poolctl:inflight:ID:")
// ARGV[2] key prefix of queues ("resque:queue:")
var requeueLua = notifyLua + `
local n = 0
local ns = string.sub(ARGV[2], 1, -7)
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local src = ARGV[1] .. q
  local dst = ARGV[2] .. q
  local moved = 0
  while redis.call('LMOVE', src, dst, 'RIGHT', 'LEFT') do
    moved = moved + 1
  end
  if moved > 0 then notify(ns .. 'poolctl:notify:' .. q, ns .. 'poolctl:notify-any') end
  n = n + moved
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
`

// requeueScript runs requeueLua and returns the number of jobs requeued.
var requeueScript = redis.NewScript(requeueLua + "return n\n")

// unregisterScript requeues like requeueScript, then removes every trace
// of the worker, in one round trip (a pool stopping a hundred workers
// pays it a hundred times). With ARGV[4], it does so only while the
// worker's recorded identity is still ARGV[4] ("" = none recorded): a
// recoverer that judged one process dead never unregisters a newer one
// that took the same id meanwhile (pid reuse).
//
// KEYS[4] workers set, KEYS[5] started key, KEYS[6] processed:ID,
// KEYS[7] failed:ID, KEYS[8] heartbeat hash, KEYS[9] process identity;
// ARGV[3] the worker id[, ARGV[4] the identity judged]
//
// Returns the number of jobs requeued, or -1 when the identity changed.
var unregisterScript = redis.NewScript(`
if ARGV[4] and (redis.call('GET', KEYS[9]) or '') ~= ARGV[4] then return -1 end
` + requeueLua + `
redis.call('SREM', KEYS[4], ARGV[3])
redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[9])
redis.call('HDEL', KEYS[8], ARGV[3])
return n
`)

// ackScript finishes a job: if the worker's reservation still holds the
// job's token and the job is in its in-flight list, the job is removed,
// the reservation and the worker's current-job record are deleted, the
// counters are incremented (processed always, as Resque counts failures
// as processed too; failed and the failure record for a failure), the
// job's timing is added to its queue's stats hash and its terminal reply
// is pushed. Anything else (a retried call whose first reply was lost, a
// job requeued meanwhile) changes nothing.
//
// KEYS[1] in-flight list, KEYS[2] worker key, KEYS[3] reservation key,
// KEYS[4] total processed, KEYS[5] worker processed, KEYS[6] the stats
// hash of the job's queue, KEYS[7] total failed, KEYS[8] worker failed,
// KEYS[9] failed list, KEYS[10] reply list, KEYS[11] attempts hash
// ARGV[1] payload, ARGV[2] token, ARGV[3..7] the job's timing (statsLua),
// ARGV[8] failure record or "" for a success, ARGV[9] the class's failed
// field or "", ARGV[10..12] the reply message, TTL (ms) and correlation
// id (replyLua), ARGV[13] the token of the batch's next job or "" (none),
// ARGV[14] that job's worker record (Resque's "working on", built by the
// caller: the next job starts as this call is sent)
//
// Returns 1 when the job was finished by this call, else 0.
var ackScript = redis.NewScript(statsLua + replyLua + `
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return 0 end
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
if ARGV[13] and ARGV[13] ~= '' then
  redis.call('SET', KEYS[3], ARGV[13])
  redis.call('SET', KEYS[2], ARGV[14])
else
  redis.call('DEL', KEYS[2], KEYS[3])
end
redis.call('INCR', KEYS[4])
redis.call('INCR', KEYS[5])
if ARGV[8] ~= '' then
  redis.call('INCR', KEYS[7])
  redis.call('INCR', KEYS[8])
  redis.call('RPUSH', KEYS[9], ARGV[8])
end
record_stats(KEYS[6], 3, ARGV[9])
push_reply(KEYS[10], KEYS[11], ARGV[10], ARGV[11], ARGV[12])
return 1
`)

// retryScript moves a failure record's payload back to its queue, only if
// the record at the index is still the one the caller read, and then
// replaces the record (Resque's requeue: retried_at set) or, given no
// replacement, removes it (requeue_and_remove).
//
// KEYS: failed list, queues set, queue list, its notify list, the
// any-queue notify list (notify.go)
// ARGV: index, record, payload, queue name, replacement record or ""
var retryScript = redis.NewScript(notifyLua + `
if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[5] ~= '' then
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[5])
else
  local tomb = 'poolctl-retried:' .. ARGV[1] .. ':' .. redis.call('TIME')[1]
  redis.call('LSET', KEYS[1], ARGV[1], tomb)
  redis.call('LREM', KEYS[1], 1, tomb)
end
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[3])
notify(KEYS[4], KEYS[5])
return 1
`)
