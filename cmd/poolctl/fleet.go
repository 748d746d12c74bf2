package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/poolctl/poolctl/shell"
	"golang.org/x/term"
)

// runFleet is `poolctl fleet`: the shell's fleet command (shell.Fleet) on
// the Redis the other client commands use.
func runFleet(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("fleet", stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	timeout := fs.Duration("timeout", shell.DefaultFleetTimeout, "how long to wait for answers")
	expire := fs.Duration("expire", 0, "how long a command may wait in the pool's list, e.g. for a master that restarts (default: the timeout)")
	staleAfter := fs.Duration("stale-after", 0, "heartbeat age from which a pool shows as stale (default 10s)")
	count := fs.Int("count", 1, "fleet top: frames to print")
	interval := fs.Duration("interval", 2*time.Second, "fleet top: time between frames")
	rf := addRedisFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: poolctl fleet [list|top|ping|status|config|reload|stop|pause|resume|autoscale] [HOST/NAME] [ARGS] [flags]\n\n"+shell.HelpText(shell.Lookup("fleet"))+"\n\nflags:\n")
		fs.PrintDefaults()
	}
	words, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool // 0 allowed (the default)
	}{{"timeout", *timeout, false}, {"expire", *expire, true}, {"stale-after", *staleAfter, true}, {"interval", *interval, false}} {
		if d.v < 0 || (d.v == 0 && !d.zero) {
			return fmt.Errorf("%w: --%s must be positive, got %s", errUsage, d.name, d.v)
		}
	}
	if *count < 1 {
		return fmt.Errorf("%w: --count must be at least 1, got %d", errUsage, *count)
	}
	q, closeRedis, err := rf.open(stderr)
	if err != nil {
		return err
	}
	defer closeRedis()
	pipe := true
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pipe = false
	}
	err = shell.Fleet(ctx, q, words, shell.FleetOptions{JSON: *asJSON, Timeout: *timeout, Expire: *expire,
		StaleAfter: *staleAfter, Count: *count, Interval: *interval, Pipe: pipe}, stdout, stderr)
	var ue *shell.UsageError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %s", errUsage, ue.Reason)
	}
	return err
}
