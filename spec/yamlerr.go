package spec

import (
	"regexp"
	"strconv"
	"strings"
)

// yamlLineError matches a yaml.v3 error message that carries a line number.
var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError converts a yaml.v3 parse error into a *ConfigError.
//
// yaml.v3 prints 0-based line numbers for parser errors (1-based ones for
// scanner errors), and no line at all when the mark is on the first line;
// this corrects both. Reader errors (bad encoding, control characters) carry
// no position and are reported without a line.
func (d *decoder) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineError.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			line, msg = n, m[2]
			if isParserProblem(msg) {
				line++
			}
		}
	} else if !isPositionlessProblem(msg) {
		line = 1
	}
	return &ConfigError{File: d.file, Line: line, Msg: "invalid YAML: " + msg, Err: err}
}

// isParserProblem reports whether msg is one of yaml.v3's parser (as
// opposed to scanner) problems.
func isParserProblem(msg string) bool {
	switch msg {
	case "did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"did not find expected key", "did not find expected node content",
		"did not find expected '-' indicator", "did not find expected <document start>",
		"did not find expected <stream-start>", "found duplicate %YAML directive",
		"found duplicate %TAG directive", "found incompatible YAML document",
		"found undefined tag handle":
		return true
	}
	return false
}

// isPositionlessProblem reports whether msg is a yaml.v3 error that carries
// no position: reader (encoding) errors and composer errors.
func isPositionlessProblem(msg string) bool {
	switch msg {
	case "control characters are not allowed", "invalid leading UTF-8 octet",
		"incomplete UTF-8 octet sequence", "invalid trailing UTF-8 octet",
		"invalid length of a UTF-8 sequence", "invalid Unicode character",
		"incomplete UTF-16 character", "unexpected low surrogate area",
		"incomplete UTF-16 surrogate pair", "expected low surrogate area":
		return true
	}
	for _, prefix := range []string{"input error", "unknown anchor", "anchor ", "document contains", "attempted"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
