package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	errUsage := errors.New("usage error")
	tests := []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{fmt.Errorf("%w: bad flag", errUsage), 2, "prog: usage error: bad flag\n"},
		{errors.New("boom"), 1, "prog: boom\n"},
		{fmt.Errorf("wrapped: %w", statusErr{3}), 3, "prog: wrapped: status 3\n"},
		{statusErr{0}, 1, "prog: status 0\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if got := ExitCode(tt.err, "prog", &b, errUsage); got != tt.code || b.String() != tt.out {
			t.Errorf("ExitCode(%v) = %d, %q; want %d, %q", tt.err, got, b.String(), tt.code, tt.out)
		}
	}
}

type statusErr struct{ n int }

func (e statusErr) Error() string   { return fmt.Sprintf("status %d", e.n) }
func (e statusErr) ExitStatus() int { return e.n }
