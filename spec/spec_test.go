package spec

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("q", 512)
	tests := []struct {
		in   string
		want Spec
	}{
		// Queue names as Ruby producers write them (issue 9 C18).
		{"reports/daily=2:mail:high=1", Spec{{"reports/daily", 2}, {"mail:high", 1}}},
		{"a$b=1:{queues}=1:é,日本語=2", Spec{{"a$b", 1}, {"{queues}", 1}, {"é,日本語", 2}}},
		{`"a"=1:'a'=1`, Spec{{`"a"`, 1}, {"'a'", 1}}},
		{"x:y:z=3", Spec{{"x:y:z", 3}}},
		{"", Spec{}},
		{"   ", Spec{}},
		{"\t \n", Spec{}},
		{"foo=2", Spec{{"foo", 2}}},
		{"foo=2:bar=4", Spec{{"foo", 2}, {"bar", 4}}},
		{"baz,quux,xyzzy=5", Spec{{"baz,quux,xyzzy", 5}}},
		{"*=2", Spec{{"*", 2}}},
		{"high_*=1:*=3", Spec{{"high_*", 1}, {"*", 3}}},
		{"  foo = 2 : bar , baz=3 ", Spec{{"foo", 2}, {"bar,baz", 3}}},
		{"\tfoo\t=\t2\t", Spec{{"foo", 2}}},
		{"foo=0:bar=1", Spec{{"foo", 0}, {"bar", 1}}},
		{"foo=007", Spec{{"foo", 7}}},
		{"foo=1000", Spec{{"foo", 1000}}},
		{"foo=0000", Spec{{"foo", 0}}},
		{"a.b-c_D9=1", Spec{{"a.b-c_D9", 1}}},
		{"foo,bar=1:bar,foo=2", Spec{{"foo,bar", 1}, {"bar,foo", 2}}},
		{"foo=1:foo,bar=2", Spec{{"foo", 1}, {"foo,bar", 2}}},
		{long + "=1", Spec{{long, 1}}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q) error: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("q", 513)
	tests := []struct {
		in   string
		want string
	}{
		{"a:=1", `spec: entry 1 "a:=1" (column 1): queue name "a:" begins or ends with ':', which separates entries`},
		{"a=1:b\x00=1", `spec: entry 2 "b\x00=1" (column 5): queue name "b\x00" contains an invalid character '\x00'`},
		{"foo", `spec: entry 1 "foo" (column 1): missing "="`},
		{"foo=1:bar", `spec: entry 2 "bar" (column 7): missing "="`},
		{"foo=x", `spec: entry 1 "foo=x" (column 1): count "x" is not a non-negative integer`},
		{"foo=", `spec: entry 1 "foo=" (column 1): count "" is not a non-negative integer`},
		{"foo=-1", `spec: entry 1 "foo=-1" (column 1): count "-1" is not a non-negative integer`},
		{"foo=+1", `spec: entry 1 "foo=+1" (column 1): count "+1" is not a non-negative integer`},
		{"foo=1.5", `spec: entry 1 "foo=1.5" (column 1): count "1.5" is not a non-negative integer`},
		{"foo=1 2", `spec: entry 1 "foo=1 2" (column 1): count "1 2" is not a non-negative integer`},
		{"foo=2=3", `spec: entry 1 "foo=2=3" (column 1): count "2=3" is not a non-negative integer`},
		{"foo=1001", `spec: entry 1 "foo=1001" (column 1): count 1001 exceeds the limit of 1000`},
		{"foo=99999999999999999999999", `spec: entry 1 "foo=99999999999999999999999" (column 1): count 99999999999999999999999 exceeds the limit of 1000`},
		{"=3", `spec: entry 1 "=3" (column 1): empty queue name`},
		{"foo,,bar=2", `spec: entry 1 "foo,,bar=2" (column 1): empty queue name`},
		{"foo, =2", `spec: entry 1 "foo, =2" (column 1): empty queue name`},
		{",foo=2", `spec: entry 1 ",foo=2" (column 1): empty queue name`},
		{"a=1::b=2", `spec: entry 2 "" (column 5): empty entry`},
		{"a=1:", `spec: entry 2 "" (column 5): empty entry`},
		{"a=1:  ", `spec: entry 2 "" (column 5): empty entry`},
		{":a=1", `spec: entry 1 "" (column 1): empty entry`},
		{" : ", `spec: entry 1 "" (column 1): empty entry`},
		{"foo=1:foo=2", `spec: entry 2 "foo=2" (column 7): queue list "foo" appears twice`},
		{"foo=1:foo=0", `spec: entry 2 "foo=0" (column 7): queue list "foo" appears twice`},
		{"foo , bar=1:foo,bar=2", `spec: entry 2 "foo,bar=2" (column 13): queue list "foo,bar" appears twice`},
		{"foo,foo=1", `spec: entry 1 "foo,foo=1" (column 1): queue "foo" repeats within the list`},
		{"a,b, a=1", `spec: entry 1 "a,b, a=1" (column 1): queue "a" repeats within the list`},
		{"fo o=1", `spec: entry 1 "fo o=1" (column 1): queue name "fo o" contains an invalid character ' '`},
		{"a\x01=1", `spec: entry 1 "a\x01=1" (column 1): queue name "a\x01" contains an invalid character '\x01'`},
		{"a\xff=1", `spec: entry 1 "a\xff=1" (column 1): queue name "a\xff" contains an invalid character '\xff'`},
		{"a\u00a0b=1", `spec: entry 1 "a\u00a0b=1" (column 1): queue name "a\u00a0b" contains an invalid character '\u00a0'`},
		{long + "=1", `spec: entry 1 "` + long + `=1" (column 1): queue name "` + long + `" is longer than 512 bytes`},
		{"ok=1:  bad name = 2", `spec: entry 2 "bad name = 2" (column 8): queue name "bad name" contains an invalid character ' '`},
		{"  foo = x ", `spec: entry 1 "foo = x" (column 3): count "x" is not a non-negative integer`},
		{"a=1:b=2:c=3:d", `spec: entry 4 "d" (column 13): missing "="`},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error %q", tt.in, got, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
		}
		if got != nil {
			t.Errorf("Parse(%q) returned non-nil spec %v with error", tt.in, got)
		}
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error %T is not *Error", tt.in, err)
		}
	}
}

func TestErrorFields(t *testing.T) {
	_, err := Parse("foo=1: bar=x")
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not *Error", err)
	}
	want := Error{Arg: 0, Entry: 2, Column: 8, Token: "bar=x", Reason: `count "x" is not a non-negative integer`}
	if *se != want {
		t.Errorf("error = %+v, want %+v", *se, want)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want Spec
	}{
		{nil, Spec{}},
		{[]string{}, Spec{}},
		{[]string{""}, Spec{}},
		{[]string{"foo=1"}, Spec{{"foo", 1}}},
		{[]string{"foo=1", "bar,baz=4:qux=0"}, Spec{{"foo", 1}, {"bar,baz", 4}, {"qux", 0}}},
		{[]string{" foo = 1 ", "", "*=2"}, Spec{{"foo", 1}, {"*", 2}}},
	}
	for _, tt := range tests {
		got, err := ParseArgs(tt.args)
		if err != nil {
			t.Errorf("ParseArgs(%q) error: %v", tt.args, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseArgs(%q) = %#v, want %#v", tt.args, got, tt.want)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
		arg  int
	}{
		{[]string{"foo=1", "bar=x"}, `spec: argument 2: entry 1 "bar=x" (column 1): count "x" is not a non-negative integer`, 2},
		{[]string{"foo"}, `spec: argument 1: entry 1 "foo" (column 1): missing "="`, 1},
		{[]string{"foo=1", "bar=1:baz=2:"}, `spec: argument 2: entry 3 "" (column 13): empty entry`, 2},
		{[]string{"foo=1", "bar=2", "baz=1: foo=3"}, `spec: argument 3: entry 2 "foo=3" (column 8): queue list "foo" appears twice`, 3},
		{[]string{"a,b=1", "a , b=0"}, `spec: argument 2: entry 1 "a , b=0" (column 1): queue list "a,b" appears twice`, 2},
	}
	for _, tt := range tests {
		_, err := ParseArgs(tt.args)
		if err == nil {
			t.Errorf("ParseArgs(%q) succeeded, want error %q", tt.args, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseArgs(%q) error\n got: %s\nwant: %s", tt.args, err, tt.want)
		}
		var se *Error
		if !errors.As(err, &se) || se.Arg != tt.arg {
			t.Errorf("ParseArgs(%q) error %#v: want *Error with Arg %d", tt.args, err, tt.arg)
		}
	}
}

func TestValidateQueueName(t *testing.T) {
	tests := []struct {
		name string
		want string // "" = valid
	}{
		{"foo", ""},
		{"*", ""},
		{"high_*", ""},
		{"a.b-c_9", ""},
		{strings.Repeat("x", 512), ""},
		{"a:b", ""},
		{"reports/daily", ""},
		{"日本", ""},
		{":a", `spec: queue name ":a" begins or ends with ':', which separates entries`},
		{"", "spec: empty queue name"},
		{"a b", `spec: queue name "a b" contains an invalid character ' '`},
		{"a=b", `spec: queue name "a=b" contains an invalid character '='`},
		{"a,b", `spec: queue name "a,b" contains an invalid character ','`},
		{" a", `spec: queue name " a" contains an invalid character ' '`},
		{"a\tb", `spec: queue name "a\tb" contains an invalid character '\t'`},
		{strings.Repeat("x", 513), `spec: queue name "` + strings.Repeat("x", 513) + `" is longer than 512 bytes`},
	}
	for _, tt := range tests {
		err := ValidateQueueName(tt.name)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("ValidateQueueName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestQueueNames(t *testing.T) {
	tests := []struct {
		queues string
		want   []string
	}{
		{"", nil},
		{"foo", []string{"foo"}},
		{"baz,quux", []string{"baz", "quux"}},
		{"*", []string{"*"}},
		{"a, b", []string{"a", "b"}},
	}
	for _, tt := range tests {
		got := Entry{Queues: tt.queues, Count: 1}.QueueNames()
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("QueueNames(%q) = %q, want %q", tt.queues, got, tt.want)
		}
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name          string
		base, updates string
		want          string
	}{
		{"empty both", "", "", ""},
		{"empty base", "", "foo=1:bar=0", "foo=1"},
		{"empty updates", "foo=1:bar=2", "", "foo=1:bar=2"},
		{"update in place", "foo=1:bar=2:baz=3", "bar=5", "foo=1:bar=5:baz=3"},
		{"append", "foo=1", "bar=2:baz,quux=3", "foo=1:bar=2:baz,quux=3"},
		{"remove with 0", "foo=1:bar=2:baz=3", "bar=0", "foo=1:baz=3"},
		{"remove absent", "foo=1", "bar=0", "foo=1"},
		{"mixed", "foo=1:bar=2", "bar=0:foo=4:*=2", "foo=4:*=2"},
		{"zero in base dropped", "foo=0:bar=2", "", "bar=2"},
		{"list order matters", "a,b=1", "b,a=2", "a,b=1:b,a=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := mustParse(t, tt.base)
			updates := mustParse(t, tt.updates)
			baseCopy := slices.Clone(base)
			updatesCopy := slices.Clone(updates)
			got := base.Merge(updates)
			if got.String() != tt.want {
				t.Errorf("Merge = %q, want %q", got.String(), tt.want)
			}
			for _, e := range got {
				if e.Count == 0 {
					t.Errorf("Merge result %#v holds a 0-count entry", got)
				}
			}
			if !reflect.DeepEqual(base, baseCopy) || !reflect.DeepEqual(updates, updatesCopy) {
				t.Errorf("Merge modified its inputs: base %#v, updates %#v", base, updates)
			}
		})
	}
}

func TestMergeDoesNotAlias(t *testing.T) {
	base := Spec{{"foo", 1}, {"bar", 2}}
	got := base.Merge(Spec{{"foo", 7}})
	got[1].Count = 99
	if base[0].Count != 1 || base[1].Count != 2 {
		t.Errorf("Merge result aliases base: base = %v", base)
	}
}

func TestStringCountTotal(t *testing.T) {
	s := Spec{{"foo", 2}, {"bar", 0}, {"baz,quux", 5}, {"*", 1}}
	if got, want := s.String(), "foo=2:baz,quux=5:*=1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Spec{}).String(); got != "" {
		t.Errorf("empty String() = %q, want \"\"", got)
	}
	if got := Spec(nil).String(); got != "" {
		t.Errorf("nil String() = %q, want \"\"", got)
	}
	counts := []struct {
		queues string
		want   int
	}{
		{"foo", 2}, {"bar", 0}, {"baz,quux", 5}, {"baz, quux", 5}, {"quux,baz", 0}, {"*", 1}, {"nope", 0},
	}
	for _, c := range counts {
		if got := s.Count(c.queues); got != c.want {
			t.Errorf("Count(%q) = %d, want %d", c.queues, got, c.want)
		}
	}
	if got := s.Total(); got != 8 {
		t.Errorf("Total() = %d, want 8", got)
	}
	if got := Spec(nil).Total(); got != 0 {
		t.Errorf("nil Total() = %d, want 0", got)
	}
}

// nonZero returns s without its 0-count entries.
func nonZero(s Spec) Spec {
	out := Spec{}
	for _, e := range s {
		if e.Count != 0 {
			out = append(out, e)
		}
	}
	return out
}

// checkRoundTrip verifies that a parsed spec formats and reparses to itself.
func checkRoundTrip(t *testing.T, in string, s Spec) {
	t.Helper()
	str := s.String()
	again, err := Parse(str)
	if err != nil {
		t.Fatalf("Parse(%q).String() = %q does not reparse: %v", in, str, err)
	}
	if want := nonZero(s); !reflect.DeepEqual(again, want) {
		t.Fatalf("Parse(%q): reparsed %q = %#v, want %#v", in, str, again, want)
	}
	if again.String() != str {
		t.Fatalf("String not idempotent for %q: %q then %q", in, str, again.String())
	}
}

func TestRoundTripTable(t *testing.T) {
	for _, in := range []string{
		"", "foo=2", "foo=2:bar=4", " foo = 2 : bar , baz = 3 ", "*=2", "high_*=1:low=0",
		"a=0", "a=0:b=0", "baz,quux,xyzzy=5:foo=1000:x.y-z=007",
	} {
		s, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		checkRoundTrip(t, in, s)
	}
}

// randomSpec builds a random spec string, usually valid, with random
// whitespace, globs, multi-queue lists and 0 counts.
func randomSpec(r *rand.Rand) string {
	ws := func() string {
		return [...]string{"", "", "", " ", "  ", "\t"}[r.IntN(6)]
	}
	nameChars := "abcXYZ019_-.*"
	junk := " :=,$/{}\"'é\x00"
	var entries []string
	for range r.IntN(6) {
		var names []string
		for range 1 + r.IntN(3) {
			var b strings.Builder
			for range 1 + r.IntN(6) {
				if r.IntN(200) == 0 {
					b.WriteByte(junk[r.IntN(len(junk))])
				} else {
					b.WriteByte(nameChars[r.IntN(len(nameChars))])
				}
			}
			names = append(names, ws()+b.String()+ws())
		}
		count := strconv.Itoa([...]int{0, 1, 2, 5, 10, 999, 1000}[r.IntN(7)])
		if r.IntN(100) == 0 {
			count = "x"
		}
		entries = append(entries, ws()+strings.Join(names, ",")+ws()+"="+ws()+count+ws())
	}
	return strings.Join(entries, ":")
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(20240601, 7))
	valid := 0
	for i := 0; i < 5000; i++ {
		in := randomSpec(r)
		s, err := Parse(in)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), "spec: entry ") {
				t.Fatalf("Parse(%q): unexpected error %v", in, err)
			}
			continue
		}
		valid++
		checkRoundTrip(t, in, s)
		// Merging onto nothing equals dropping 0-count entries.
		if got := (Spec{}).Merge(s); !reflect.DeepEqual(got, nonZero(s)) {
			t.Fatalf("Merge of %q = %v, want %v", in, got, nonZero(s))
		}
	}
	if valid < 1000 {
		t.Fatalf("only %d of 5000 random specs were valid; generator is broken", valid)
	}
}

func mustParse(t *testing.T, s string) Spec {
	t.Helper()
	sp, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return sp
}

func BenchmarkParse(b *testing.B) {
	const in = "critical=4:high,default=8:default,low=4:mailers=2: reports , exports = 1:*=2"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDescribeNamesAnEmptySpec(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{nil, "(no workers)"},
		{Spec{{Queues: "foo", Count: 0}}, "(no workers)"},
		{Spec{{Queues: "foo", Count: 2}, {Queues: "bar,baz", Count: 1}}, "foo=2:bar,baz=1"},
	} {
		if got := tc.spec.Describe(); got != tc.want {
			t.Errorf("%#v.Describe() = %q, want %q", tc.spec, got, tc.want)
		}
	}
}

func TestUpdateStringKeepsZeros(t *testing.T) {
	s := Spec{{"foo", 0}, {"bar", 2}}
	if got := s.UpdateString(); got != "foo=0:bar=2" {
		t.Errorf("UpdateString = %q, want foo=0:bar=2", got)
	}
	if got := s.String(); got != "bar=2" {
		t.Errorf("String = %q, want bar=2", got)
	}
	back, err := Parse(s.UpdateString())
	if err != nil || len(back) != 2 || back[0].Count != 0 {
		t.Errorf("Parse(UpdateString) = %v, %v", back, err)
	}
}
