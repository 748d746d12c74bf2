// Package logtail reads and follows the pool log: the last N lines, a byte
// range of complete lines, a follower that survives rotation and truncation,
// and a Cursor that remembers a read position for the shell's log.ff,
// log.rew and log.tail_to_eof commands.
//
// All functions emit whole lines only: every line written to the caller's
// io.Writer ends in "\n", and a trailing line that has not been terminated
// yet is left for a later call.
package logtail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// blockSize is the unit in which files are read backwards and forwards.
const blockSize = 4096

// LastLinesOffset returns the byte offset where the last n lines of the file
// at path start. It reads the file backwards in blocks, so its cost depends on
// n and the line lengths, not on the file size.
//
// If n <= 0 it returns the file size. If the file has fewer than n lines it
// returns 0. A final line without a trailing newline counts as a line.
func LastLinesOffset(path string, n int) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("logtail: last lines of %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("logtail: last lines of %s: %w", path, err)
	}
	size := fi.Size()
	if n <= 0 || size == 0 {
		return size, nil
	}
	off, err := lastLinesOffset(f, size, n)
	if err != nil {
		return 0, fmt.Errorf("logtail: last lines of %s: %w", path, err)
	}
	return off, nil
}

// lastLinesOffset scans r backwards from size and returns the offset just
// after the newline that ends the line preceding the last n lines.
func lastLinesOffset(r io.ReaderAt, size int64, n int) (int64, error) {
	buf := make([]byte, blockSize)
	end := size // exclusive end of the region still to scan
	// A newline as the very last byte terminates the last line; it does not
	// separate it from a following (empty) line, so it is not counted.
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		end--
	}
	seen := 0
	for end > 0 {
		start := end - blockSize
		if start < 0 {
			start = 0
		}
		b := buf[:end-start]
		if _, err := r.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' {
				continue
			}
			seen++
			if seen == n {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// ReadRange writes the complete lines that lie in [from, to) of the file at
// path to w and returns the offset just after the last complete line written.
// A trailing partial line is not written; the caller may retry from the
// returned offset later. A negative to means the current end of the file.
func ReadRange(path string, from, to int64, w io.Writer) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return from, fmt.Errorf("logtail: read %s: %w", path, err)
	}
	defer f.Close()
	if to < 0 {
		fi, err := f.Stat()
		if err != nil {
			return from, fmt.Errorf("logtail: read %s: %w", path, err)
		}
		to = fi.Size()
	}
	off, err := scanLines(f, from, to, func(line []byte) (bool, error) {
		_, err := w.Write(line)
		return false, err
	})
	if err != nil {
		return off, fmt.Errorf("logtail: read %s: %w", path, err)
	}
	return off, nil
}

// scanLines calls fn for every complete line (including its "\n") in
// [from, to) of r, or up to the end of r if it is shorter. It returns the
// offset after the last line passed to fn. It stops early, without error,
// when fn returns true.
func scanLines(r io.ReaderAt, from, to int64, fn func(line []byte) (stop bool, err error)) (int64, error) {
	if from < 0 {
		from = 0
	}
	pending := make([]byte, 0, 16*blockSize) // unterminated bytes read so far
	chunk := make([]byte, 16*blockSize)
	pos := from  // next byte to read
	done := from // offset after the last line handed to fn
	for pos < to {
		want := int64(len(chunk))
		if to-pos < want {
			want = to - pos
		}
		n, err := r.ReadAt(chunk[:want], pos)
		pending = append(pending, chunk[:n]...)
		pos += int64(n)
		consumed := 0
		for {
			i := bytes.IndexByte(pending[consumed:], '\n')
			if i < 0 {
				break
			}
			line := pending[consumed : consumed+i+1]
			stop, ferr := fn(line)
			if ferr != nil {
				return done, ferr
			}
			done += int64(len(line))
			consumed += len(line)
			if stop {
				return done, nil
			}
		}
		pending = pending[:copy(pending, pending[consumed:])]
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return done, err
		}
		if n == 0 {
			break
		}
	}
	return done, nil
}
