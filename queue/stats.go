package queue

import (
	"strconv"
	"strings"
	"time"
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
