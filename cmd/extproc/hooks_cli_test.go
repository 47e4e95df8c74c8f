package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchyard/config"
	"switchyard/processor"
	"switchyard/routing"
)

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const testGatewayConfig = `
providers:
  - name: openai
    url: http://127.0.0.1:9001
    schema: openai
    auth: {type: none}
  - name: anthropic
    url: http://127.0.0.1:9002
    schema: openai
    auth: {type: none}
routes:
  - model: gpt-4o
    provider: openai
  - model: smart
    provider: openai
    fallbacks: [{provider: anthropic, model: backup-model}]
`

func TestHooksCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hooks := filepath.Join(dir, "hooks")
	if err := os.Mkdir(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(hooks, "10-team.lua"), `
function on_request(req)
  local team = req:header("x-team")
  if team == "search" then req:provider("anthropic") end
  if team == "ghost" then req:provider("nowhere") end
  if team == "crash" then local x = nil; x.y = 1 end
  req:set_header("x-tier", "gold")
end`)
	request := writeFile(t, filepath.Join(dir, "req.json"), `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	config := writeFile(t, filepath.Join(dir, "switchyard.yaml"), testGatewayConfig)
	smart := writeFile(t, filepath.Join(dir, "smart.json"), `{"model":"smart"}`)
	broken := filepath.Join(dir, "broken")
	if err := os.Mkdir(broken, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(broken, "bad.lua"), "function on_request(req)\n  req:set_header('host', 'x')\nend\n")

	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    []string // substrings of stdout
	}{
		{"check ok", []string{"check", hooks}, false, []string{"ok: 1 script(s)", "10-team.lua"}},
		{"check broken", []string{"check", broken}, true, nil},
		{"test without config", []string{"test", hooks, "--request", request, "--header", "X-Team: search"}, false,
			[]string{"10-team.lua: provider anthropic", "set header x-tier: gold", "provider: anthropic"}},
		{"flags before dir", []string{"test", "--request", request, "--header", "x-team:search", hooks}, false,
			[]string{"provider: anthropic"}},
		{"test with config routes by hook", []string{"test", hooks, "--request", request, "--header", "x-team:search", "--config", config}, false,
			[]string{"routing:", "  provider: anthropic", "  model: gpt-4o"}},
		{"test with config routes by model", []string{"test", hooks, "--request", request, "--config", config}, false,
			[]string{"routing:", "  provider: openai", "  route: gpt-4o", "  api: openai", "  path: /v1/chat/completions",
				"  set header x-switchyard-cluster: openai", "  set header x-tier: gold", "  remove header authorization"}},
		{"fallbacks show every attempt", []string{"test", hooks, "--request", smart, "--config", config}, false,
			[]string{"  attempt 1:\n    provider: openai", "  attempt 2:\n    provider: anthropic\n    cluster: anthropic\n    model: backup-model", `body: {"model":"backup-model"`}},
		// The API follows from the endpoint exactly as in the gateway: these
		// are Anthropic endpoints, and gpt-4o is served with the OpenAI API,
		// so the gateway translates, and estimates count_tokens itself.
		{"messages with a query string", []string{"test", hooks, "--request", request, "--path", "/v1/messages?beta=true", "--config", config}, false,
			[]string{"translated: anthropic API to openai API", "  path: /v1/chat/completions", "  set header x-switchyard-cluster: translate|openai"}},
		{"count_tokens", []string{"test", hooks, "--request", request, "--path", "/v1/messages/count_tokens", "--config", config}, false,
			[]string{`answer: 200 {"input_tokens":`, "estimate"}},
		{"unknown endpoint", []string{"test", hooks, "--request", request, "--path", "/v2/nope", "--config", config}, true,
			[]string{`answer: 404 not_found_error: unknown endpoint "/v2/nope"`}},
		{"unknown key name", []string{"test", hooks, "--request", request, "--key-name", "ghost", "--config", config}, true,
			[]string{`answer: 401 authentication_error: no client key is named "ghost"`}},
		{"unknown provider checked against config", []string{"test", hooks, "--request", request, "--header", "x-team:ghost", "--config", config}, true,
			[]string{`10-team.lua:5 on_request (runtime): provider: unknown provider "nowhere"`}},
		{"hook error shows file and line", []string{"test", hooks, "--request", request, "--header", "x-team:crash"}, true,
			[]string{"error: hook 10-team.lua:6 on_request (runtime)"}},
		{"test on broken dir", []string{"test", broken, "--request", request}, true, nil},
		{"missing request", []string{"test", hooks}, true, nil},
		{"bad header flag", []string{"test", hooks, "--request", request, "--header", "nocolon"}, true, nil},
		{"no subcommand", nil, true, nil},
		{"unknown subcommand", []string{"frob"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := runHooks(context.Background(), tt.args, &stdout, &stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("runHooks(%q) err = %v, want error %v\nstdout:\n%s\nstderr:\n%s", tt.args, err, tt.wantErr, &stdout, &stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &stdout)
				}
			}
		})
	}

	t.Run("check error names file and line", func(t *testing.T) {
		t.Parallel()
		err := runHooks(context.Background(), []string{"check", broken}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "bad.lua:2") || !strings.Contains(err.Error(), "protected") {
			t.Fatalf("err = %v, want bad.lua:2 and the reason", err)
		}
	})
}

func TestWriteAttemptsRedactsTheProviderKey(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	writeAttempts(&out, []processor.Attempt{{
		Provider: "openai", Cluster: "openai", Model: "gpt-4o", API: "openai", Path: "/v1/chat/completions",
		SetHeaders: []routing.Header{{Name: "x-switchyard-cluster", Value: "openai"}, {Name: "authorization", Value: "Bearer sk-SECRET"}},
		Credential: "authorization", Body: []byte(`{"model":"gpt-4o"}`), BodyChanged: true,
	}})
	if strings.Contains(out.String(), "SECRET") || !strings.Contains(out.String(), "set header authorization: [redacted]") ||
		!strings.Contains(out.String(), `body: {"model":"gpt-4o"}`) {
		t.Errorf("dry-run output:\n%s", &out)
	}
}

// A Bedrock attempt's signature and session token are redacted; its date
// and host are not secrets.
func TestWriteAttemptsRedactsBedrockSigning(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	writeAttempts(&out, []processor.Attempt{{
		Provider: "bedrock", Cluster: "bedrock", Model: "anthropic.claude-x", API: "anthropic", Path: "/model/anthropic.claude-x/invoke",
		SetHeaders: []routing.Header{{Name: ":authority", Value: "bedrock-runtime.us-east-1.amazonaws.com"}, {Name: "x-amz-date", Value: "20261204T210000Z"},
			{Name: "x-amz-security-token", Value: "TOKEN-SECRET"}, {Name: "authorization", Value: "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=SIG-SECRET"}},
		Credential: "authorization", Bedrock: true,
	}})
	if strings.Contains(out.String(), "SECRET") || !strings.Contains(out.String(), "set header x-amz-security-token: [redacted]") ||
		!strings.Contains(out.String(), "set header x-amz-date: 20261204T210000Z") {
		t.Errorf("dry-run output:\n%s", &out)
	}
}

// TestDryRunKeyPoolRedacted: the dry run of a request to a key pool prints
// one attempt per key, each key redacted.
func TestDryRunKeyPoolRedacted(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"POOL_ONE": "sk-pool-one-SECRET-77", "POOL_TWO": "sk-pool-two-SECRET-88"}
	cfg, err := config.Decode([]byte(`providers:
  - name: pool
    url: http://pool.example
    schema: openai
    auth: {type: bearer, keys: [{key_env: POOL_ONE}, {key_env: POOL_TWO, weight: 3}]}
routes: [{model: m, provider: pool}]
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.Compile(cfg, config.Env{Getenv: func(n string) (string, bool) { v, ok := keys[n]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.DryRun(context.Background(), r, nil, processor.Request{Method: "POST", Path: "/v1/chat/completions",
		Headers: map[string]string{"x-session-id": "s"}, Body: []byte(`{"model":"m"}`)}, "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeAttempts(&out, p.Attempts)
	if len(p.Attempts) != 2 || strings.Count(out.String(), "set header authorization: [redacted]") != 2 || strings.Contains(out.String(), "SECRET") ||
		!strings.Contains(out.String(), "pool key: POOL_ONE") || !strings.Contains(out.String(), "pool key: POOL_TWO") {
		t.Errorf("%d attempts; dry-run output:\n%s", len(p.Attempts), &out)
	}
}

// TestHooksTestToolCall dry-runs on_tool_call on an MCP tools/call.
func TestHooksTestToolCall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tools.lua"), `
function on_tool_call(call)
  if call.tool == "drop" then return call:reject("no dropping") end
  call.arguments.limit = 10
end`)
	call := func(tool string) string {
		return writeFile(t, filepath.Join(dir, tool+".json"), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`","arguments":{"q":"x"}}}`)
	}
	tests := []struct {
		tool    string
		wantErr bool
		want    string
	}{
		{"search", false, `arguments sent: {"limit":10,"q":"x"}`},
		{"drop", true, "answer: refused by a hook: no dropping"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		err := runHooks(context.Background(), []string{"test", dir, "--path", "/mcp/db", "--request", call(tc.tool)}, &out, &errb)
		if (err != nil) != tc.wantErr || !strings.Contains(out.String(), tc.want) || !strings.Contains(out.String(), "tool call: db/"+tc.tool) {
			t.Errorf("%s: err %v, out:\n%s\nwant %q", tc.tool, err, out.String(), tc.want)
		}
	}
}
