package redisconn

import (
	"errors"

	"github.com/redis/go-redis/v9"
)

// Describe says what a failed Redis call's error is, for a log line or a
// message to the user:
//
//   - "Redis refused the command: …" when the server answered with an
//     error (CROSSSLOT, NOPERM, WRONGTYPE, READONLY, OOM, MOVED, NOSCRIPT,
//     a script error…): Redis is there, and said no. A refusal that no
//     retry can cure (see Misconfigured) says so, and why.
//   - "Redis unavailable: …" for everything else: refused or dropped
//     connections, timeouts, a closed client, no sentinel answering.
//
// It returns "" for a nil error.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	if !IsServerError(err) {
		return "Redis unavailable: " + err.Error()
	}
	msg := "Redis refused the command: " + err.Error()
	if hint := misconfiguration(err); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// IsServerError reports whether err is an error reply from a Redis server
// (rather than a network, timeout or client error). redis.Nil, the "no
// such key" reply, is not an error of the server.
func IsServerError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && !errors.Is(err, redis.Nil)
}

// Misconfigured reports whether err is a refusal that retrying cannot
// cure until an operator changes the configuration: keys across slots
// on a Cluster, a missing ACL permission, bad credentials.
func Misconfigured(err error) bool { return misconfiguration(err) != "" }

func misconfiguration(err error) string {
	switch {
	case !IsServerError(err):
		return ""
	case redis.HasErrorPrefix(err, "CROSSSLOT"):
		return "a misconfiguration: on a Redis Cluster the namespace needs a hash tag, such as {resque}:; retrying will not help until it is fixed"
	case redis.HasErrorPrefix(err, "NOPERM"):
		return "a misconfiguration: the Redis user lacks an ACL permission; retrying will not help until it is granted"
	case redis.HasErrorPrefix(err, "WRONGPASS"), redis.HasErrorPrefix(err, "NOAUTH"):
		return "a misconfiguration: check the user and password in the Redis URL; retrying will not help until they are fixed"
	}
	return ""
}

// Explain wraps err so that its message is Describe's ("Redis refused
// the command: …" or "Redis unavailable: …") while errors.Is and
// errors.As still see err. It returns nil for nil.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	return &explained{err}
}

type explained struct{ err error }

func (e *explained) Error() string { return Describe(e.err) }
func (e *explained) Unwrap() error { return e.err }
