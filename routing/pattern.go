package routing

import (
	"strings"

	"switchyard/internal/glob"
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
	return glob.Match(p.text, name)
}
