package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/shell/topview"
)

// The terminal screen of top. Bubble Tea owns the terminal only while
// top runs, and go-prompt never at the same time: the shell reads a line
// with Prompt.Input, whose reading goroutine has been told to stop, and
// has received that, before Input returns (go-prompt v0.2.6 sends on an
// unbuffered channel that the reader receives from between reads), and
// the shell restores the cooked terminal before it runs the command. Bubble
// Tea then puts the terminal in raw mode and the alternate screen, and
// restores both before Program.Run returns; the prompt comes back after
// that.
//
// Bubble Tea v2, not v1: v1.3.10's package init queries every terminal
// for its background colour (OSC 11) before main runs, in every poolctl
// command, and waits 5 s for a terminal that does not answer, reading the
// keys typed meanwhile (charmbracelet/bubbletea#1771). v2 queries nothing
// at init.
//
// The screen's model reads files only; everything that acts on the
// session (config, reload, signals) runs on the command's goroutine,
// which the model asks through a channel, so the session is never used
// from two goroutines.

// topLogLines is how many log lines the screen reads.
const topLogLines = 8

type (
	topTickMsg   struct{}
	topDataMsg   topData
	topResultMsg struct {
		text  string
		err   error
		marks map[int]pauseMark
	}
)

// topModel is top's screen.
type topModel struct {
	pool     poolfs.Pool
	logPath  string
	interval time.Duration
	count    int // quit after this many new samples (0: never)
	frames   int
	lastTS   time.Time

	in      topview.Input
	data    topData
	marks   map[int]pauseMark
	actions chan<- topAction
	pending int     // actions asked for and not finished
	first   tea.Cmd // what the reading before the first screen asked for
}

func (m *topModel) fetch() tea.Cmd {
	pool, logPath := m.pool, m.logPath
	return func() tea.Msg { return topDataMsg(readTopData(pool, logPath, topLogLines)) }
}

func (m *topModel) tick() tea.Cmd {
	return tea.Tick(m.interval, func(time.Time) tea.Msg { return topTickMsg{} })
}

// Init implements tea.Model.
func (m *topModel) Init() tea.Cmd { return tea.Batch(m.first, m.fetch(), m.tick()) }

// Update implements tea.Model.
func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.in.Width, m.in.Height = msg.Width, msg.Height
	case topTickMsg:
		return m, tea.Batch(m.fetch(), m.tick())
	case topDataMsg:
		return m, m.apply(topData(msg))
	case topResultMsg:
		m.pending--
		m.marks = msg.marks
		m.in.Message, m.in.Error = msg.text, msg.err != nil
		if msg.err != nil {
			m.in.Message = msg.err.Error()
		}
		return m, m.fetch()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// apply takes a new reading of the runtime directory.
func (m *topModel) apply(d topData) tea.Cmd {
	var cmds []tea.Cmd
	if d.masterPID != m.data.masterPID && m.data.masterPID != 0 {
		// The shell has announced the master's end over the screen:
		// draw it all again.
		cmds = append(cmds, tea.ClearScreen)
	}
	m.data = d
	m.in.Now = time.Now()
	m.in.MasterPID, m.in.State, m.in.Sample, m.in.SampleErr, m.in.Log = d.masterPID, d.state, d.sample, d.sampleErr, d.log
	m.in.Paused = pausedWorkers(d.state, m.marks)
	m.in.Selected = m.selection(0)
	if fresh, _ := topview.Freshness(d.sample, d.masterPID, m.in.Now, m.in.WatchingSince); fresh && d.sample.TS.After(m.lastTS) {
		m.lastTS = d.sample.TS
		if m.frames++; m.count > 0 && m.frames >= m.count {
			cmds = append(cmds, tea.Quit)
		}
	}
	return tea.Batch(cmds...)
}

// selection is the queue list move steps away from the selected one (the
// first when none is selected, or the selected one is gone).
func (m *topModel) selection(move int) string {
	if m.in.State == nil || len(m.in.State.Groups) == 0 {
		return m.in.Selected
	}
	groups := m.in.State.Groups
	at := -1
	for i, g := range groups {
		if g.Queues == m.in.Selected {
			at = i
		}
	}
	if at < 0 {
		return groups[0].Queues
	}
	at = min(max(at+move, 0), len(groups)-1)
	return groups[at].Queues
}

// key handles a key press.
func (m *topModel) key(k tea.KeyPressMsg) tea.Cmd {
	key := k.String()
	if k.Text != "" {
		key = k.Text // "+" whatever the keyboard needed to type it
	}
	switch key {
	case "q", "Q", "esc", "ctrl+c":
		return tea.Quit
	case "up", "k":
		m.in.Selected = m.selection(-1)
	case "down", "j":
		m.in.Selected = m.selection(1)
	case "+", "=", "-", "_", "p", "r":
		a := topAction{key: key, list: m.in.Selected}
		switch key {
		case "=":
			a.key = "+"
		case "_":
			a.key = "-"
		}
		select {
		case m.actions <- a:
			m.pending++
			m.in.Message, m.in.Error = fmt.Sprintf("%s %s …", a.key, a.list), false
			if a.key == "r" {
				m.in.Message = "reloading …"
			}
		default:
			m.in.Message, m.in.Error = "busy: wait for the last keys to be done", true
		}
	}
	return nil
}

// topStyles draw the view's line styles.
var topStyles = map[topview.Style]lipgloss.Style{
	topview.Title:    lipgloss.NewStyle().Bold(true),
	topview.Heading:  lipgloss.NewStyle().Bold(true),
	topview.Selected: lipgloss.NewStyle().Reverse(true),
	topview.Warning:  lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("3")),
	topview.Dim:      lipgloss.NewStyle().Faint(true),
}

// View implements tea.Model.
func (m *topModel) View() tea.View {
	lines := topview.Render(m.in)
	width := m.in.Width
	if width <= 0 {
		width = topview.DefaultWidth
	}
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		st, ok := topStyles[l.Style]
		if !ok {
			b.WriteString(l.Text)
			continue
		}
		text := l.Text
		if l.Style == topview.Selected {
			text = topview.Pad(text, width) // a bar across the screen
		}
		b.WriteString(st.Render(text))
	}
	v := tea.NewView(b.String())
	v.AltScreen = true
	v.WindowTitle = "poolctl top " + m.pool.Name()
	return v
}

// topScreen runs top's screen on the terminal until q, Esc or Ctrl-C, or
// until ctx ends; the keys' actions run here, on the command's goroutine.
func (s *Session) topScreen(ctx context.Context, o topOptions) error {
	in, ok := s.opts.Stdin.(*os.File)
	if !ok {
		return errors.New("top: standard input is not a terminal")
	}
	var out io.Writer = s.opts.Stdout
	actions := make(chan topAction, 8)
	m := &topModel{
		pool: s.pool(), logPath: s.logPath, interval: o.interval, count: o.count,
		marks: s.marksCopy(), actions: actions,
		in: topview.Input{Pool: s.paths.Name, Now: time.Now(), WatchingSince: time.Now()},
	}
	defer keepWanting(s.paths.Sample, o.interval)()
	m.first = m.apply(readTopData(m.pool, m.logPath, topLogLines)) // the first screen shows the pool, not an empty one
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out),
		// The shell owns the signals: SIGINT cannot come from a raw
		// terminal (Ctrl-C is a key), and SIGTERM/SIGHUP end the command's
		// context, which ends the program.
		tea.WithoutSignalHandler())
	done := make(chan error, 1)
	go func() {
		_, err := p.Run()
		done <- err
	}()
	for {
		select {
		case a := <-actions:
			text, err := s.topAct(ctx, a)
			p.Send(topResultMsg{text: text, err: err, marks: s.marksCopy()})
		case err := <-done:
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return fmt.Errorf("top: %w", err)
			}
			return nil
		}
	}
}
