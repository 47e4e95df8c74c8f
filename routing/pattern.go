package routing

import (
	"strings"
	"unicode/utf8"
)

// pattern is a model name, or a glob when it holds "*" (any run of
// characters, also none) or "?" (exactly one character). Nothing else is
// special.
type pattern struct {
	text string
	glob bool
}

func newPattern(s string) pattern {
	return pattern{text: s, glob: strings.ContainsAny(s, "*?")}
}

func (p pattern) String() string { return p.text }

// match reports whether name matches p. It does not allocate.
func (p pattern) match(name string) bool {
	if !p.glob {
		return p.text == name
	}
	return globMatch(p.text, name)
}

// globMatch runs in O(len(pat)*len(name)) by remembering only the last star
// (a later star subsumes any earlier backtracking point).
func globMatch(pat, name string) bool {
	px, nx := 0, 0
	starPx, starNx := -1, 0
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px++
					nx += w
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		// Mismatch: let the last star swallow one more character.
		if starPx >= 0 && starNx < len(name) {
			_, w := utf8.DecodeRuneInString(name[starNx:])
			starNx += w
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}
