package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	prompt "github.com/c-bata/go-prompt"
)

// newTestSession is a shell on a pool that is not started, with its
// runtime directory and log in temporary directories.
func newTestSession(t *testing.T, specs ...string) (*Session, *bytes.Buffer) {
	t.Helper()
	t.Setenv("POOLCTL_RUNTIME_DIR", t.TempDir())
	t.Setenv("REDIS_URL", "")
	var out bytes.Buffer
	s, err := NewSession(Options{
		Name: "unit", Specs: specs, NoStart: true,
		Log: filepath.Join(t.TempDir(), "pool.log"), Stdout: &out, Stderr: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, &out
}

func TestExec(t *testing.T) {
	tests := []struct {
		line string
		out  string // exact stdout; "*" = do not check
		err  string // exact error text, "" = success
	}{
		{"", "", ""},
		{"   ", "", ""},
		{"# a comment", "", ""},
		{"  # indented comment", "", ""},
		{"config", "foo=2\n", ""},
		{"config bar=3 foo=0", "bar=3\n", ""},
		{"config baz,quux=7:bar=1", "foo=2:baz,quux=7:bar=1\n", ""},
		{"config x=y", "", `spec: argument 1: entry 1 "x=y" (column 1): count "y" is not a non-negative integer`},
		{"config foo=1 foo=2", "", `spec: argument 2: entry 1 "foo=2" (column 1): queue list "foo" appears twice`},
		{"frobnicate", "", `unknown command "frobnicate"; type help for the list of commands`},
		{"Config", "", `unknown command "Config"; type help for the list of commands`},
		{"pid", "", "pool unit: the master is not running (use start)"},
		{"reload", "", "pool unit: the master is not running (use start)"},
		{"stop", "", "pool unit: the master is not running (use start)"},
		{"stop!", "", "pool unit: the master is not running (use start)"},
		{"kill!", "", "pool unit: the master is not running (use start)"},
		{"kill! FOO", "", `unknown signal "FOO" (use a number or one of ALRM CONT HUP INT KILL QUIT STOP TERM TSTP TTIN TTOU USR1 USR2 WINCH)`},
		{"kill! 99", "", "signal number 99 out of range 1-64"},
		{"kill! TERM INT", "", "kill!: too many arguments (usage: kill! [SIGNAL])"},
		{"pstree", "", "pool unit: the master is not running (use start)"},
		{"wait", "", "wait: pool unit: the master is not running (use start)"},
		{"wait 1x", "", `invalid timeout "1x" (seconds, or a duration such as 1m30s)`},
		{"wait -3", "", `timeout "-3" out of range`},
		{"wait 1 2", "", "wait: too many arguments (usage: wait [TIMEOUT])"},
		{"status --xml", "", `status: unknown option "--xml" (usage: status [--json])`},
		{"log.tail x", "", `log.tail: N must be a non-negative integer, not "x"`},
		{"log.tail_until", "", "log.tail_until: missing argument (usage: log.tail_until REGEXP [TIMEOUT])"},
		{"log.tail_until (", "", "log.tail_until: invalid REGEXP: error parsing regexp: missing closing ): `(`"},
		{"log.tail_until x 1y", "", `invalid timeout "1y" (seconds, or a duration such as 1m30s)`},
		{"help nope", "", `help: unknown command "nope"; type help for the list of commands`},
		{"help a b", "", "help: too many arguments (usage: help [COMMAND])"},
		{"attach", "", "attach: missing argument (usage: attach NAME)"},
		{"attach nope", "", `pool "nope" is not running (poolctl list shows the running pools)`},
		{"attach ../x", "", `invalid pool name "../x": use 1-64 letters, digits, '_', '-' or '.'`},
		{"has_log?", "false\n", ""},
		{"config 'foo=1", "", "unterminated single quote (column 8)"},
		{`config "foo=1`, "", "unterminated double quote (column 8)"},
		{`config foo=1 \`, "", "trailing backslash (column 14)"},
		{"config_path x", "", "config_path: too many arguments (usage: config_path)"},
		{"exit now", "", "exit: too many arguments (usage: exit)"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			s, out := newTestSession(t, "foo=2")
			err := s.Exec(context.Background(), tt.line)
			if tt.err == "" && err != nil {
				t.Fatalf("Exec(%q) error: %v", tt.line, err)
			}
			if tt.err != "" && (err == nil || err.Error() != tt.err) {
				t.Fatalf("Exec(%q) error = %v, want %q", tt.line, err, tt.err)
			}
			if tt.out != "*" && out.String() != tt.out {
				t.Fatalf("Exec(%q) printed %q, want %q", tt.line, out.String(), tt.out)
			}
		})
	}
}

func TestInvalidConfigChangesNothing(t *testing.T) {
	s, out := newTestSession(t, "foo=2:bar=1")
	for _, line := range []string{"config foo=3 x=-1", "config foo=3 'a b=1'", "config foo=1001"} {
		if err := s.Exec(context.Background(), line); err == nil {
			t.Fatalf("%s: no error", line)
		}
	}
	out.Reset()
	if err := s.Exec(context.Background(), "config"); err != nil || out.String() != "foo=2:bar=1\n" {
		t.Fatalf("config after bad updates = %q, %v", out.String(), err)
	}
}

func TestUnknownCommandIsErrUnknownCommand(t *testing.T) {
	s, _ := newTestSession(t)
	if err := s.Exec(context.Background(), "nope"); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("err = %v", err)
	}
	var ue *UsageError
	if err := s.Exec(context.Background(), "wait 1 2"); !errors.As(err, &ue) || ue.Cmd.Name != "wait" {
		t.Fatalf("err = %v, want a UsageError for wait", err)
	}
}

func TestHelpForEveryCommand(t *testing.T) {
	s, out := newTestSession(t)
	names := map[string]bool{}
	for _, c := range Commands() {
		if names[c.Name] {
			t.Errorf("command %s appears twice", c.Name)
		}
		names[c.Name] = true
		if c.Summary == "" || c.Help == "" || c.Run == nil {
			t.Errorf("command %s lacks a summary, help or handler", c.Name)
		}
		for _, name := range append([]string{c.Name}, c.Aliases...) {
			out.Reset()
			if err := s.Exec(context.Background(), "help "+Quote(name)); err != nil {
				t.Fatalf("help %s: %v", name, err)
			}
			got := out.String()
			if !strings.HasPrefix(got, "usage: "+c.Usage()+"\n") || !strings.Contains(got, c.Summary) || !strings.Contains(got, c.Help) {
				t.Errorf("help %s printed %q", name, got)
			}
		}
	}
	// Every command the issue names is in the table.
	for _, n := range []string{"config", "config_path", "write_config", "reload", "start", "start!", "stop", "stop!",
		"kill!", "pid", "status", "pstree", "log", "log_path", "has_log?", "log.tail", "log.tail_until",
		"log.tail_to_eof", "log.ff", "log.rew", "log.rewind", "wait", "help", "exit", "quit", "detach", "attach"} {
		if Lookup(n) == nil {
			t.Errorf("command %s missing", n)
		}
	}
	out.Reset()
	if err := s.Exec(context.Background(), "help"); err != nil {
		t.Fatal(err)
	}
	for _, c := range Commands() {
		if !strings.Contains(out.String(), "  "+c.Usage()) {
			t.Errorf("help index lacks %s", c.Usage())
		}
	}
	if !strings.Contains(out.String(), "NO_START=1") {
		t.Errorf("help index does not document NO_START")
	}
}

func TestLeaveCommands(t *testing.T) {
	for line, want := range map[string]leaveMode{"exit": leaveExit, "quit": leaveExit, "detach": leaveDetach} {
		s, _ := newTestSession(t)
		if err := s.Exec(context.Background(), line); err != nil || s.leave != want {
			t.Errorf("%s: leave = %v, %v", line, s.leave, err)
		}
	}
}

func TestParseSignalAndTimeout(t *testing.T) {
	for in, want := range map[string]int{"TERM": 15, "term": 15, "SIGUSR2": 12, "sigkill": 9, "1": 1, "64": 64} {
		sig, err := ParseSignal(in)
		if err != nil || int(sig) != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, sig, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "SIGFOO", "-1"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) accepted", in)
		}
	}
	for in, want := range map[string]time.Duration{"10": 10 * time.Second, "2.5": 2500 * time.Millisecond, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond} {
		d, err := ParseTimeout(in)
		if err != nil || d != want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1s", "1e9"} {
		if _, err := ParseTimeout(in); err == nil {
			t.Errorf("ParseTimeout(%q) accepted", in)
		}
	}
}

func TestLogCommands(t *testing.T) {
	s, out := newTestSession(t)
	write := func(text string) {
		f, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	run := func(line, want string) {
		t.Helper()
		out.Reset()
		if err := s.Exec(context.Background(), line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if out.String() != want {
			t.Fatalf("%s printed %q, want %q", line, out.String(), want)
		}
	}
	if err := s.Exec(context.Background(), "log.tail"); err == nil {
		t.Fatal("log.tail on a missing log: no error")
	}
	write("one\ntwo\nthree\nfour\npartial")
	run("has_log?", "true\n")
	run("log_path", s.logPath+"\n")
	run("log.tail 2", "three\nfour\n") // not following in a script
	run("log.tail_to_eof", "")         // the cursor is after "four"
	write(" line\nfive\n")
	run("log.tail_to_eof", "partial line\nfive\n")
	run("log.rew", "")
	run("log.tail_to_eof", "one\ntwo\nthree\nfour\npartial line\nfive\n")
	write("six\n")
	run("log.ff", "")
	run("log.tail_to_eof", "")
	write("seven\n")
	run("log.rewind", "")
	run("log.tail_until f..r", "one\ntwo\nthree\nfour\n")
	run("log.tail_to_eof", "partial line\nfive\nsix\nseven\n")
	run("log", "one\ntwo\nthree\nfour\npartial line\nfive\nsix\nseven\n")

	// tail_until with a timeout that expires is an error.
	start := time.Now()
	err := s.Exec(context.Background(), "log.tail_until nomatch 0.3")
	if err == nil || err.Error() != `log.tail_until: no line matched "nomatch" within 300ms` {
		t.Fatalf("tail_until timeout: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("tail_until took %v", time.Since(start))
	}
	// It sees lines written while it follows.
	done := make(chan error, 1)
	out.Reset()
	go func() { done <- s.Exec(context.Background(), "log.tail_until '^eight$' 20") }()
	write("eight\n")
	if err := <-done; err != nil {
		t.Fatalf("tail_until eight: %v", err)
	}
	if out.String() != "eight\n" {
		t.Fatalf("tail_until printed %q", out.String())
	}
}

func TestStatusJSONStopped(t *testing.T) {
	s, out := newTestSession(t, "foo=2:bar,baz=1")
	if err := s.Exec(context.Background(), "status --json"); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"state", "pid", "config", "workers", "queues", "processed", "failed", "spec", "groups", "redis_error"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status --json lacks %q: %s", k, out)
		}
	}
	if m["state"] != "stopped" || m["pid"] != float64(0) || m["processed"] != nil {
		t.Errorf("unexpected values: %s", out)
	}
	if !reflect.DeepEqual(m["config"], map[string]any{"foo": float64(2), "bar,baz": float64(1)}) {
		t.Errorf("config = %v", m["config"])
	}
	out.Reset()
	if err := s.Exec(context.Background(), "status"); err != nil {
		t.Fatal(err)
	}
	want := "pool unit: not running\nconfig: foo=2:bar,baz=1 (3 workers)\nqueues: unavailable: no Redis configured\n"
	if out.String() != want {
		t.Errorf("status printed %q, want %q", out.String(), want)
	}
}

func TestWriteConfig(t *testing.T) {
	s, out := newTestSession(t, "foo=2")
	if err := s.Exec(context.Background(), "config bar=1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(context.Background(), "write_config"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "wrote "+s.paths.Config) {
		t.Fatalf("write_config printed %q", out)
	}
	data, err := os.ReadFile(s.paths.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "foo: 2") || !strings.Contains(string(data), "bar: 1") {
		t.Fatalf("config file:\n%s", data)
	}
}

func TestCompletion(t *testing.T) {
	s, _ := newTestSession(t, "foo=2:bar,baz=1")
	complete := func(text string) []string {
		b := prompt.NewBuffer()
		b.InsertText(text, false, true)
		var got []string
		for _, sg := range s.complete(*b.Document()) {
			got = append(got, sg.Text)
		}
		sort.Strings(got)
		return got
	}
	tests := map[string][]string{
		"":               nil,
		"pst":            {"pstree"},
		"log.r":          {"log.rew", "log.rewind"},
		"sta":            {"start", "start!", "status"},
		"kill! US":       {"USR1", "USR2"},
		"help log.tail":  {"log.tail", "log.tail_to_eof", "log.tail_until"},
		"config f":       {"foo="},
		"config foo=1 b": {"bar=", "baz="},
		"config foo,b":   {"foo,bar=", "foo,baz="},
		"config foo=":    nil,
		"status --":      {"--json"},
		"nope x":         nil,
	}
	for text, want := range tests {
		if got := complete(text); !reflect.DeepEqual(got, want) {
			t.Errorf("complete(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestHistoryBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "poolctl", "history")
	h := loadHistory(path)
	for i := 0; i < 2*historyMax+5; i++ {
		h.add("status " + strings.Repeat("x", i%7))
		h.add("config foo=" + string(rune('0'+i%10)))
	}
	h.add("")
	h2 := loadHistory(path)
	if len(h2.lines) > historyMax || len(h2.lines) == 0 {
		t.Fatalf("history has %d lines", len(h2.lines))
	}
	if last := h2.lines[len(h2.lines)-1]; last != h.lines[len(h.lines)-1] {
		t.Fatalf("last history line %q, want %q", last, h.lines[len(h.lines)-1])
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n > 2*historyMax {
		t.Fatalf("history file has %d lines", n)
	}
}

func TestHistoryPath(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/xdg")
	if p := historyPath(); p != "/xdg/poolctl/history" {
		t.Fatalf("historyPath = %s", p)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if p := historyPath(); p != "/home/u/.local/state/poolctl/history" {
		t.Fatalf("historyPath = %s", p)
	}
}

func TestRunScriptNoStart(t *testing.T) {
	t.Setenv("POOLCTL_RUNTIME_DIR", t.TempDir())
	t.Setenv("REDIS_URL", "")
	var out, errb bytes.Buffer
	err := Run(context.Background(), Options{
		Name: "script", Specs: []string{"foo=1"}, NoStart: true,
		Stdin:  strings.NewReader("config foo=3\n\n# comment\nbogus\nconfig\nexit\nconfig foo=9\n"),
		Stdout: &out, Stderr: &errb,
	})
	var cf *CommandsFailedError
	if !errors.As(err, &cf) || cf.N != 1 {
		t.Fatalf("Run = %v, want 1 failed command", err)
	}
	// The start-up status and config's confirmation go to stderr in a
	// script; errors follow them.
	if !strings.HasSuffix(errb.String(), "\nfoo=3\npoolctl: line 4: unknown command \"bogus\"; type help for the list of commands\n") ||
		strings.Count(errb.String(), "poolctl: ") != 1 {
		t.Fatalf("stderr = %q", errb.String())
	}
	if strings.Contains(out.String(), "not running") {
		t.Errorf("start-up status on stdout: %q", out.String())
	}
	if out.String() != "foo=3\n" {
		t.Fatalf("stdout = %q (commands after exit must not run)", out.String())
	}
}

func TestRunScriptTooLongLine(t *testing.T) {
	t.Setenv("POOLCTL_RUNTIME_DIR", t.TempDir())
	var out, errb bytes.Buffer
	err := Run(context.Background(), Options{
		Name: "long", NoStart: true,
		Stdin:  strings.NewReader("config foo=1\n" + strings.Repeat("x", MaxLineBytes+10) + "\nconfig foo=2\n"),
		Stdout: &out, Stderr: &errb,
	})
	if err == nil || !strings.Contains(errb.String(), "poolctl: line 2: line longer than 65536 bytes; stopping") {
		t.Fatalf("Run = %v, stderr %q", err, errb.String())
	}
	if strings.Contains(out.String()+errb.String(), "foo=2") {
		t.Fatalf("kept going after the long line: %q", out.String()+errb.String())
	}
}

func TestWrap(t *testing.T) {
	text := `foo FATAL: cannot start: exec: "/a/bbbbbbbbbbbbbbbbbbbb/c": no such file`
	got := wrap(text, 20, "  ", "    ")
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if len(line) > 20 {
			t.Errorf("line %q longer than 20", line)
		}
	}
	if strings.Join(strings.Fields(got), "") != strings.Join(strings.Fields(text), "") {
		t.Errorf("wrap lost text:\n%s", got)
	}
	if wrap("short", 20, "  ", "    ") != "  short\n" {
		t.Errorf("wrap(short) = %q", wrap("short", 20, "  ", "    "))
	}
}
