package glob

import "testing"

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"gpt-4o", "gpt-4o", true},
		{"gpt-4o*", "gpt-4o-mini", true},
		{"*claude-sonnet-4*", "anthropic.claude-sonnet-4-5-20250929-v1:0", true},
		{"claude-?", "claude-é", true},
		{"claude-?", "claude-", false},
		{"gpt-4o", "gpt-4o-mini", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
	} {
		if got := Match(c.pat, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pat, c.name, got, c.want)
		}
	}
}
