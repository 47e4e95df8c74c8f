package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

	runSDKTranslate(t, py, gw.url, "mock-gpt", "mock-claude", "translated")
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

// TestTranslatedErrors: a provider's error reaches the client in the
// client's API shape: Anthropic's 529 overloaded as OpenAI's 503, OpenAI's
// 400 as Anthropic's invalid_request_error; a translated stream the provider
// cuts short ends with an error event in the client's API (which the SDKs
// raise).
func TestTranslatedErrors(t *testing.T) {
	t.Parallel()
	anth := upstreamFunc(t, "anthropic", func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("x-case"), "cut") {
			w.Header().Set("content-type", "text/event-stream")
			fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n")
			return // the connection closes before the answer is complete
		}
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(529)
		fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	})
	oai := upstreamFunc(t, "openai", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"message":"max_completion_tokens is too large","type":"invalid_request_error","param":null,"code":null}}`)
	})
	gw := startGateway(t, crossConfig(anth.addr, oai.addr), gatewayOptions{})

	r := gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"to-anthropic","messages":[{"role":"user","content":"hi"}]}`)
	e, _ := r.json(t)["error"].(map[string]any)
	if r.status != 503 || e["message"] != "Overloaded" || e["code"] != "overloaded_error" {
		t.Errorf("Anthropic 529 to an OpenAI client: %d %s", r.status, r.body)
	}
	r = gw.do(t, "POST", "/v1/messages", nil, `{"model":"to-openai","max_tokens":99999999,"messages":[{"role":"user","content":"hi"}]}`)
	m := r.json(t)
	e, _ = m["error"].(map[string]any)
	if r.status != 400 || m["type"] != "error" || e["type"] != "invalid_request_error" || e["message"] != "max_completion_tokens is too large" {
		t.Errorf("OpenAI 400 to an Anthropic client: %d %s", r.status, r.body)
	}
	r = gw.do(t, "POST", "/v1/chat/completions", map[string]string{"x-case": "cut"},
		`{"model":"to-anthropic","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `data: {"error":{"message":"the upstream stream ended before the response was complete"`) {
		t.Errorf("a translated stream cut short: %d %s", r.status, r.body)
	}
}

// TestTranslatedUnreachable: when a translated request's provider cannot be
// reached, Envoy's own error reaches the client in the client's API shape,
// not in the provider's.
func TestTranslatedUnreachable(t *testing.T) {
	t.Parallel()
	closed := closedUpstream(t)
	gw := startGateway(t, crossConfig(closed.addr, closed.addr), gatewayOptions{})
	r := gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"to-anthropic","messages":[{"role":"user","content":"hi"}]}`)
	if e, _ := r.json(t)["error"].(map[string]any); r.status != 503 || e["code"] != "upstream_error" {
		t.Errorf("OpenAI client, Anthropic provider down: %d %s", r.status, r.body)
	}
	r = gw.do(t, "POST", "/v1/messages", nil, `{"model":"to-openai","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if m := r.json(t); r.status != 503 || m["type"] != "error" {
		t.Errorf("Anthropic client, OpenAI provider down: %d %s", r.status, r.body)
	}
}

// TestTranslatedWithFallbacks: an OpenAI client on a route with fallbacks
// whose providers speak the Messages API: the first answers 529, the
// fallback's answer comes back translated, streamed or not, and counted for
// the fallback; when every provider fails the client gets the last failure
// in its own shape.
func TestTranslatedWithFallbacks(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	down := upstreamFunc(t, "down", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/messages" || r.Header.Get("anthropic-version") == "" {
			t.Errorf("the first provider got %s without the Messages API's headers", r.URL.Path)
		}
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(529)
		fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	})
	cfg := fmt.Sprintf(`providers:
  - {name: down, url: "http://%s", schema: anthropic}
  - {name: mock-anthropic, url: %q, schema: anthropic}
routes:
  - model: fbt
    provider: down
    fallbacks: [{provider: mock-anthropic, model: mock-claude}]
  - model: allfail
    provider: down
    fallbacks: [{provider: down}]
usage: {enabled: true}
`, down.addr, mock.URL)
	gw := startGateway(t, cfg, gatewayOptions{})

	r := gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"fbt","messages":[{"role":"user","content":"hi"}]}`)
	m := r.json(t)
	choices, _ := m["choices"].([]any)
	if r.status != 200 || m["object"] != "chat.completion" || m["model"] != "fbt" || len(choices) != 1 {
		t.Fatalf("translated answer through a fallback: %d %s", r.status, r.body)
	}
	r = gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"fbt","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"object":"chat.completion.chunk"`) || !strings.HasSuffix(string(r.body), "data: [DONE]\n\n") {
		t.Fatalf("translated stream through a fallback: %d %s", r.status, r.body)
	}
	waitMetric(t, gw, `switchyard_tokens_total{key="",model="fbt",provider="mock-anthropic",type="output"}`, 1)
	for _, req := range mock.take() {
		if req.URI != "/v1/messages" || gjson.GetBytes(req.Body, "model").String() != "mock-claude" || req.Header.Get("anthropic-version") == "" {
			t.Errorf("the fallback got %s for %q", req.URI, gjson.GetBytes(req.Body, "model").String())
		}
	}

	r = gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"allfail","messages":[{"role":"user","content":"hi"}]}`)
	if e, _ := r.json(t)["error"].(map[string]any); r.status != 503 || e["code"] != "overloaded_error" {
		t.Errorf("every provider failed: %d %s", r.status, r.body)
	}
}

// crossConfig serves to-anthropic by an Anthropic provider at anthAddr and
// to-openai by an OpenAI one at oaiAddr: each client API calls the other's.
func crossConfig(anthAddr, oaiAddr string) string {
	return fmt.Sprintf(`providers:
  - {name: anth, url: "http://%s", schema: anthropic}
  - {name: oai, url: "http://%s", schema: openai}
routes:
  - {model: to-anthropic, provider: anth}
  - {model: to-openai, provider: oai}
`, anthAddr, oaiAddr)
}

// runSDKTranslate runs testdata/sdk_translate.py, the official SDKs' checks
// of translated answers (streamed and not, tools included), through the
// gateway at url: chatModel for the OpenAI SDK, messagesModel for
// Anthropic's. through names the path in the failure message.
func runSDKTranslate(t *testing.T, py, url, chatModel, messagesModel, through string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tools := filepath.Join(repoRoot(t), "loadtest", "mockllm", "testdata")
	out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "sdk_translate.py"),
		url, chatModel, messagesModel, mockllm.Answer, tools, mockllm.ToolArgString, mockllm.ToolResultPrefix).CombinedOutput()
	t.Logf("sdk_translate.py:\n%s", out)
	if err != nil {
		t.Fatalf("the SDKs rejected the answers %s: %v", through, err)
	}
	if !strings.Contains(string(out), `{"passed": 4}`) {
		t.Fatal("sdk_translate.py did not finish its checks")
	}
}

// TestTranslatedForeignToolIDs: a conversation that carries tool call ids
// another provider gave reaches a provider of the other API with ids it
// accepts (the mock refuses the others as OpenAI and Anthropic do): a Gemini
// 3 call's id, which holds its thought signature, sent by a Messages client
// to a model served with chat completions, and ids in the form some
// OpenAI-compatible servers give, sent by a chat client to a model served
// with the Messages API. Each call keeps its pairing with its result.
func TestTranslatedForeignToolIDs(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	gw := startGateway(t, translateConfig(mock.URL), gatewayOptions{})
	signed := "call_3f9a_0__sig_" + strings.Repeat("CiQBjz1rX2Vf", 40)

	r := gw.do(t, "POST", "/v1/messages", nil, `{"model":"mock-claude","max_tokens":64,`+
		`"tools":[{"name":"Bash","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}}],"messages":[`+
		`{"role":"user","content":"List the files."},`+
		`{"role":"assistant","content":[{"type":"tool_use","id":"`+signed+`","name":"Bash","input":{"command":"ls"}}]},`+
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"`+signed+`","content":"a.txt"}]}]}`)
	if r.status != 200 {
		t.Errorf("a Gemini 3 call's id, to chat completions: %d %s", r.status, r.body)
	}
	r = gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"mock-gpt",`+
		`"tools":[{"type":"function","function":{"name":"Bash","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}],"messages":[`+
		`{"role":"user","content":"List the files."},`+
		`{"role":"assistant","content":null,"tool_calls":[{"id":"functions.Bash:0","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}}]},`+
		`{"role":"tool","tool_call_id":"functions.Bash:0","content":"a.txt"}]}`)
	if r.status != 200 {
		t.Errorf("an id with a dot and a colon, to the Messages API: %d %s", r.status, r.body)
	}

	reqs := mock.take()
	if len(reqs) != 2 {
		t.Fatalf("the mock received %d requests, want 2", len(reqs))
	}
	for _, q := range reqs {
		call := gjson.GetBytes(q.Body, `messages.1.tool_calls.0.id`).String()
		result := gjson.GetBytes(q.Body, `messages.2.tool_call_id`).String()
		if pathOnlyURI(q.URI) == "/v1/messages" {
			call = gjson.GetBytes(q.Body, `messages.1.content.0.id`).String()
			result = gjson.GetBytes(q.Body, `messages.2.content.0.tool_use_id`).String()
		}
		if call == "" || call != result {
			t.Errorf("%s: the call's id %q and its result's %q differ", q.URI, call, result)
		}
	}
}

// TestTranslatedConversationsBackUpExtproc: fifty agents send 256 KB chat
// conversations to a model served with the Messages API, so that each one
// travels to extproc and back whole, and extproc's 16 MiB connection window
// lets them queue on Envoy's connection to extproc faster than extproc reads
// them. Envoy 1.40 crashed within a second of this while its gRPC side
// stream flow control was on (envoy/runtime.go). Every request must get its
// translated answer, from the Envoy that was there at the start.
func TestTranslatedConversationsBackUpExtproc(t *testing.T) {
	t.Parallel()
	mock := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1, ChunkInterval: -1}))
	t.Cleanup(mock.Close)
	gw := startGateway(t, translateConfig(mock.URL), gatewayOptions{extprocArgs: []string{"-grpc-conn-window", "16777216"}})
	pid, uptime := gw.envoyPID, envoyUptime(t, gw)
	body := agentBody("mock-gpt", 256<<10)

	run := startLoad(load{workers: 50, timeout: 30 * time.Second}, func(ctx context.Context, i int64) (result, error) {
		r, err := gw.try(ctx, "POST", "/v1/chat/completions", nil, body)
		if err == nil && (r.status != 200 || gjson.GetBytes(r.body, "object").String() != "chat.completion") {
			err = fmt.Errorf("status %d: %.300s", r.status, r.body)
		}
		return r, err
	})
	run.waitRequests(t, 600)
	events := run.stop()
	if failed := reportFailures(t, events, "while translated conversations queued for extproc"); failed > 0 {
		t.Errorf("%d of %d requests failed", failed, len(events))
	}
	if err := syscall.Kill(pid, 0); err != nil || gw.envoyPID != pid || envoyUptime(t, gw) < uptime {
		t.Errorf("Envoy did not stay up (pid %d: %v)", pid, err)
	}
}
