package shell

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"
)

// readKeys writes input to the parser's descriptor in one write, as a
// loaded host's terminal hands over keys typed while the shell was not
// reading (or ssh sends them), and returns what the parser hands go-prompt
// up to the first line end.
func readKeys(t *testing.T, input string) []string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	if _, err := w.WriteString(input); err != nil {
		t.Fatal(err)
	}
	p := &ttyParser{fd: int(r.Fd())}
	var keys []string
	for len(keys) < 100 {
		b, err := p.Read()
		if errors.Is(err, syscall.EAGAIN) {
			break // holding after a line end
		}
		if err != nil {
			t.Fatalf("read after %q: %v", keys, err)
		}
		keys = append(keys, string(b))
	}
	return keys
}

// go-prompt takes each read as one key or else as text to insert: keys
// that arrive together must reach it one by one, or a Ctrl-C typed
// between "bogus" and "exit" becomes the command "bogus\x03exit" (it did,
// in TestShellPTY under two CPU hogs).
func TestTTYParserHandsOutKeysOneByOne(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"ctrl-c between words", "bogus\x03exit\r", []string{"bogus", "\x03", "exit", "\r"}},
		{"control keys and arrows", "ab\x1b[Acd\x1b[1;5C\x7f\x17\tx\n", []string{"ab", "\x1b[A", "cd", "\x1b[1;5C", "\x7f", "\x17", "\t", "x", "\n"}},
		{"UTF-8 text stays whole", "héllo wörld\x15ok\r", []string{"héllo wörld", "\x15", "ok", "\r"}},
		{"SS3 and unknown CSI", "\x1bOHa\x1b[200~b\x1b[3~\r", []string{"\x1bOH", "a", "\x1b[200~", "b", "\x1b[3~", "\r"}},
		{"go-prompt's odd Home", "\x1b0Hz\r", []string{"\x1b0H", "z", "\r"}},
		{"escape alone", "q\x1b\x1b\r", []string{"q", "\x1b", "\x1b", "\r"}},
		{"line end first", "\rx", []string{"\r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readKeys(t, tc.input); !slices.Equal(got, tc.want) {
				t.Errorf("%q read as %q, want %q", tc.input, got, tc.want)
			}
		})
	}
}

// What follows a line end waits for the next line (release), then comes
// out key by key too.
func TestTTYParserHoldsTheNextLineUntilReleased(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := w.WriteString("pid\rst\x03status\r"); err != nil {
		t.Fatal(err)
	}
	p := &ttyParser{fd: int(r.Fd())}
	next := func() string {
		t.Helper()
		b, err := p.Read()
		if err != nil {
			return "error: " + err.Error()
		}
		return string(b)
	}
	var got []string
	for range 3 {
		got = append(got, next())
	}
	p.release()
	for range 5 {
		got = append(got, next())
	}
	want := []string{"pid", "\r", "error: " + syscall.EAGAIN.Error(), "st", "\x03", "status", "\r", "error: " + syscall.EAGAIN.Error()}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
