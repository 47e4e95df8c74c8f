package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"switchyard/config"
	"switchyard/processor"
	"switchyard/routing"
)

// TestDryRunCloudsRedacted: the dry run (`hooks test`) of requests to Azure
// OpenAI and to Gemini prints each provider's path (the deployment with
// api-version; the Gemini method) and the translated Gemini body, with the
// keys redacted.
func TestDryRunCloudsRedacted(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"AZ": "azure-SECRET-1", "GEM": "gemini-SECRET-2"}
	cfg, err := config.Decode([]byte(`providers:
  - name: azure
    url: https://x.openai.azure.com
    schema: azure-openai
    api_version: 2024-10-21
    auth: {type: header, header: api-key, key_env: AZ}
  - name: gemini
    schema: gemini
    auth: {type: header, header: x-goog-api-key, key_env: GEM}
routes:
  - {model: gpt, provider: azure, rewrite_model: dep}
  - {model: gem, provider: gemini, rewrite_model: gemini-2.5-flash}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.Compile(cfg, config.Env{Getenv: func(n string) (string, bool) { v, ok := keys[n]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/chat/completions", `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`,
			"path: /openai/deployments/dep/chat/completions?api-version=2024-10-21\n    route: gpt\n    set header x-switchyard-cluster: azure\n    set header api-key: [redacted]"},
		{"/v1/messages", `{"model":"gem","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			"path: /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
	} {
		p, err := processor.DryRun(context.Background(), r, nil, processor.Request{Method: "POST", Path: tc.path, Body: []byte(tc.body)}, "")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		writeAttempts(&out, p.Attempts)
		if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "SECRET") {
			t.Errorf("%s: dry-run output:\n%s\nwant it to contain %q and no key", tc.path, &out, tc.want)
		}
		if tc.path == "/v1/messages" && (!strings.Contains(out.String(), "set header x-goog-api-key: [redacted]") ||
			!strings.Contains(out.String(), `"contents":[{"role":"user","parts":[{"text":"hi"}]}]`)) {
			t.Errorf("the Gemini attempt's dry run:\n%s", &out)
		}
	}
}
