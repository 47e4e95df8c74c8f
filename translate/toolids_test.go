package translate

import (
	"strings"
	"testing"
)

// TestToolIDsTheUpstreamAccepts checks that every id comes out as its
// upstream's rule allows, that an allowed id is left alone, and that
// different ids stay different.
func TestToolIDsTheUpstreamAccepts(t *testing.T) {
	signed := withSignature("call_GENERATED_0", "Q2lNQkFZ"+strings.Repeat("AbCd", 100))
	ids := []string{
		"", "call_1", "toolu_01A09q90qw90lq917835lq9", strings.Repeat("a", 40), strings.Repeat("a", 41),
		strings.Repeat("b", 64), strings.Repeat("b", 65), "functions.Bash:0", "functions.Bash:1", "call|1",
		"appel_été", signed, signed[:len(signed)-1],
	}
	rules := []struct {
		name    string
		fit     func(string) string
		accepts func(string) bool
	}{
		{"openai", openAIToolID, func(id string) bool { return len(id) <= openAIToolIDMax }},
		{"anthropic", AnthropicToolID, func(id string) bool {
			return id != "" && len(id) <= anthropicToolIDMax && anthropicIDChars(id)
		}},
	}
	for _, r := range rules {
		seen := map[string]string{}
		for _, id := range ids {
			got := r.fit(id)
			if !r.accepts(got) {
				t.Errorf("%s: %q gave %q, which the upstream refuses", r.name, id, got)
			}
			if r.accepts(id) && got != id {
				t.Errorf("%s: %q, which the upstream accepts, became %q", r.name, id, got)
			}
			if again := r.fit(id); again != got {
				t.Errorf("%s: %q gave %q, then %q", r.name, id, got, again)
			}
			if other, ok := seen[got]; ok {
				t.Errorf("%s: %q and %q both gave %q", r.name, other, id, got)
			}
			seen[got] = id
		}
	}
}
