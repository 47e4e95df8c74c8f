package routing

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/config"
)

const fallbackYAML = `
providers:
  - {name: a, url: 'http://a:1', schema: openai}
  - {name: b, url: 'http://b:1', schema: openai, auth: {type: bearer, key_env: OPENAI_API_KEY}}
  - {name: c, url: 'http://c:1', schema: openai, path_prefix: /c}
  - {name: ant, url: 'http://ant:1', schema: anthropic}
  - {name: nokey, url: 'http://nokey:1', schema: openai, auth: {type: bearer, key_env: UNSET_KEY}}
routes:
  - model: smart
    targets:
      - {provider: a, weight: 3}
      - {provider: b, model: b-model, weight: 1}
    fallbacks:
      - {provider: ant, model: claude}
      - {provider: nokey}
      - {provider: c, model: c-model}
  - model: short
    provider: a
    fallbacks: [{provider: b}, {provider: c}]
    retry: {on: ["503", reset], attempts: 2, first_byte_timeout: 20s}
  - model: plain
    provider: a
`

func TestDecideFallbackChain(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, fallbackYAML)
	for _, tc := range []struct {
		name  string
		model string
		pick  int
		want  []string // provider/model per attempt
	}{
		{"first target picked", "smart", 0, []string{"a/smart", "b/b-model", "c/c-model"}},
		{"second target picked", "smart", 3, []string{"b/b-model", "a/smart", "c/c-model"}},
		{"bounded by attempts", "short", 0, []string{"a/short", "b/short"}},
		{"no fallbacks", "plain", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: tc.model, Pick: func(int) int { return tc.pick }})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range d.Attempts {
				got = append(got, a.Provider+"/"+a.Model)
			}
			// The anthropic fallback speaks another API and nokey has no
			// key: neither is an attempt.
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("attempts (-want +got):\n%s", diff)
			}
			if (d.Retry == nil) != (tc.want == nil) {
				t.Errorf("retry policy %v with attempts %v", d.Retry, got)
			}
		})
	}
}

func TestRetryPolicies(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, fallbackYAML)
	ps := r.RetryPolicies()
	if len(ps) != 2 {
		t.Fatalf("%d policies, want 2 (the default and short's)", len(ps))
	}
	for _, p := range ps {
		if p.FirstByteTimeout == 20*time.Second {
			if p.RetryOn() != "reset,retriable-status-codes" || !p.Fails(503) || p.Fails(429) || p.Attempts != 2 {
				t.Errorf("short's policy: %+v, retry_on %q", p, p.RetryOn())
			}
		} else if p.RetryOn() != "connect-failure,refused-stream,reset,retriable-status-codes" || !p.Fails(529) {
			t.Errorf("default policy: %+v, retry_on %q", p, p.RetryOn())
		}
	}
	if got := r.CredentialHeaders(); !cmp.Equal(got, []string{"authorization", "x-api-key", "api-key"}) {
		t.Errorf("CredentialHeaders = %v", got)
	}
	d, err := r.Attempt("c", "m", config.APIOpenAI, "")
	if err != nil || d.PathPrefix != "/c" || d.Cluster != "c" || d.RewriteModel {
		t.Errorf("Attempt = %+v, %v", d, err)
	}
	if _, err := r.Attempt("gone", "m", config.APIOpenAI, ""); err == nil {
		t.Error("an attempt on an unknown provider succeeded")
	}
}
