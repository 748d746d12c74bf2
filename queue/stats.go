package queue

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Per-queue statistics and job timings. Resque keeps no per-queue
// counters, so poolctl's workers add their own, one hash per queue,
// written by the same scripts that acknowledge a job (no extra round
// trip), so every host's workers add to the same figures:
//
//	<ns>poolctl:stats:QUEUE   HASH
//	  processed               jobs finished, successes and failures (as Resque counts)
//	  failed                  jobs that failed
//	  run_us CLASS            microseconds spent running CLASS's jobs
//	  run_bI CLASS            CLASS's jobs that ran within bucket I (not cumulative)
//	  failed CLASS            CLASS's jobs that failed
//	  wait_us                 microseconds jobs waited in the queue (jobs with enqueued_at)
//	  wait_bI                 such jobs whose wait fell within bucket I
//
// Bucket I holds durations d with Buckets[I-1] < d <= Buckets[I]; the last
// bucket (I = len(Buckets)) is everything longer. A class's job count is
// the sum of its buckets. Field names are a stat, a space and the class,
// so a class name may hold any character (Ruby's "Mod::Class" included).

// Buckets are the upper bounds of the duration histogram buckets.
var Buckets = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
	20 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute,
	5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
}

// NumBuckets is the number of histogram buckets, the overflow bucket
// included.
var NumBuckets = len(Buckets) + 1

// Bucket returns the index of the bucket holding d.
func Bucket(d time.Duration) int {
	for i, b := range Buckets {
		if d <= b {
			return i
		}
	}
	return len(Buckets)
}

// Stats is the hash of QUEUE's counters and timings.
func (k Keys) Stats(queue string) string { return k.ns + "poolctl:stats:" + queue }

// Field names of the stats hash.
const (
	StatProcessed = "processed"
	StatFailed    = "failed"
	StatRunUS     = "run_us"
	StatWaitUS    = "wait_us"
)

// BucketField is the field of bucket i of stat ("run" or "wait").
func BucketField(stat string, i int) string { return stat + "_b" + strconv.Itoa(i) }

// ClassField is stat's field for class.
func ClassField(stat, class string) string { return stat + " " + class }

// ParseStatField splits a stats hash field into its stat and class
// ("" for a queue-wide stat), and for a bucket field its stat ("run" or
// "wait") and bucket index (else -1).
func ParseStatField(field string) (stat, class string, bucket int) {
	stat, class, _ = strings.Cut(field, " ")
	bucket = -1
	if base, idx, ok := strings.Cut(stat, "_b"); ok {
		if i, err := strconv.Atoi(idx); err == nil && i >= 0 && i < NumBuckets {
			return base, class, i
		}
	}
	return stat, class, bucket
}

// UnknownClass is the class recorded for a job whose payload has no
// usable class (not a JSON object, no "class" string, an empty one, one
// that is not UTF-8 or longer than MaxClassBytes).
const UnknownClass = "(unknown)"

// MaxClassBytes bounds the class names recorded in the stats hash: a
// longer class is recorded as UnknownClass, so no producer can grow a
// field name without bound.
const MaxClassBytes = 256

// Timing is what a worker measured of a job it finished, recorded in the
// stats hash of the job's queue by the script that acknowledges the job,
// and only when that script does acknowledge it.
type Timing struct {
	// Class is the payload's class; "" (or an unusable name) records
	// UnknownClass.
	Class string
	// Run is the handler's run time, by the monotonic clock.
	Run time.Duration
	// Wait is how long the job sat in its queue: the time the worker
	// reserved it minus the payload's enqueued_at. It is recorded only
	// when Waited is set.
	Wait   time.Duration
	Waited bool
}

// RecordedClass is the class name Timing t is recorded under.
func (t Timing) RecordedClass() string {
	c := t.Class
	if c == "" || len(c) > MaxClassBytes || !utf8.ValidString(c) {
		return UnknownClass
	}
	return c
}

// statsArgs are the ARGV the acknowledging scripts take for the stats
// hash, in order: the class's run_us field, the run time in µs, the
// class's run bucket field, the wait in µs ("" when unknown) and the wait
// bucket field (likewise ""). Field names are built here, so their format
// lives in one place (this file).
func (t Timing) statsArgs() [5]any {
	class := t.RecordedClass()
	run := max(t.Run, 0)
	a := [5]any{
		ClassField(StatRunUS, class),
		run.Microseconds(),
		ClassField(BucketField("run", Bucket(run)), class),
		"", "",
	}
	if t.Waited {
		wait := max(t.Wait, 0)
		a[3], a[4] = wait.Microseconds(), BucketField("wait", Bucket(wait))
	}
	return a
}

// EnqueuedAtKey is the payload key poolctl enqueue stamps, as Sidekiq
// does: the time the job was pushed, in Unix epoch seconds (a float).
// Resque ignores keys it does not know.
const EnqueuedAtKey = "enqueued_at"

// FormatEnqueuedAt is t as enqueued_at's value: epoch seconds with
// microseconds, e.g. 1795337900.123456.
func FormatEnqueuedAt(t time.Time) string {
	us := t.UnixMicro()
	sec, frac := us/1e6, us%1e6
	if frac < 0 {
		sec, frac = sec-1, frac+1e6
	}
	return fmt.Sprintf("%d.%06d", sec, frac)
}

// ParseEnqueuedAt reads an enqueued_at value: a JSON number of Unix epoch
// seconds, float (as Sidekiq writes it) or integer. Anything else (a
// string, null, zero or negative, a time past 2116, milliseconds taken
// for seconds included, where durations from now would overflow) is not
// a usable time, and ok is false.
func ParseEnqueuedAt(raw []byte) (t time.Time, ok bool) {
	s := strings.TrimSpace(string(raw))
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return time.Time{}, false
	}
	const limit = float64(1<<62) / 1e9 // seconds: 2116-02-20
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f >= limit {
		return time.Time{}, false
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true
}

// QueueWait is how long a job enqueued at enqueued waited for a worker
// that reserved it at reserved, judged at now (the worker's clock): an
// enqueued_at later than now is a producer's bad clock or value and is
// ignored (ok false); one between the reservation and now (clock skew)
// counts as no wait.
func QueueWait(enqueued, reserved, now time.Time) (wait time.Duration, ok bool) {
	if enqueued.After(now) {
		return 0, false
	}
	return max(reserved.Sub(enqueued), 0), true
}
