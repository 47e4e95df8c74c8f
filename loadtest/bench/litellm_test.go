package bench

import (
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
