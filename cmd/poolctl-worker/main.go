// Command poolctl-worker is the built-in worker alone, the same code as
// `poolctl work` in a binary without the shell, the master and their
// dependencies: it starts faster and uses less memory, which matters when
// a pool runs hundreds of workers. The master uses it when it sits beside
// the poolctl binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/poolctl/poolctl/worker"
	"github.com/redis/go-redis/v9"
)

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
	// poolctl reports Redis outages itself, once per outage.
	redis.SetLogger(quietLogger{})
	err := worker.Command(context.Background(), "poolctl-worker", os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, worker.ErrUsage):
		fmt.Fprintln(os.Stderr, "poolctl-worker:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "poolctl-worker:", err)
		os.Exit(1)
	}
}
