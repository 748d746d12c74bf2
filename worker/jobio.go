package worker

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// pipeDrainTimeout bounds how long a finished command job's output is
// still read: a process outside the job's process group that the worker
// cannot kill may hold its pipes open for ever.
const pipeDrainTimeout = 2 * time.Second

// jobIO connects a command job's standard streams through pipes the worker
// owns and copies itself. os/exec would copy them too, but then waiting
// for the job's main process also waits until every process holding the
// pipes has closed them, which a background child may never do.
type jobIO struct {
	stdinW, outR, errR   *os.File
	stdinR, outW, errW   *os.File // the child's ends, closed once it started
	copies               sync.WaitGroup
	stdin                []byte
	stdout, stderr       io.Writer
	closeOnce, childOnce sync.Once
}

// newJobIO makes the pipes and sets them as cmd's standard streams: stdin
// delivers stdin, and the job's output goes to stdout and stderr. A stdout
// that is a file (the worker's own stdout) is handed to the job as it is.
func newJobIO(cmd *exec.Cmd, stdin []byte, stdout, stderr io.Writer) (*jobIO, error) {
	j := &jobIO{stdin: stdin, stdout: stdout, stderr: stderr}
	var err error
	if j.stdinR, j.stdinW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	cmd.Stdin, cmd.Stdout = j.stdinR, stdout
	if _, isFile := stdout.(*os.File); !isFile {
		if j.outR, j.outW, err = os.Pipe(); err != nil {
			j.closeAll()
			return nil, fmt.Errorf("stdout pipe: %w", err)
		}
		cmd.Stdout = j.outW
	}
	if j.errR, j.errW, err = os.Pipe(); err != nil {
		j.closeAll()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	cmd.Stderr = j.errW
	return j, nil
}

// started closes the child's ends of the pipes in the worker and starts
// feeding stdin and copying the output. Call it once the command started.
func (j *jobIO) started() {
	j.closeChildEnds()
	j.copies.Add(2)
	go func() {
		defer j.copies.Done()
		// A job that does not read all of its stdin is not an error: the
		// write ends with EPIPE, or when finish closes the pipe.
		_, _ = j.stdinW.Write(j.stdin)
		_ = j.stdinW.Close()
	}()
	if j.outR != nil {
		j.copies.Add(1)
		go func() {
			defer j.copies.Done()
			_, _ = io.Copy(j.stdout, j.outR)
		}()
	}
	go func() {
		defer j.copies.Done()
		_, _ = io.Copy(j.stderr, j.errR)
	}()
}

// finish stops feeding stdin and waits until the output has been copied
// up to the end, or for at most drain; then it closes the pipes, which
// ends the copies. Call it once the job's processes are gone.
func (j *jobIO) finish(drain time.Duration) {
	_ = j.stdinW.Close()
	done := make(chan struct{})
	go func() {
		j.copies.Wait()
		close(done)
	}()
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	j.closeAll()
	<-done
}

func (j *jobIO) closeChildEnds() {
	j.childOnce.Do(func() {
		for _, f := range []*os.File{j.stdinR, j.outW, j.errW} {
			if f != nil {
				_ = f.Close()
			}
		}
	})
}

// closeAll closes every pipe end; Read and Write calls in progress on the
// worker's ends return.
func (j *jobIO) closeAll() {
	j.closeChildEnds()
	j.closeOnce.Do(func() {
		for _, f := range []*os.File{j.stdinW, j.outR, j.errR} {
			if f != nil {
				_ = f.Close()
			}
		}
	})
}
