package routing

import (
	"slices"
	"testing"

	"switchyard/bedrock"
	"switchyard/config"
)

// TestKeepBetas: the header's flags the list allows, in the header's
// order; every one without a list.
func TestKeepBetas(t *testing.T) {
	t.Parallel()
	const header = " claude-code-20250219, interleaved-thinking-2025-05-14,,context-1m-2025-08-07 "
	if got := KeepBetas(header, []string{"context-1m-2025-08-07", "interleaved-thinking-2025-05-14"}); !slices.Equal(got,
		[]string{"interleaved-thinking-2025-05-14", "context-1m-2025-08-07"}) {
		t.Errorf("KeepBetas with a list = %q", got)
	}
	if got := KeepBetas(header, nil); len(got) != 3 {
		t.Errorf("KeepBetas without a list = %q, want all three", got)
	}
	if got := KeepBetas(header, []string{}); got != nil {
		t.Errorf("KeepBetas with an empty list = %q, want none", got)
	}
}

// TestDecisionBetas: a bedrock provider takes the betas AWS documents
// unless it lists its own; a vertex one takes any unless it lists some.
func TestDecisionBetas(t *testing.T) {
	t.Parallel()
	r := compilePoolYAML(t, `providers:
  - {name: b, schema: bedrock, auth: {type: aws_sigv4, region: us-east-1}}
  - {name: bo, schema: bedrock, auth: {type: aws_sigv4, region: us-east-1}, anthropic_betas: [x-1]}
  - {name: v, schema: vertex, project: my-proj, region: us-east5, publisher: anthropic, auth: {type: gcp_oauth}}
routes:
  - {model: b, provider: b}
  - {model: bo, provider: bo}
  - {model: v, provider: v}
`, config.Env{GCPTokens: func(string) (config.TokenSource, error) { return nil, nil }})
	for model, want := range map[string][]string{"b": bedrock.DefaultBetas, "bo": {"x-1"}, "v": nil} {
		d, err := r.Decide(t.Context(), &Request{Model: model, API: config.APIAnthropic})
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if !slices.Equal(d.Betas, want) || (want == nil) != (d.Betas == nil) {
			t.Errorf("%s: betas %q, want %q", model, d.Betas, want)
		}
	}
}
