package shell

import (
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// errReaderGone is why standard output is gone when nothing was being
// written: the reader of the pipe closed its end.
var errReaderGone = errors.New("its reader exited")

// outputGuard is the shell's standard output in a script. It notices when
// the output goes away, so that the shell can stop the pool it started
// instead of dying of SIGPIPE and leaking it (poolctl ... | head -1): a
// write that fails (EPIPE), or, on a pipe or socket, the reader closing
// its end while the shell is busy or idle. Once the output is gone,
// writes are discarded, so that the code stopping the pool never trips
// over them.
type outputGuard struct {
	w    io.Writer
	once sync.Once
	gone chan struct{} // closed when the output has gone away
	err  error         // why; written before gone is closed
	stop chan struct{} // ends the watcher
	fd   int           // pipe or socket to poll, -1 for none
	wg   sync.WaitGroup
}

func newOutputGuard(w io.Writer) *outputGuard {
	g := &outputGuard{w: w, gone: make(chan struct{}), stop: make(chan struct{}), fd: -1}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 {
			g.fd = int(f.Fd())
		}
	}
	if g.fd >= 0 {
		g.wg.Add(1)
		go g.watch()
	}
	return g
}

// Write writes p, or discards it once the output is gone.
func (g *outputGuard) Write(p []byte) (int, error) {
	select {
	case <-g.gone:
		return len(p), nil
	default:
	}
	if _, err := g.w.Write(p); err != nil {
		g.fail(err)
	}
	return len(p), nil
}

func (g *outputGuard) fail(err error) {
	g.once.Do(func() {
		g.err = err
		close(g.gone)
	})
}

// Gone returns a channel closed once the output has gone away.
func (g *outputGuard) Gone() <-chan struct{} { return g.gone }

// Err reports why the output went away, nil while it is there. It checks
// the pipe once more, so a reader that exited after the last write is
// noticed too.
func (g *outputGuard) Err() error {
	if g.fd >= 0 && readerClosed(g.fd, 0) {
		g.fail(errReaderGone)
	}
	select {
	case <-g.gone:
		return g.err
	default:
		return nil
	}
}

// Close ends the watcher.
func (g *outputGuard) Close() {
	close(g.stop)
	g.wg.Wait()
}

func (g *outputGuard) watch() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.gone:
			return
		default:
		}
		if readerClosed(g.fd, 200) {
			g.fail(errReaderGone)
			return
		}
	}
}

// readerClosed polls the writing end fd for up to timeoutMs: a pipe whose
// reader is gone reports POLLERR, a socket POLLHUP.
func readerClosed(fd, timeoutMs int) bool {
	fds := []unix.PollFd{{Fd: int32(fd)}}
	n, err := unix.Poll(fds, timeoutMs)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0
}
