package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"github.com/poolctl/poolctl/logtail"
)

func cmdLog(ctx context.Context, s *Session, _ []string) error {
	if s.interactive {
		pager := os.Getenv("PAGER")
		if pager == "" {
			pager = "less"
		}
		if path, err := exec.LookPath(pager); err == nil {
			cmd := exec.CommandContext(ctx, path, s.logPath)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			return cmd.Run()
		}
	}
	f, err := os.Open(s.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(s.out, f)
	return err
}

func cmdLogTail(ctx context.Context, s *Session, args []string) error {
	n := 10
	if len(args) == 1 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 0 {
			return fmt.Errorf("log.tail: N must be a non-negative integer, not %q", args[0])
		}
		n = v
	}
	if n > 0 && logEnd(s.logPath) != fileSize(s.logPath) {
		n++ // the last line is still being written: show n complete ones
	}
	off, err := logtail.LastLinesOffset(s.logPath, n)
	if err != nil {
		return err
	}
	end, err := logtail.ReadRange(s.logPath, off, -1, s.out)
	if err != nil {
		return err
	}
	s.log.SetOffset(end)
	if !s.interactive {
		return nil
	}
	cw := &countWriter{w: s.out}
	err = logtail.Follow(ctx, s.logPath, end, cw, nil)
	s.logToEnd()
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C: back to the prompt
	}
	return err
}

func cmdTailUntil(ctx context.Context, s *Session, args []string) error {
	re, err := regexp.Compile(args[0])
	if err != nil {
		return fmt.Errorf("log.tail_until: invalid REGEXP: %v", err)
	}
	var timeout time.Duration
	if len(args) == 2 {
		if timeout, err = ParseTimeout(args[1]); err != nil {
			return err
		}
	}
	if len(args) == 2 && timeout == 0 {
		fmt.Fprintln(s.info, "log.tail_until: TIMEOUT 0: no timeout; following until a line matches (Ctrl-C stops)")
	}
	fctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Without a master nothing will write the line: stop once the log
	// has been read to its end, instead of following forever.
	fctx, stopFollow := context.WithCancelCause(fctx)
	defer stopFollow(nil)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for gone := 0; ; {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			if _, alive := s.pool().MasterPID(); alive {
				gone = 0
				continue
			}
			// Twice in a row: the follower has had time to read the rest.
			if gone++; gone >= 2 {
				stopFollow(errNotRunning)
				return
			}
		}
	}()
	cw := &countWriter{w: s.out}
	from := s.log.Offset()
	err = logtail.Follow(fctx, s.logPath, from, cw, func(line string) bool { return re.MatchString(line) })
	if context.Cause(fctx) == errNotRunning && ctx.Err() == nil {
		err = errNotRunning
	}
	s.log.SetOffset(from + cw.n)
	if from+cw.n > fileSize(s.logPath) {
		s.logToEnd() // rotated or truncated while it followed
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotRunning):
		return fmt.Errorf("log.tail_until: no line matched %q, and no master is running to write more", args[0])
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("log.tail_until: no line matched %q within %v", args[0], timeout)
	default:
		return err
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
