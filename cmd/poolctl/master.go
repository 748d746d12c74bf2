package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/poolctl/poolctl/internal/masterd"
)

// runMaster runs `poolctl master`. When the lean poolctl-master binary
// sits beside this one, poolctl becomes it (exec: the same pid, which pid
// files and systemd's Type=notify rely on), so the master's address space
// holds none of the shell's dependencies; otherwise (e.g. `go install` of
// cmd/poolctl alone) the same master runs in this process.
func runMaster(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	if lean := masterd.Beside("poolctl-master"); lean != "" {
		err := syscall.Exec(lean, append([]string{lean}, args...), os.Environ())
		// Exec returns only when it failed, before anything started.
		fmt.Fprintf(stderr, "poolctl: cannot run %s (%v): running the master in this process\n", lean, err)
	}
	return masterd.Main(ctx, args, stderr, masterd.Options{Version: version})
}
