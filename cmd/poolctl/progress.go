package main

import (
	"context"
	"fmt"
	"io"

	"github.com/poolctl/poolctl/shell"
)

// runProgress is `poolctl progress [--name NAME] [--json] [--timeout D]
// [QUEUE...]`: the shell's progress on a running pool.
func runProgress(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("progress", stderr)
	name := fs.String("name", "", "the pool `NAME` (default: the current directory's name when it runs, else the only pool running)")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	timeout := fs.String("timeout", "", "give up after `D` (seconds, or a duration such as 1m30s; default: never)")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintln(out, "usage: poolctl progress [--name NAME] [--json] [--timeout D] [QUEUE...] [-- QUEUE...]")
		fmt.Fprintln(out, "Follows a batch of the pool's queues (default: every queue it serves) until they drain,")
		fmt.Fprintln(out, "showing progress on standard error, then prints a summary on standard output.")
		fmt.Fprintln(out, "Exit status: 0 drained, 1 drained with failed jobs (or an error), 2 usage, 3 timeout, 130 Ctrl-C.")
		fs.PrintDefaults()
	}
	queues, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return err
	}
	c := shell.ProgressCommand{Name: *name, Stdout: stdout, Stderr: stderr}
	c.Queues, c.JSON = queues, *asJSON
	if *timeout != "" {
		if c.Timeout, err = shell.ParseTimeout(*timeout); err != nil {
			return fmt.Errorf("%w: --timeout: %v", errUsage, err)
		}
	}
	return c.Run(ctx)
}
