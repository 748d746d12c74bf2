package main

import (
	"context"
	"io"

	"github.com/poolctl/poolctl/internal/masterd"
)

// runMaster runs `poolctl master` (package internal/masterd).
func runMaster(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	return masterd.Main(ctx, args, stderr, masterd.Options{Version: version})
}
