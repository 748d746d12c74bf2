package logtail

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Cursor remembers a read position in one log file, for the shell's log.ff,
// log.rew and log.tail_to_eof commands; start, stop and log.tail move it
// past what they showed (SetOffset). Its methods are safe for concurrent use.
type Cursor struct {
	path string

	mu     sync.Mutex
	offset int64
}

// NewCursor returns a cursor on the file at path, positioned at offset 0.
// The file need not exist yet.
func NewCursor(path string) *Cursor {
	return &Cursor{path: path}
}

// Offset returns the current read position in bytes.
func (c *Cursor) Offset() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// SetOffset moves the cursor to offset, which should be just after a complete
// line (as ReadRange returns, or an offset plus what Follow wrote).
func (c *Cursor) SetOffset(offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = max(offset, 0)
}

// Rewind moves the cursor back to the start of the file (log.rew).
func (c *Cursor) Rewind() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = 0
}

// FastForward moves the cursor to the current end of the file (log.ff), so
// the next ToEOF writes only lines appended from now on. If the file ends in
// a line that is still being written, the cursor stops at the start of that
// line, so the line is written whole by a later ToEOF.
func (c *Cursor) FastForward() error {
	f, err := os.Open(c.path)
	if err != nil {
		return fmt.Errorf("logtail: fast-forward %s: %w", c.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("logtail: fast-forward %s: %w", c.path, err)
	}
	end, err := completeEnd(f, fi.Size())
	if err != nil {
		return fmt.Errorf("logtail: fast-forward %s: %w", c.path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = end
	return nil
}

// completeEnd returns the offset just after the last newline in the first
// size bytes of r (0 if there is none).
func completeEnd(r io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, blockSize)
	for end := size; end > 0; {
		start := max(end-blockSize, 0)
		b := buf[:end-start]
		if _, err := r.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// ToEOF writes the complete lines from the cursor up to the current end of
// the file to w and advances the cursor past them (log.tail_to_eof). A
// trailing line that is not yet terminated is left for the next call. If the
// file is now shorter than the cursor (it was truncated or rotated), ToEOF
// starts again from offset 0.
func (c *Cursor) ToEOF(w io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.Open(c.path)
	if err != nil {
		return fmt.Errorf("logtail: read %s: %w", c.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("logtail: read %s: %w", c.path, err)
	}
	size := fi.Size()
	if size < c.offset {
		c.offset = 0
	}
	off, err := scanLines(f, c.offset, size, func(line []byte) (bool, error) {
		_, err := w.Write(line)
		return false, err
	})
	c.offset = off
	if err != nil {
		return fmt.Errorf("logtail: read %s: %w", c.path, err)
	}
	return nil
}
