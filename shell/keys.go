package shell

import (
	"bytes"

	prompt "github.com/c-bata/go-prompt"
)

// firstKey is the length of the first key in b (not empty), as go-prompt
// must be handed it: go-prompt takes each read as one key if it knows the
// bytes, and otherwise inserts them all as text. A terminal hands over in
// one read whatever was typed while the shell was busy (a loaded host, or
// ssh sending several keystrokes in one packet), so "bogus", Ctrl-C,
// "exit" came as "bogus\x03exit": a command, not a cleared line.
//
// A key is a control byte, an escape sequence, or a run of text up to the
// next control byte (text may be UTF-8; keeping it whole keeps a pasted
// word one insertion).
func firstKey(b []byte) int {
	switch c := b[0]; {
	case c == 0x1b:
		return escapeLen(b)
	case isControl(c):
		return 1
	}
	n := 1
	for n < len(b) && !isControl(b[n]) {
		n++
	}
	return n
}

func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

// escapeLen is the length of the escape sequence at the start of b: the
// longest one go-prompt knows (its table has a few that follow no
// grammar, such as "\x1b0H" for Home), else a CSI sequence (ESC [ then
// parameter and intermediate bytes up to a final byte; the Linux
// console's function keys add a second '['), else an SS3 one (ESC O and
// one byte), else ESC alone. A sequence cut short by the end of the read
// is handed out as it is, as before.
func escapeLen(b []byte) int {
	known := 0
	for _, k := range prompt.ASCIISequences {
		if len(k.ASCIICode) > known && bytes.HasPrefix(b, k.ASCIICode) {
			known = len(k.ASCIICode)
		}
	}
	if known > 1 {
		return known
	}
	if len(b) < 2 {
		return 1
	}
	switch b[1] {
	case '[':
		i := 2
		if i < len(b) && b[i] == '[' {
			i++
		}
		for i < len(b) && b[i] >= 0x20 && b[i] <= 0x3f {
			i++
		}
		if i < len(b) && b[i] >= 0x40 && b[i] <= 0x7e {
			i++
		}
		return i
	case 'O':
		return min(3, len(b))
	}
	return 1
}
