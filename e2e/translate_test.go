package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/loadtest/mockllm"
)

// translateConfig serves each API's model names with the other API: the
// chat models (and "m", sdk_tools.py's) through the Anthropic provider, the
// Messages models (and "c") through the OpenAI one.
func translateConfig(mockURL string) string {
	return fmt.Sprintf(`providers:
  - name: mock-openai
    url: %[1]s
    schema: openai
  - name: mock-anthropic
    url: %[1]s
    schema: anthropic
    cluster: mock_anthropic
routes:
  - model: mock-gpt
    provider: mock-anthropic
  - model: m
    provider: mock-anthropic
  - model: mock-claude
    provider: mock-openai
  - model: c
    provider: mock-openai
`, mockURL)
}

// TestSDKTranslated: the OpenAI SDK on a model served with the Messages API,
// and the Anthropic SDK on one served with chat completions, through the
// real Envoy: text and tool calls, streamed and not, parsed by the SDKs' own
// stream helpers and validated event by event; count_tokens answered with an
// estimate.
func TestSDKTranslated(t *testing.T) {
	t.Parallel()
	py := sdkPython(t)
	mock := startMock(t)
	gw := startGateway(t, translateConfig(mock.URL), gatewayOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tools := filepath.Join(repoRoot(t), "loadtest", "mockllm", "testdata")
	out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "sdk_translate.py"),
		gw.url, "mock-gpt", "mock-claude", mockllm.Answer, tools, mockllm.ToolArgString, mockllm.ToolResultPrefix).CombinedOutput()
	t.Logf("sdk_translate.py:\n%s", out)
	if err != nil {
		t.Fatalf("the SDKs rejected translated answers: %v", err)
	}
	if !strings.Contains(string(out), `{"passed": 4}`) {
		t.Fatal("sdk_translate.py did not finish its checks")
	}
	// Every request reached the provider in its own API.
	paths := map[string]int{}
	for _, r := range mock.take() {
		paths[pathOnlyURI(r.URI)]++
		model := gjson.GetBytes(r.Body, "model").String()
		if wantPath := map[string]string{"mock-gpt": "/v1/messages", "m": "/v1/messages",
			"mock-claude": "/v1/chat/completions", "c": "/v1/chat/completions"}[model]; pathOnlyURI(r.URI) != wantPath {
			t.Errorf("model %q reached the mock at %s, want %s", model, r.URI, wantPath)
		}
		if strings.HasPrefix(r.URI, "/v1/messages") && r.Header.Get("anthropic-version") == "" {
			t.Errorf("a translated Messages request lacks anthropic-version: %s", r.URI)
		}
		if r.Header.Get("accept-encoding") != "" && r.Header.Get("accept-encoding") != "identity" {
			t.Errorf("%s: a translated request asked for %q", r.URI, r.Header.Get("accept-encoding"))
		}
	}
	if paths["/v1/messages"] == 0 || paths["/v1/chat/completions"] == 0 || paths["/v1/messages/count_tokens"] != 0 {
		t.Errorf("requests at the mock by path: %v; want both APIs and no count_tokens (the gateway estimates it)", paths)
	}
}

func pathOnlyURI(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	return p
}
