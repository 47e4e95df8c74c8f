package bench

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestLiteLLMPinMatchesMakefile: the version the Makefile installs is the
// one the report names.
func TestLiteLLMPinMatchesMakefile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LITELLM_VERSION := (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no LITELLM_VERSION in the Makefile")
	}
	if string(m[1]) != LiteLLMVersion {
		t.Errorf("Makefile pins litellm %s, LiteLLMVersion is %s", m[1], LiteLLMVersion)
	}
}

// TestLiteLLMConfig: the mock as the only model, no callbacks, a master key.
func TestLiteLLMConfig(t *testing.T) {
	t.Parallel()
	c := liteLLMConfig("http://127.0.0.1:8081", "sk-bench-x")
	for _, want := range []string{"model_name: " + Model, "api_base: http://127.0.0.1:8081/v1", "callbacks: []", "master_key: sk-bench-x"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "database") {
		t.Errorf("config names a database:\n%s", c)
	}
}

// TestKeysStayOutOfResults: a peer's key reaches the requests but neither
// results.json nor results.md, and results.md shows no key header's value.
func TestKeysStayOutOfResults(t *testing.T) {
	t.Parallel()
	r := &Result{Paths: []Path{
		{Target: Target{Name: PathLiteLLM, URL: "http://x", SecretHeaders: map[string]string{"Authorization": "Bearer sk-secret"}}},
		{Target: Target{Name: "other", URL: "http://y", Headers: map[string]string{"x-api-key": "sk-listed", "x-team": "bench"}}},
	}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	md := Markdown(r)
	for _, out := range []string{string(b), md} {
		if strings.Contains(out, "sk-secret") {
			t.Errorf("a secret header leaked:\n%s", out)
		}
	}
	if strings.Contains(md, "sk-listed") {
		t.Errorf("a key header's value is in the report:\n%s", md)
	}
	if !strings.Contains(md, "x-api-key: [redacted]") || !strings.Contains(md, "x-team: bench") {
		t.Errorf("headers not listed as expected:\n%s", md)
	}
	req, err := newRequest(t.Context(), r.Paths[0].Target, "/v1/chat/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer sk-secret" {
		t.Errorf("request Authorization %q", got)
	}
}
