package worker

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// jobLines writes a command job's output to the worker's log line by
// line, each line stamped with the time and the job id, so the pool log
// says which job printed what and when:
//
//	2026-11-29T16:40:00.123Z job 4242-7: a line the job printed
type jobLines struct {
	mu      sync.Mutex
	out     io.Writer
	prefix  []byte // " job ID: "
	now     func() time.Time
	pending []byte
}

func newJobLines(out io.Writer, jobID string, now func() time.Time) *jobLines {
	return &jobLines{out: out, prefix: []byte(" job " + jobID + ": "), now: now}
}

// Write stamps every complete line of p; a partial line waits for its end
// (or for Flush).
func (j *jobLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending = append(j.pending, p...)
	for {
		i := bytes.IndexByte(j.pending, '\n')
		if i < 0 {
			break
		}
		if err := j.emit(j.pending[:i+1]); err != nil {
			return len(p), err
		}
		j.pending = j.pending[i+1:]
	}
	// Very long lines are split rather than held without bound.
	for len(j.pending) >= maxJobLine {
		if err := j.emit(append(j.pending[:maxJobLine:maxJobLine], '\n')); err != nil {
			return len(p), err
		}
		j.pending = j.pending[maxJobLine:]
	}
	if len(j.pending) == 0 {
		j.pending = nil
	}
	return len(p), nil
}

// maxJobLine is the longest piece of a line stamped at once.
const maxJobLine = 64 << 10

// Flush writes a last line that lacks its newline.
func (j *jobLines) Flush() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) > 0 {
		_ = j.emit(append(j.pending, '\n'))
		j.pending = nil
	}
}

func (j *jobLines) emit(line []byte) error {
	b := make([]byte, 0, 24+len(j.prefix)+len(line))
	b = j.now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, j.prefix...)
	b = append(b, line...)
	_, err := j.out.Write(b)
	return err
}
