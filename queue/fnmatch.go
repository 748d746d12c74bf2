package queue

import "sort"

// fnmatch reports whether name matches pattern the way Ruby's
// File.fnmatch?(pattern, name) does with no flags, which is how Resque
// expands queue globs: '*' matches any run of characters, '/' included;
// '?' any one character; '[...]' a set or range ('!' or '^' negates); a
// backslash quotes the next character. As in Ruby, a wildcard does not
// match a leading '.' unless the pattern spells it. Characters are
// compared as UTF-8 runes.
func fnmatch(pattern, name string) bool {
	p, n := []rune(pattern), []rune(name)
	if len(n) > 0 && n[0] == '.' && (len(p) == 0 || p[0] != '.') {
		return false
	}
	// Iterative matching with one backtrack point for the last '*'.
	pi, ni := 0, 0
	starP, starN := -1, 0
	for ni < len(n) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				starP, starN = pi, ni
				pi++
				continue
			case '?':
				pi++
				ni++
				continue
			case '[':
				if ok, next, valid := matchClass(p, pi, n[ni]); valid {
					if ok {
						pi, ni = next, ni+1
						continue
					}
				} else if n[ni] == '[' { // an unclosed '[' is literal
					pi++
					ni++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == n[ni] {
						pi += 2
						ni++
						continue
					}
				} else if n[ni] == '\\' {
					pi++
					ni++
					continue
				}
			default:
				if c == n[ni] {
					pi++
					ni++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		pi, ni = starP+1, starN
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches r against the bracket expression at p[i] ('['). It
// returns whether r is in the set, the index after the closing ']', and
// whether the expression is closed at all.
func matchClass(p []rune, i int, r rune) (matched bool, next int, valid bool) {
	j := i + 1
	negate := false
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		negate = true
		j++
	}
	first := true
	for j < len(p) && (first || p[j] != ']') {
		first = false
		lo := p[j]
		if lo == '\\' && j+1 < len(p) {
			j++
			lo = p[j]
		}
		hi := lo
		if j+2 < len(p) && p[j+1] == '-' && p[j+2] != ']' {
			hi = p[j+2]
			if hi == '\\' && j+3 < len(p) {
				j++
				hi = p[j+2]
			}
			j += 2
		}
		if lo <= r && r <= hi {
			matched = true
		}
		j++
	}
	if j >= len(p) {
		return false, 0, false
	}
	return matched != negate, j + 1, true
}

// ExpandNames resolves a queue list against the known queue names (the
// queues set) as Expand does: plain names stay, "*" and other globs become
// their matches in known (sorted), each name once, at its first position.
func ExpandNames(patterns, known []string) []string {
	out := make([]string, 0, len(patterns))
	seen := map[string]bool{}
	add := func(q string) {
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	for _, p := range patterns {
		if !IsPattern(p) {
			add(p)
			continue
		}
		for _, q := range sorted {
			if fnmatch(p, q) {
				add(q)
			}
		}
	}
	return out
}
