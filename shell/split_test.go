package shell

import (
	"errors"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"   \t ", nil, ""},
		{"config foo=2 baz,quux=7", []string{"config", "foo=2", "baz,quux=7"}, ""},
		{"  status   --json  ", []string{"status", "--json"}, ""},
		{`log.tail_until 'started manager' 10`, []string{"log.tail_until", "started manager", "10"}, ""},
		{`log.tail_until "a \"b\" \\c \d"`, []string{"log.tail_until", `a "b" \c \d`}, ""},
		{`a'b c'"d"e`, []string{"ab cde"}, ""},
		{`x '' ""`, []string{"x", "", ""}, ""},
		{`a\ b \'c`, []string{"a b", "'c"}, ""},
		{`'it''s'`, []string{"its"}, ""},
		{`help 'log.tail`, nil, "unterminated single quote (column 6)"},
		{`x "abc`, nil, "unterminated double quote (column 3)"},
		{`x "abc\"`, nil, "unterminated double quote (column 3)"},
		{`x \`, nil, "trailing backslash (column 3)"},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if tt.err != "" {
			var se *SplitError
			if err == nil || err.Error() != tt.err || !errors.As(err, &se) {
				t.Errorf("Split(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestJoinRoundTrip(t *testing.T) {
	for _, words := range [][]string{
		{"a"}, {"a b", "c"}, {"it's", `"q"`, `back\slash`}, {"", "x"}, {"tab\there", "nl\nhere"},
	} {
		got, err := Split(Join(words))
		if err != nil || !reflect.DeepEqual(got, words) {
			t.Errorf("Split(Join(%q)) = %q, %v", words, got, err)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, seed := range []string{
		"", "config foo=2", `a'b c'"d"`, `"x\"y"`, `'`, `"`, `\`, `a\ b`, "x\ty", `'' ""`, "\x00\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		words, err := Split(in)
		if err != nil {
			var se *SplitError
			if !errors.As(err, &se) || se.Column < 1 || se.Column > len(in) {
				t.Fatalf("Split(%q): bad error %v", in, err)
			}
			return
		}
		// Re-quoting gives the same words back.
		again, err := Split(Join(words))
		if err != nil {
			t.Fatalf("Split(Join(%q)) failed: %v", words, err)
		}
		if len(again) != len(words) || (len(words) > 0 && !reflect.DeepEqual(again, words)) {
			t.Fatalf("Split(%q) = %q, but Split(Join) = %q", in, words, again)
		}
	})
}
