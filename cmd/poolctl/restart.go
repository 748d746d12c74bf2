package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/poolctl/poolctl/shell"
)

// runRestart is `poolctl restart NAME [QUEUES...] [--batch N] [--now]`:
// the shell's restart (or, with --now, restart!) on a running pool.
func runRestart(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	err := shell.RunRestart(ctx, shell.Options{Stdout: stdout, Stderr: stderr}, args)
	var ue *shell.UsageError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return err
}
