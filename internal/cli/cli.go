// Package cli holds what poolctl's two commands (poolctl and
// poolctl-worker) share around their main functions: how an error becomes
// an exit status, and a quiet go-redis.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"
)

// QuietRedis silences go-redis, which logs every failed dial on its own:
// poolctl reports Redis outages itself, once per outage.
func QuietRedis() { redis.SetLogger(quietLogger{}) }

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// ExitStatuser is an error that names its exit status (a command with
// statuses of its own, such as poolctl progress's timeout).
type ExitStatuser interface {
	error
	ExitStatus() int
}

// ExitCode is the exit status for err, which it prints to stderr as
// "PROG: ERROR": 0 for nil and flag.ErrHelp (the flag package has printed
// the help), 2 for an error that wraps one of usage (a command-line
// mistake), the status an ExitStatuser in err names, 1 for any other.
func ExitCode(err error, prog string, stderr io.Writer, usage ...error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	if es, ok := errors.AsType[ExitStatuser](err); ok && es.ExitStatus() > 0 {
		return es.ExitStatus()
	}
	for _, u := range usage {
		if errors.Is(err, u) {
			return 2
		}
	}
	return 1
}
