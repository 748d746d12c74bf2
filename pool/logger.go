package pool

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxLineBytes bounds one line read from a worker's output; longer lines
// are cut into pieces so a runaway worker cannot grow the master's memory.
const maxLineBytes = 64 << 10

// Logger writes the pool log: the master's own events prefixed
// "poolctl-manager[PID]: " with a timestamp, and worker output prefixed
// "poolctl-worker[PID]: ". Every line is one write, so lines never
// interleave. It is safe for concurrent use.
type Logger struct {
	mu        sync.Mutex
	path      string // "" = stdout
	out       io.Writer
	file      *os.File
	pid       int
	failed    bool // the last write failed; reported once on stderr
	now       func() time.Time
	errOutput io.Writer
	// lines counts worker lines copied, so a stopping master can tell a
	// pipe still being read from one left silent (drainOutput).
	lines atomic.Int64
}

// NewLogger opens path for appending (mode 0600), or uses stdout when path
// is empty.
func NewLogger(path string, pid int) (*Logger, error) {
	l := &Logger{path: path, pid: pid, now: time.Now, errOutput: os.Stderr}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Logger) open() error {
	if l.path == "" {
		l.out = os.Stdout
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.path, err)
	}
	l.file, l.out = f, f
	return nil
}

// Reopen closes and reopens the log file, so that a rotated (renamed) log
// is replaced by a fresh one at the configured path.
func (l *Logger) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.path == "" {
		return nil
	}
	old := l.file
	if err := l.open(); err != nil {
		return err // keep writing to the old file
	}
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// Close closes the log file.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		err := l.file.Close()
		l.file = nil
		l.out = io.Discard
		return err
	}
	return nil
}

// Path is the log file path ("" for stdout).
func (l *Logger) Path() string { return l.path }

// Printf logs one event of the master.
func (l *Logger) Printf(format string, args ...any) {
	var b bytes.Buffer
	b.WriteString("poolctl-manager[")
	b.WriteString(strconv.Itoa(l.pid))
	b.WriteString("]: ")
	b.WriteString(l.now().UTC().Format("2006-01-02T15:04:05.000Z "))
	fmt.Fprintf(&b, format, args...)
	l.writeLine(b.Bytes())
}

// workerLine logs one line of a worker's output.
func (l *Logger) workerLine(pid int, line []byte) {
	b := make([]byte, 0, len(line)+32)
	b = append(b, "poolctl-worker["...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, "]: "...)
	b = append(b, line...)
	l.writeLine(b)
	l.lines.Add(1)
}

// workerLines is how many worker lines have been logged.
func (l *Logger) workerLines() int64 { return l.lines.Load() }

func (l *Logger) writeLine(b []byte) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.out == nil {
		return
	}
	_, err := l.out.Write(b)
	switch {
	case err != nil && !l.failed:
		// The log is the only channel for most events; say once on stderr
		// that it is failing (full disk, deleted directory) and carry on.
		l.failed = true
		fmt.Fprintf(l.errOutput, "poolctl-manager[%d]: cannot write log %s: %v (continuing)\n", l.pid, l.path, err)
	case err == nil && l.failed:
		l.failed = false
	}
}

// pump copies r into the log line by line, prefixed for worker pid, until
// r reaches EOF. Lines longer than maxLineBytes are split.
func (l *Logger) pump(pid int, r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	var pending []byte
	for {
		chunk, err := br.ReadSlice('\n')
		pending = append(pending, chunk...)
		for len(pending) > maxLineBytes {
			l.workerLine(pid, pending[:maxLineBytes])
			pending = append(pending[:0], pending[maxLineBytes:]...)
		}
		done := err != nil && err != bufio.ErrBufferFull
		if len(pending) > 0 && (pending[len(pending)-1] == '\n' || done) {
			l.workerLine(pid, bytes.TrimRight(pending, "\r\n"))
			pending = pending[:0]
		}
		if done {
			return
		}
	}
}

// countOf says how many of noun there are: "1 worker", "3 workers".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
