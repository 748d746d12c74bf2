package redisconn

import (
	"fmt"
	"strings"
)

// defaultNamespace is Resque's key prefix (queue.DefaultNamespace; this
// package sits below queue and cannot import it).
const defaultNamespace = "resque:"

// IsCluster reports whether Open makes a Cluster client of url: one with
// "addr=" parameters that is not a Sentinel URL.
func IsCluster(url string) bool {
	return !strings.Contains(url, "master_name=") && strings.Contains(url, "addr=")
}

// EffectiveNamespace is the key namespace in force for a pool whose
// Redis is url and whose configuration says configured ("" means
// Resque's "resque:"). Every component that builds keys (master, workers,
// janitor, sampler, CLI clients, shell) takes its namespace from here, so
// that they all agree.
//
// On a Redis Cluster every key of one script, MULTI or multi-key command
// must hash to the same slot, and poolctl's moves a job from a queue to
// a worker's in-flight list and counts it in one script: a namespace
// without a hash tag ("resque:") is made one ("{resque}:"), so every
// key it prefixes lives in the slot of "resque". note then says so, for
// the log; it is "" when the namespace is kept as configured. A
// namespace that already holds a hash tag is kept.
func EffectiveNamespace(url, configured string) (ns, note string) {
	ns = configured
	if ns == "" {
		ns = defaultNamespace
	}
	if !strings.HasSuffix(ns, ":") {
		ns += ":" // as queue.NewKeys does
	}
	if !IsCluster(url) || HasHashTag(ns) {
		return ns, ""
	}
	base := strings.TrimSuffix(ns, ":")
	tagged := "{" + base + "}:"
	note = fmt.Sprintf("namespace %q has no hash tag and Redis Cluster needs every key of a job's operations in one slot: using %q "+
		"(Ruby producers must use the same: Resque.redis.namespace = %q)", ns, tagged, "{"+base+"}")
	return tagged, note
}

// HasHashTag reports whether every key prefixed with ns hashes by the
// same part of ns: Redis Cluster hashes a key by what lies between its
// first '{' and the first '}' after it, when that is not empty.
func HasHashTag(ns string) bool {
	open := strings.IndexByte(ns, '{')
	if open < 0 {
		return false
	}
	closing := strings.IndexByte(ns[open+1:], '}')
	return closing > 0
}
