package mockllm

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestToolIDsJudged: a tool call id the service would refuse is refused in
// its words, and one it accepts is not.
func TestToolIDsJudged(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	chatCall := func(id string) []string {
		return []string{`{"role":"assistant","content":null,"tool_calls":[{"id":"` + id +
			`","type":"function","function":{"name":"lookup","arguments":"{}"}}]}`,
			`{"role":"tool","tool_call_id":"` + id + `","content":"done"}`}
	}
	messagesCall := func(id string) []string {
		return []string{`{"role":"assistant","content":[{"type":"tool_use","id":"` + id + `","name":"lookup","input":{}}]}`,
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":"done"}]}`}
	}
	long := "call_" + strings.Repeat("x", 60)
	tests := []struct {
		name, path, body, wantError string
	}{
		{"chat, 40 characters", "/v1/chat/completions", chatBody(false, "hi", chatCall(long[:40])...), ""},
		{"chat, 41 characters", "/v1/chat/completions", chatBody(false, "hi", chatCall(long[:41])...),
			"Invalid 'messages[1].tool_calls[0].id': string too long. Expected a string with maximum length 40, but got a string with length 41 instead."},
		{"Messages, 64 characters", "/v1/messages", messagesBody(false, "hi", messagesCall(long[:64])...), ""},
		{"Messages, 65 characters", "/v1/messages", messagesBody(false, "hi", messagesCall(long)...),
			"messages.1.content.0.tool_use.id: String should have at most 64 characters"},
		{"Messages, a dot", "/v1/messages", messagesBody(false, "hi", messagesCall("functions.Bash:0")...),
			"messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"},
		{"Messages, a result's id", "/v1/messages", messagesBody(false, "hi", messagesCall("ok")[0],
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"o.k","content":"done"}]}`),
			"messages.2.content.0.tool_result.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'"},
		{"chat, a result for no call", "/v1/chat/completions", chatBody(false, "hi", chatCall("a")[0], chatCall("b")[1]),
			"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."},
		{"Messages, a result for no call", "/v1/messages", messagesBody(false, "hi", messagesCall("a")[0], messagesCall("b")[1]),
			"messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: b. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."},
		// As Python's json.dumps writes it, with spaces, and with an escape.
		{"chat, spaced", "/v1/chat/completions", strings.ReplaceAll(chatBody(false, "hi", chatCall(long[:41])...), `":"`, `": "`),
			"Invalid 'messages[1].tool_calls[0].id': string too long. Expected a string with maximum length 40, but got a string with length 41 instead."},
		{"Messages, an escape", "/v1/messages", messagesBody(false, "hi", messagesCall(`a\u002eb`)...),
			"messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"},
	}
	for _, tc := range tests {
		resp, b := post(t, srv, tc.path, tc.body, nil)
		if tc.wantError == "" {
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %s, want 200", tc.name, resp.StatusCode, b)
			}
			continue
		}
		if got := gjson.GetBytes(b, "error.message").String(); resp.StatusCode != http.StatusBadRequest || got != tc.wantError {
			t.Errorf("%s: %d %q, want 400 %q", tc.name, resp.StatusCode, got, tc.wantError)
		}
	}
	// The benchmark's mock takes any id.
	lenient := fast
	lenient.AnyToolID = true
	lax := httptest.NewServer(New(lenient))
	t.Cleanup(lax.Close)
	if resp, b := post(t, lax, "/v1/chat/completions", chatBody(false, "hi", chatCall(long)...), nil); resp.StatusCode != http.StatusOK {
		t.Errorf("AnyToolID, a 65-character id: %d %s, want 200", resp.StatusCode, b)
	}
}
