package logtail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/nxadm/tail"
)

// rotationCheckInterval is how often Follow, while idle, checks whether the
// path now names a different file than the one being read. It matches the
// polling interval of nxadm/tail.
const rotationCheckInterval = 250 * time.Millisecond

// Follow writes the lines of the file at path, starting at byte offset from,
// to w until ctx is cancelled or stop returns true for a line. The matching
// line is written before Follow returns. stop may be nil.
//
// Follow keeps going across rotation by rename (a new file appearing under
// path) and across truncation, and waits for the file if it does not exist
// yet. Every line written to w ends in "\n"; lines are never split or
// merged, and a line still being written is held back until it is complete.
//
// It returns ctx.Err() when cancelled, nil when stop matched, and a wrapped
// error if writing to w fails or the file cannot be read.
//
// Implementation notes: the file is tailed with nxadm/tail in polling mode
// (inotify tails of one file in one process interfere with each other), with
// Follow, ReOpen and CompleteLines set and its logger silenced. nxadm/tail
// switches to the new file as soon as it sees a rename, dropping whatever was
// appended to the old file since its last poll, so Follow keeps its own
// descriptor on the file being read and drains the rest of the old file
// before the first line of the new one. One polling goroutine of nxadm/tail
// may outlive Follow by up to its poll interval (250 ms).
func Follow(ctx context.Context, path string, from int64, w io.Writer, stop func(line string) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fw := &follower{path: path, off: from, w: w, stop: stop}
	fw.open() // before the tail opens it, so both start on the same file
	defer fw.close()

	t, err := tail.TailFile(path, tail.Config{
		Location:      &tail.SeekInfo{Offset: from, Whence: io.SeekStart},
		Follow:        true,
		ReOpen:        true,
		Poll:          true,
		CompleteLines: true,
		Logger:        tail.DiscardingLogger,
	})
	if err != nil {
		return fmt.Errorf("logtail: follow %s: %w", path, err)
	}
	defer func() { _ = t.Stop() }()

	ticker := time.NewTicker(rotationCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-t.Lines:
			if !ok {
				err := t.Wait()
				if err == nil {
					err = errors.New("tail stopped")
				}
				return fmt.Errorf("logtail: follow %s: %w", path, err)
			}
			if l.Err != nil { // rate-limit notice; no rate limiter is configured
				continue
			}
			done, err := fw.line(l)
			if err != nil || done {
				return err
			}
		case <-ticker.C:
			done, err := fw.checkRotated()
			if err != nil || done {
				return err
			}
		}
	}
}

// follower is the state of one Follow call: its own descriptor on the file
// the tail is reading and the offset in that file up to which lines have
// been written.
type follower struct {
	path string
	w    io.Writer
	stop func(string) bool

	f    *os.File    // the file being read; nil while path does not exist
	fi   os.FileInfo // identity of f
	off  int64       // offset in f after the last line written
	seen bool        // whether the tail has delivered a line yet
}

// open opens path as the current file. A missing file is not an error: it
// is opened later, when the tail finds it.
func (fw *follower) open() {
	f, err := os.Open(fw.path)
	if err != nil {
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return
	}
	fw.f, fw.fi = f, fi
}

func (fw *follower) close() {
	if fw.f != nil {
		fw.f.Close()
		fw.f, fw.fi = nil, nil
	}
}

// line handles one line delivered by the tail.
func (fw *follower) line(l *tail.Line) (bool, error) {
	// nxadm/tail numbers lines from 1 again after it reopens the file
	// (rotation or truncation).
	if l.Num == 1 && fw.seen {
		if done, err := fw.switchFile(); err != nil || done {
			return done, err
		}
	}
	fw.seen = true
	if fw.f == nil {
		fw.open()
	}
	if l.SeekInfo.Offset <= fw.off {
		return false, nil // already written while draining this file
	}
	fw.off = l.SeekInfo.Offset
	return fw.emit([]byte(l.Text + "\n"))
}

// switchFile is called when the tail has reopened path. If path now names a
// different file, the rest of the old file is written first.
func (fw *follower) switchFile() (bool, error) {
	if fw.f != nil {
		fi, err := os.Stat(fw.path)
		if err == nil && os.SameFile(fi, fw.fi) {
			fw.off = 0 // truncated in place: start again from the top
			return false, nil
		}
		if done, err := fw.drain(); err != nil || done {
			return done, err
		}
	}
	fw.close()
	fw.open()
	fw.off = 0
	return false, nil
}

// checkRotated drains the current file once path names another file (or
// none), so lines written just before a rotation are not held back until the
// new file receives its first line.
func (fw *follower) checkRotated() (bool, error) {
	if fw.f == nil {
		return false, nil
	}
	fi, err := os.Stat(fw.path)
	if err == nil && os.SameFile(fi, fw.fi) {
		return false, nil
	}
	return fw.drain()
}

// drain writes the complete lines of the current file after fw.off.
func (fw *follower) drain() (bool, error) {
	var done bool
	var werr error
	off, err := scanLines(fw.f, fw.off, math.MaxInt64, func(line []byte) (bool, error) {
		done, werr = fw.emit(line)
		return done, werr
	})
	fw.off = off
	switch {
	case werr != nil:
		return false, werr
	case err != nil:
		return false, fmt.Errorf("logtail: follow %s: read: %w", fw.path, err)
	}
	return done, nil
}

// emit writes one line (ending in "\n") and reports whether it matched stop.
func (fw *follower) emit(line []byte) (bool, error) {
	if _, err := fw.w.Write(line); err != nil {
		return false, fmt.Errorf("logtail: follow %s: write: %w", fw.path, err)
	}
	return fw.stop != nil && fw.stop(string(line[:len(line)-1])), nil
}
