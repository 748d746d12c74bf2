package spec

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxCount is the largest worker count allowed for one entry (sane limit).
const MaxCount = 1000

// maxQueueNameLen is the longest queue name allowed, in bytes.
const maxQueueNameLen = 512

// whitespace is the set of characters trimmed around spec tokens.
const whitespace = " \t\r\n\v\f"

// Entry is one queue list and its worker count.
type Entry struct {
	Queues string // canonical comma-joined queue list, e.g. "baz,quux" or "*"
	Count  int
}

// QueueNames splits Queues into names ("baz,quux" -> ["baz","quux"]).
// It returns nil when Queues is empty.
func (e Entry) QueueNames() []string {
	if e.Queues == "" {
		return nil
	}
	names := strings.Split(e.Queues, ",")
	for i, n := range names {
		names[i] = strings.Trim(n, whitespace)
	}
	return names
}

// Spec is an ordered list of entries (order as first given; merges append
// new lists at the end).
type Spec []Entry

// Error describes an invalid entry in a spec string.
type Error struct {
	Arg    int    // 1-based argument index for ParseArgs; 0 for Parse
	Entry  int    // 1-based index of the entry within its string
	Column int    // 1-based byte column where the entry starts
	Token  string // the entry text, trimmed of surrounding whitespace
	Reason string // what is wrong with it
}

// Error formats the error as
// `spec: entry N "TOKEN" (column C): REASON`, with an
// `argument N: ` part after "spec: " for errors from ParseArgs.
func (e *Error) Error() string {
	msg := fmt.Sprintf("entry %d %q (column %d): %s", e.Entry, e.Token, e.Column, e.Reason)
	if e.Arg > 0 {
		return fmt.Sprintf("spec: argument %d: %s", e.Arg, msg)
	}
	return "spec: " + msg
}

// Parse parses a WORKERS-style spec string: "foo=2:bar=4", "baz,quux,xyzzy=5", "*=2".
// Entries are separated by ':'; each is QUEUELIST=COUNT; a queue list is
// comma-separated names. Whitespace around any token is tolerated
// ("  foo = 2 : bar , baz=3 "). An empty string (or only spaces) parses to an
// empty Spec, no error. Count 0 is allowed by Parse (it means "remove" in
// Merge); Parse keeps 0-count entries so Merge can see them.
// Errors are of type *Error.
func Parse(s string) (Spec, error) {
	return parseString(s, 0, make(map[string]struct{}))
}

// ParseArgs parses shell-style updates where entries are separate args, each
// of which may itself contain ':'-separated entries:
// ParseArgs([]string{"foo=1","bar,baz=4:qux=0"}). A queue list may appear
// only once across all arguments. Errors are of type *Error with Arg set.
func ParseArgs(args []string) (Spec, error) {
	seen := make(map[string]struct{})
	out := Spec{}
	for i, arg := range args {
		s, err := parseString(arg, i+1, seen)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	return out, nil
}

// parseString parses one spec string. arg is the 1-based argument index for
// error messages (0 for none); seen holds the queue lists already parsed.
func parseString(s string, arg int, seen map[string]struct{}) (Spec, error) {
	if strings.Trim(s, whitespace) == "" {
		return Spec{}, nil
	}
	out := make(Spec, 0, strings.Count(s, ":")+1)
	start := 0
	for n := 1; ; n++ {
		raw := s[start:]
		end := entryEnd(raw)
		if end >= 0 {
			raw = raw[:end]
		}
		token := strings.Trim(raw, whitespace)
		column := start + 1
		if token != "" {
			column += len(raw) - len(strings.TrimLeft(raw, whitespace))
		}
		e, reason := parseEntry(token)
		if reason == "" {
			if _, dup := seen[e.Queues]; dup {
				reason = fmt.Sprintf("queue list %q appears twice", e.Queues)
			}
		}
		if reason != "" {
			return nil, &Error{Arg: arg, Entry: n, Column: column, Token: token, Reason: reason}
		}
		seen[e.Queues] = struct{}{}
		out = append(out, e)
		if end < 0 {
			return out, nil
		}
		start += end + 1
	}
}

// entryEnd returns the index of the ':' that ends the first entry of s, or
// -1 when the entry runs to the end. Queue names may contain ':' (Ruby
// producers use "mail:high"), counts never do, so an entry ends at the
// first ':' after its '='; without '=', or when the entry is empty, at
// the first ':' (and is then reported as such).
func entryEnd(s string) int {
	eq := strings.IndexByte(s, '=')
	colon := strings.IndexByte(s, ':')
	if eq < 0 || strings.Trim(s[:max(colon, 0)], whitespace) == "" {
		return colon // no count, or an empty entry ("a=1::b=2", ":a=1")
	}
	if i := strings.IndexByte(s[eq:], ':'); i >= 0 {
		return eq + i
	}
	return -1
}

// parseEntry parses one trimmed QUEUELIST=COUNT token. It returns a
// non-empty reason when the token is invalid.
func parseEntry(token string) (Entry, string) {
	if token == "" {
		return Entry{}, "empty entry"
	}
	eq := strings.IndexByte(token, '=')
	if eq < 0 {
		return Entry{}, `missing "="`
	}
	queues, reason := canonicalQueueList(token[:eq])
	if reason != "" {
		return Entry{}, reason
	}
	count, reason := parseCount(strings.Trim(token[eq+1:], whitespace))
	if reason != "" {
		return Entry{}, reason
	}
	return Entry{Queues: queues, Count: count}, ""
}

// parseCount parses a trimmed decimal worker count in [0, MaxCount].
func parseCount(s string) (int, string) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Sprintf("count %q is not a non-negative integer", s)
	}
	digits := strings.TrimLeft(s, "0")
	if len(digits) > len(strconv.Itoa(MaxCount)) {
		return 0, fmt.Sprintf("count %s exceeds the limit of %d", s, MaxCount)
	}
	n := 0
	if digits != "" {
		var err error
		if n, err = strconv.Atoi(digits); err != nil {
			return 0, fmt.Sprintf("count %q is not a non-negative integer", s)
		}
	}
	if n > MaxCount {
		return 0, fmt.Sprintf("count %s exceeds the limit of %d", s, MaxCount)
	}
	return n, ""
}

// canonicalQueueList validates a comma-separated queue list and returns it
// with whitespace around the names removed. It returns a non-empty reason
// when the list is invalid.
func canonicalQueueList(list string) (string, string) {
	names := strings.Split(list, ",")
	seen := make(map[string]struct{}, len(names))
	for i, name := range names {
		name = strings.Trim(name, whitespace)
		if reason := queueNameProblem(name); reason != "" {
			return "", reason
		}
		if _, dup := seen[name]; dup {
			return "", fmt.Sprintf("queue %q repeats within the list", name)
		}
		seen[name] = struct{}{}
		names[i] = name
	}
	return strings.Join(names, ","), ""
}

// lenientCanonical trims whitespace around the names of a queue list
// without validating it.
func lenientCanonical(list string) string {
	if !strings.ContainsAny(list, whitespace) {
		return list
	}
	names := strings.Split(list, ",")
	for i, n := range names {
		names[i] = strings.Trim(n, whitespace)
	}
	return strings.Join(names, ",")
}

// queueNameProblem returns why name is not a valid queue name, or "".
// A queue name is what a Redis key and a spec string can carry without
// ambiguity: any printable UTF-8 except whitespace, ',' (separates names)
// and '=' (separates the count); ':' is allowed inside a name but not at
// either end, where it separates entries.
func queueNameProblem(name string) string {
	if name == "" {
		return "empty queue name"
	}
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return fmt.Sprintf(`queue name %q contains an invalid character '\x%02x'`, name, name[i])
		case r == ',' || r == '=' || unicode.IsSpace(r) || !unicode.IsPrint(r):
			return fmt.Sprintf("queue name %q contains an invalid character %q", name, r)
		}
		i += size
	}
	if name[0] == ':' || name[len(name)-1] == ':' {
		return fmt.Sprintf("queue name %q begins or ends with ':', which separates entries", name)
	}
	if len(name) > maxQueueNameLen {
		return fmt.Sprintf("queue name %q is longer than %d bytes", name, maxQueueNameLen)
	}
	return ""
}

// ValidateQueueName reports whether name is an allowed queue name or glob
// pattern; the error says why. See the package documentation for the
// allowed characters.
func ValidateQueueName(name string) error {
	if reason := queueNameProblem(name); reason != "" {
		return fmt.Errorf("spec: %s", reason)
	}
	return nil
}

// Merge returns a new Spec: updates override counts of existing queue lists
// (in place, order kept), new lists are appended, and a count of 0 (or less)
// removes a list. The result holds no 0-count entries. s itself is not
// modified.
func (s Spec) Merge(updates Spec) Spec {
	merged := make(Spec, 0, len(s)+len(updates))
	index := make(map[string]int, len(s)+len(updates))
	set := func(e Entry) {
		if i, ok := index[e.Queues]; ok {
			merged[i].Count = e.Count
			return
		}
		if e.Count > 0 {
			index[e.Queues] = len(merged)
			merged = append(merged, e)
		}
	}
	for _, e := range s {
		set(e)
	}
	for _, e := range updates {
		set(e)
	}
	out := merged[:0]
	for _, e := range merged {
		if e.Count > 0 {
			out = append(out, e)
		}
	}
	return out
}

// String formats canonically: "foo=2:bar=4:baz,quux=5" (no spaces, order
// kept). Entries with count 0 (or less) are omitted. Empty spec -> "".
func (s Spec) String() string { return s.format(false) }

// UpdateString formats s like String but keeps counts of 0, which remove
// a queue list when s is merged as an update (overrides on top of a
// config file, say): "foo=0:bar=2".
func (s Spec) UpdateString() string { return s.format(true) }

func (s Spec) format(zeros bool) string {
	var b strings.Builder
	for _, e := range s {
		if e.Count <= 0 && !(zeros && e.Count == 0) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(e.Queues)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(e.Count))
	}
	return b.String()
}

// Describe is String for people: "(no workers)" when no entry has a
// positive count, so that a log line or a reply never ends in nothing.
func (s Spec) Describe() string {
	if str := s.String(); str != "" {
		return str
	}
	return "(no workers)"
}

// Count returns the count for a queue list (canonical form; whitespace
// around names is ignored), 0 if absent.
func (s Spec) Count(queues string) int {
	queues = lenientCanonical(queues)
	for _, e := range s {
		if e.Queues == queues {
			return e.Count
		}
	}
	return 0
}

// Total returns the sum of counts.
func (s Spec) Total() int {
	total := 0
	for _, e := range s {
		total += e.Count
	}
	return total
}
