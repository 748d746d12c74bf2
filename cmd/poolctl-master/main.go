// Command poolctl-master is the pool master alone, the same code as
// `poolctl master` (package internal/masterd) in a binary without the
// shell and its dependencies: poolctl execs it when it sits beside the
// poolctl binary, so a master's memory is its own code and its workers.
// It takes the flags of `poolctl master` and prints the same messages.
package main

import (
	"context"
	"os"

	"github.com/poolctl/poolctl/internal/cli"
	"github.com/poolctl/poolctl/internal/masterd"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cli.QuietRedis()
	// Built-in workers run as poolctl-worker beside this binary, else as
	// `poolctl work` of the poolctl beside it (which execs this one), else
	// of the one on $PATH: this binary has no work sub-command.
	full := masterd.Beside("poolctl")
	if full == "" {
		full = "poolctl"
	}
	err := masterd.Main(context.Background(), os.Args[1:], os.Stderr, masterd.Options{
		Version:    version,
		Executable: full,
	})
	os.Exit(cli.ExitCode(err, "poolctl", os.Stderr, masterd.ErrUsage))
}
