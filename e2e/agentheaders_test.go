package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// agentHeaderCases are requests shaped like the agent CLIs' (values as Claude
// Code 2.1 and Codex 0.171 send them, see TestClaudeCodeThroughGateway and
// TestCodexThroughGateway), plus the headers other agents and SDKs send:
// openai-beta and the underscore forms session_id / conversation_id.
var agentHeaderCases = []struct {
	name    string
	path    string // with the query the client sends
	body    string
	headers map[string]string
	want    string // a piece of the mock's answer
}{
	{
		name: "claude code messages",
		path: "/v1/messages?beta=true",
		body: `{"model":"mock-claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"user_0123_account__session_4f2a"}}`,
		headers: map[string]string{
			"anthropic-version":                         "2023-06-01",
			"anthropic-beta":                            "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24",
			"anthropic-dangerous-direct-browser-access": "true",
			"x-claude-code-session-id":                  "cc1a8ad9-de97-42bb-9ce6-58af447b7d3e",
			"x-app":                                     "cli",
			"x-stainless-retry-count":                   "0",
			"user-agent":                                "claude-cli/2.1.332 (external, sdk-cli)",
		},
		want: `"type":"message_stop"`,
	},
	{
		name: "claude code count_tokens",
		path: "/v1/messages/count_tokens?beta=true",
		body: `{"model":"mock-claude","messages":[{"role":"user","content":"hi"}]}`,
		headers: map[string]string{
			"anthropic-version":        "2023-06-01",
			"anthropic-beta":           "claude-code-20250219,token-counting-2024-11-01",
			"x-claude-code-session-id": "cc1a8ad9-de97-42bb-9ce6-58af447b7d3e",
		},
		want: `"input_tokens":`,
	},
	{
		name: "codex responses",
		path: "/v1/responses",
		body: `{"model":"mock-gpt","stream":true,"input":"hi","prompt_cache_key":"01a22fb3-b554-7242-902a-997a3d0fb5e8"}`,
		headers: map[string]string{
			"session-id":            "01a22fb3-b554-7242-902a-997a3d0fb5e8",
			"thread-id":             "01a22fb3-b554-7242-902a-997a3d0fb5e8",
			"x-client-request-id":   "01a22fb3-b554-7242-902a-997a3d0fb5e8",
			"x-codex-window-id":     "01a22fb3-b554-7242-902a-997a3d0fb5e8:0",
			"x-codex-turn-metadata": `{"session_id":"01a22fb3-b554-7242-902a-997a3d0fb5e8","turn_id":"01a22fb3-c3e1-73f0","model":"mock-gpt"}`,
			"x-codex-beta-features": "remote_compaction_v2",
			"originator":            "codex_exec",
			"openai-beta":           "responses=experimental",
			"session_id":            "5a1c0b5e-0000-4000-8000-000000000001",
			"conversation_id":       "5a1c0b5e-0000-4000-8000-000000000002",
		},
		want: `"type":"response.completed"`,
	},
	{
		name: "chat completions",
		path: "/v1/chat/completions",
		body: `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`,
		headers: map[string]string{
			"openai-beta":  "assistants=v2",
			"x-session-id": "explicit-session-7",
		},
		want: `"object":"chat.completion"`,
	},
}

// TestAgentHeadersReachUpstream: the headers agent CLIs depend on (API
// versions and betas, session ids) reach the upstream byte for byte, with
// the path and query the client sent, in both body modes.
func TestAgentHeadersReachUpstream(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"FULL_DUPLEX_STREAMED", "BUFFERED"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			mock := startMock(t)
			gw := startGateway(t, exampleConfig(t, mock.URL), gatewayOptions{bodyMode: mode})
			for _, tc := range agentHeaderCases {
				t.Run(tc.name, func(t *testing.T) {
					r := gw.do(t, http.MethodPost, tc.path, tc.headers, tc.body)
					if r.status != http.StatusOK || !strings.Contains(string(r.body), tc.want) {
						t.Fatalf("status %d, want 200 with %s: %s", r.status, tc.want, r.body)
					}
					reqs := mock.take()
					if len(reqs) != 1 {
						t.Fatalf("the upstream received %d requests, want 1", len(reqs))
					}
					got := reqs[0]
					if got.URI != tc.path {
						t.Errorf("upstream path %q, want %q", got.URI, tc.path)
					}
					if string(got.Body) != tc.body {
						t.Errorf("upstream body changed:\n got %s\nwant %s", got.Body, tc.body)
					}
					want, seen := map[string][]string{}, map[string][]string{}
					for k, v := range tc.headers {
						want[k] = []string{v}
						seen[k] = got.Header.Values(k)
					}
					if diff := cmp.Diff(want, seen); diff != "" {
						t.Errorf("headers at the upstream (-sent +received)\n%s", diff)
					}
				})
			}
		})
	}
}

// TestAgentEndpointsRouted: /v1/responses and /v1/messages/count_tokens are
// routed by model like /v1/chat/completions and /v1/messages: a routed
// model reaches its provider, an unknown one is a 404 and a provider
// without its key a 503, each in the endpoint's API shape.
func TestAgentEndpointsRouted(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	gw := startGateway(t, exampleConfig(t, mock.URL), gatewayOptions{})
	anthropicHdr := map[string]string{"anthropic-version": "2023-06-01"}
	tests := []struct {
		path      string
		headers   map[string]string
		body      string // %s is the model
		anthropic bool
		routed    string // a model examples/switchyard.yaml sends to the mock
		noKey     string // a model of a provider whose key is not set
	}{
		{path: "/v1/chat/completions", body: `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, routed: "mock-gpt", noKey: "gpt-4o"},
		{path: "/v1/responses", body: `{"model":%q,"input":"hi"}`, routed: "mock-gpt", noKey: "gpt-4o"},
		{path: "/v1/messages", headers: anthropicHdr, body: `{"model":%q,"max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`,
			anthropic: true, routed: "mock-claude", noKey: "claude-sonnet-5"},
		{path: "/v1/messages/count_tokens", headers: anthropicHdr, body: `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`,
			anthropic: true, routed: "mock-claude", noKey: "claude-sonnet-5"},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.path, "/v1/"), func(t *testing.T) {
			body := func(model string) string { return fmt.Sprintf(tc.body, model) }

			r := gw.do(t, http.MethodPost, tc.path, tc.headers, body(tc.routed))
			reqs := mock.take()
			if r.status != http.StatusOK || len(reqs) != 1 || reqs[0].URI != tc.path {
				t.Fatalf("%s: status %d, upstream saw %d requests; want 200 from the mock at %s: %s", tc.routed, r.status, len(reqs), tc.path, r.body)
			}

			for _, c := range []struct {
				model  string
				status int
				msg    string
			}{
				{model: "no-such-model", status: http.StatusNotFound, msg: "no-such-model"},
				{model: tc.noKey, status: http.StatusServiceUnavailable, msg: "_API_KEY"},
			} {
				r := gw.do(t, http.MethodPost, tc.path, tc.headers, body(c.model))
				if n := len(mock.take()); n != 0 {
					t.Errorf("%s: the upstream received %d requests", c.model, n)
				}
				if r.status != c.status || !strings.Contains(string(r.body), c.msg) {
					t.Errorf("%s: status %d, want %d naming %q: %s", c.model, r.status, c.status, c.msg, r.body)
				}
				m := r.json(t)
				if tc.anthropic {
					if m["type"] != "error" {
						t.Errorf("%s: not an Anthropic error: %s", c.model, r.body)
					}
				} else if _, ok := m["error"].(map[string]any); !ok {
					t.Errorf("%s: not an OpenAI error: %s", c.model, r.body)
				}
			}
		})
	}
}

// TestProviderGetsItsOwnHost: a client's Host header never reaches a
// provider, with the provider's key: one reached by IP address gets its
// address and port, as one reached by name gets its name.
func TestProviderGetsItsOwnHost(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	gw := startGateway(t, exampleConfig(t, mock.URL), gatewayOptions{})
	r := gw.do(t, http.MethodPost, "/v1/chat/completions", map[string]string{"host": "admin.internal"},
		`{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`)
	reqs := mock.take()
	if r.status != http.StatusOK || len(reqs) != 1 {
		t.Fatalf("status %d, upstream saw %d requests: %s", r.status, len(reqs), r.body)
	}
	if want := strings.TrimPrefix(mock.URL, "http://"); reqs[0].Host != want {
		t.Errorf("the provider got Host %q, want its own %q", reqs[0].Host, want)
	}
}
