package main

import (
	"context"
	"errors"
	"io"
)

// runShell starts the interactive shell (placeholder until the shell lands).
func runShell(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("the interactive shell is not built yet; use `poolctl master -c FILE`")
}

func runAttach(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runShell(ctx, args, stdin, stdout, stderr)
}

func runList(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
