package main

import (
	"context"
	"io"

	"github.com/poolctl/poolctl/worker"
)

// runWork is `poolctl work`: one built-in worker. The lean poolctl-worker
// binary runs the same code with a smaller footprint.
func runWork(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	worker.OneProc()
	return worker.Command(ctx, "poolctl work", args, stdout, stderr)
}
