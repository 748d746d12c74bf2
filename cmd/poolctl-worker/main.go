// Command poolctl-worker is the built-in worker alone, the same code as
// `poolctl work` in a binary without the shell, the master and their
// dependencies: it starts faster and uses less memory, which matters when
// a pool runs hundreds of workers. The master uses it when it sits beside
// the poolctl binary.
package main

import (
	"context"
	"os"

	"github.com/poolctl/poolctl/internal/cli"
	"github.com/poolctl/poolctl/worker"
)

func main() {
	worker.OneProc()
	cli.QuietRedis()
	err := worker.Command(context.Background(), "poolctl-worker", os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(cli.ExitCode(err, "poolctl-worker", os.Stderr, worker.ErrUsage))
}
