package shell

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	prompt "github.com/c-bata/go-prompt"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// LineReader is where the shell's commands come from: a script on a pipe
// or a person at a terminal.
type LineReader interface {
	// ReadLine returns the next command line, or io.EOF at the end.
	ReadLine() (string, error)
	// LineNo is the number of the line last returned (1-based).
	LineNo() int
	// Interrupt makes a pending or future ReadLine return io.EOF; it may be
	// called from any goroutine.
	Interrupt()
	Close() error
}

// MaxLineBytes bounds one command line read from a pipe.
const MaxLineBytes = 64 << 10

// scanReader reads a script. Lines are read by a goroutine so that
// Interrupt can end a ReadLine blocked on a silent pipe.
type scanReader struct {
	lines chan scanned
	intr  chan struct{}
	once  sync.Once
	n     int
}

type scanned struct {
	line string
	err  error
}

func newScanReader(r io.Reader) *scanReader {
	sr := &scanReader{lines: make(chan scanned), intr: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), MaxLineBytes)
		for sc.Scan() {
			select {
			case sr.lines <- scanned{line: sc.Text()}:
			case <-sr.intr:
				return
			}
		}
		err := sc.Err()
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes; stopping", MaxLineBytes)
		} else if err == nil {
			err = io.EOF
		}
		select {
		case sr.lines <- scanned{err: err}:
		case <-sr.intr:
		}
	}()
	return sr
}

func (r *scanReader) ReadLine() (string, error) {
	select {
	case <-r.intr:
		return "", io.EOF
	default:
	}
	select {
	case l := <-r.lines:
		if l.err == nil {
			r.n++
		} else if l.err != io.EOF {
			r.n++
		}
		return l.line, l.err
	case <-r.intr:
		return "", io.EOF
	}
}

func (r *scanReader) LineNo() int  { return r.n }
func (r *scanReader) Interrupt()   { r.once.Do(func() { close(r.intr) }) }
func (r *scanReader) Close() error { r.Interrupt(); return nil }

// openTTY returns the controlling terminal when the shell should use the
// interactive prompt: stdin and stdout are terminals, TERM is not "dumb",
// /dev/tty opens, and --no-prompt was not given. go-prompt panics without a
// controlling terminal and ignores piped input, so it is never constructed
// otherwise.
func openTTY(opts Options) *os.File {
	if opts.NoPrompt || os.Getenv("TERM") == "dumb" {
		return nil
	}
	in, ok := opts.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil
	}
	out, ok := opts.Stdout.(*os.File)
	if !ok || !term.IsTerminal(int(out.Fd())) {
		return nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	return tty
}

// ttyParser is go-prompt's input: raw mode on the terminal, with the
// terminal state restored from a copy taken before the prompt ever ran
// (go-prompt v0.2.6's own restore re-applies raw mode).
type ttyParser struct {
	fd    int
	saved *term.State

	lastCtrlD atomic.Bool // the last chunk read was a lone Ctrl-D
	intr      atomic.Bool
	redraw    atomic.Bool // hand go-prompt a key that only redraws the prompt
	injected  atomic.Int32

	// Pasted input: go-prompt takes each read chunk as one key or as text,
	// so each key must reach it on its own (firstKey). After a line end,
	// reads return nothing until the next line is asked for (release):
	// go-prompt's reading goroutine from the finished line may still call
	// Read once, and what it got would be lost.
	mu      sync.Mutex
	pending []byte // next bytes to hand out
	held    []byte // bytes after a line end, kept for the next line
	holding bool   // a line end was handed out; wait for release
}

// release lets the next line read the bytes held after a line end.
func (t *ttyParser) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.holding = false
	t.pending = append(t.held, t.pending...)
	t.held = nil
}

func (t *ttyParser) Setup() error {
	if err := syscall.SetNonblock(t.fd, true); err != nil {
		return err
	}
	tio, err := unix.IoctlGetTermios(t.fd, unix.TCGETS)
	if err != nil {
		return err
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Lflag &^= unix.ECHO | unix.ICANON | unix.IEXTEN | unix.ISIG | unix.ECHONL
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN] = 1
	tio.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(t.fd, unix.TCSETS, tio)
}

func (t *ttyParser) TearDown() error {
	if err := syscall.SetNonblock(t.fd, false); err != nil {
		return err
	}
	return term.Restore(t.fd, t.saved)
}

func (t *ttyParser) GetWinSize() *prompt.WinSize {
	ws, err := unix.IoctlGetWinsize(t.fd, unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return &prompt.WinSize{Row: 24, Col: 80}
	}
	return &prompt.WinSize{Row: ws.Row, Col: ws.Col}
}

// redrawKey is a key go-prompt knows and ignores (Ignore, xterm's
// "\x1b[E"): it just renders the prompt again, below a message printed
// over it.
var redrawKey = []byte{0x1b, 0x5b, 0x45}

// requestRedraw makes go-prompt draw the prompt again; it may be called
// from any goroutine.
func (t *ttyParser) requestRedraw() { t.redraw.Store(true) }

// interruptKeys end the current input: end of line, kill to start of line,
// then Ctrl-D on the now empty line.
var interruptKeys = [][]byte{{0x05}, {0x15}, {0x04}}

func (t *ttyParser) Read() ([]byte, error) {
	if t.intr.Load() {
		i := t.injected.Add(1) - 1
		b := interruptKeys[min(int(i), len(interruptKeys)-1)]
		t.lastCtrlD.Store(b[0] == 0x04)
		return b, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holding {
		return nil, syscall.EAGAIN // go-prompt ignores read errors and polls again
	}
	if t.redraw.CompareAndSwap(true, false) {
		t.lastCtrlD.Store(false)
		return redrawKey, nil
	}
	var chunk []byte
	if len(t.pending) > 0 {
		chunk, t.pending = t.pending, nil
	} else {
		buf := make([]byte, 1024)
		n, err := syscall.Read(t.fd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return nil, io.EOF
		}
		chunk = buf[:n]
	}
	if chunk[0] == '\r' || chunk[0] == '\n' {
		t.held = append(t.held, chunk[1:]...)
		t.holding = true
		chunk = chunk[:1]
	} else if n := firstKey(chunk); n < len(chunk) {
		t.pending = chunk[n:] // one key per read: see firstKey
		chunk = chunk[:n]
	}
	t.lastCtrlD.Store(len(chunk) == 1 && chunk[0] == 0x04)
	return chunk, nil
}

// promptReader reads lines with go-prompt. It uses Prompt.Input, one line
// at a time, never Prompt.Run: Input installs no signal handler (Run's
// calls os.Exit on SIGINT/SIGTERM/SIGQUIT) and returns to us after every
// line, so the terminal is put back in cooked mode before each command.
type promptReader struct {
	p      *prompt.Prompt
	parser *ttyParser
	hist   *history
	n      int
}

func newPromptReader(tty *os.File, saved *term.State, s *Session, hist *history) *promptReader {
	parser := &ttyParser{fd: int(tty.Fd()), saved: saved}
	p := prompt.New(func(string) {}, s.complete,
		prompt.OptionParser(parser),
		prompt.OptionPrefix(">> "),
		prompt.OptionPrefixTextColor(prompt.DefaultColor),
		prompt.OptionHistory(hist.lines),
		prompt.OptionMaxSuggestion(8),
	)
	return &promptReader{p: p, parser: parser, hist: hist}
}

func (r *promptReader) ReadLine() (string, error) {
	if r.parser.intr.Load() {
		return "", io.EOF
	}
	r.parser.lastCtrlD.Store(false)
	r.parser.release()
	line := r.p.Input()
	// Cooked mode for the command, whatever go-prompt did.
	_ = term.Restore(r.parser.fd, r.parser.saved)
	if line == "" && (r.parser.lastCtrlD.Load() || r.parser.intr.Load()) {
		return "", io.EOF
	}
	r.n++
	r.hist.add(line)
	return line, nil
}

func (r *promptReader) LineNo() int  { return r.n }
func (r *promptReader) Interrupt()   { r.parser.intr.Store(true) }
func (r *promptReader) Close() error { return term.Restore(r.parser.fd, r.parser.saved) }

// history is the persistent command history: $XDG_STATE_HOME/poolctl/history
// (else ~/.local/state/poolctl/history), at most historyMax lines kept.
type history struct {
	path  string
	lines []string
}

const historyMax = 1000

func historyPath() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "poolctl", "history")
}

func loadHistory(path string) *history {
	h := &history{path: path}
	if path == "" {
		return h
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return h
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != "" {
			h.lines = append(h.lines, l)
		}
	}
	if len(h.lines) > historyMax {
		h.lines = h.lines[len(h.lines)-historyMax:]
		_ = os.WriteFile(path, []byte(strings.Join(h.lines, "\n")+"\n"), 0o600)
	}
	return h
}

func (h *history) add(line string) {
	if strings.TrimSpace(line) == "" || strings.ContainsAny(line, "\n\r") {
		return
	}
	if n := len(h.lines); n > 0 && h.lines[n-1] == line {
		return
	}
	h.lines = append(h.lines, line)
	if h.path == "" {
		return
	}
	if len(h.lines) > 2*historyMax {
		h.lines = h.lines[len(h.lines)-historyMax:]
		_ = os.WriteFile(h.path, []byte(strings.Join(h.lines, "\n")+"\n"), 0o600)
		return
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintln(f, line)
	f.Close()
}
