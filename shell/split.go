package shell

import (
	"fmt"
	"strings"
)

// SplitError is a command line that cannot be split into words.
type SplitError struct {
	Column int    // 1-based byte column of the offending quote or backslash
	Reason string // what is wrong
}

func (e *SplitError) Error() string {
	return fmt.Sprintf("%s (column %d)", e.Reason, e.Column)
}

// Split breaks a command line into words the way a POSIX shell does for
// simple commands, without any expansion:
//
//   - words are separated by spaces and tabs;
//   - 'single quotes' keep everything up to the next single quote literally;
//   - "double quotes" keep everything literally except \" and \\ ;
//   - outside quotes a backslash makes the next character literal;
//   - quotes may join parts of one word: a'b c'"d" is the word "ab cd";
//   - an empty quoted string (” or "") is an empty word;
//   - a '#' that starts a word (outside quotes) starts a comment that runs
//     to the end of the line.
//
// An unbalanced quote or a trailing backslash is an error (*SplitError)
// naming the column where the quote or backslash starts.
func Split(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == '#' && !inWord:
			return words, nil // a comment
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, &SplitError{Column: i + 1, Reason: "unterminated single quote"}
			}
			cur.WriteString(line[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			j := i + 1
			closed := false
			for j < len(line) {
				d := line[j]
				if d == '"' {
					closed = true
					break
				}
				if d == '\\' && j+1 < len(line) && (line[j+1] == '"' || line[j+1] == '\\') {
					cur.WriteByte(line[j+1])
					j += 2
					continue
				}
				cur.WriteByte(d)
				j++
			}
			if !closed {
				return nil, &SplitError{Column: i + 1, Reason: "unterminated double quote"}
			}
			inWord = true
			i = j + 1
		case c == '\\':
			if i+1 >= len(line) {
				return nil, &SplitError{Column: i + 1, Reason: "trailing backslash"}
			}
			cur.WriteByte(line[i+1])
			inWord = true
			i += 2
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Quote returns word quoted so that Split gives it back unchanged.
func Quote(word string) string {
	if word == "" {
		return "''"
	}
	if !strings.ContainsAny(word, " \t\r\n'\"\\") && !strings.HasPrefix(word, "#") {
		return word
	}
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}

// Join quotes words and joins them with spaces; Split(Join(w)) equals w.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
