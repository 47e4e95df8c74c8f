package mockllm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"
)

// Tool declarations as the SDKs send them: OpenAI functions, Anthropic
// tools with input_schema.
const (
	openaiTools = `"tools":[` +
		`{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object",` +
		`"properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"type":"string","enum":["c","f"]}},"required":["city","days"]}}},` +
		`{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":["string","null"]},"n":{"type":"number"}}}}}]`
	anthropicTools = `"tools":[` +
		`{"name":"get_weather","description":"Weather","input_schema":{"type":"object",` +
		`"properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"type":"string","enum":["c","f"]}},"required":["city","days"]}},` +
		`{"name":"lookup","input_schema":{"type":"object","properties":{"q":{"type":["string","null"]},"n":{"type":"number"}}}}]`
	weatherArgs = `{"city":"héllo 世界","days":1}`
	lookupArgs  = `{"q":"héllo 世界"}`
)

func chatBody(stream bool, userText string, extra ...string) string {
	b := `{"model":"m","stream":` + strconv.FormatBool(stream) + `,"stream_options":{"include_usage":true},` + openaiTools +
		`,"messages":[{"role":"user","content":` + strconv.Quote(userText) + `}`
	for _, m := range extra {
		b += "," + m
	}
	return b + "]}"
}

func messagesBody(stream bool, userText string, extra ...string) string {
	b := `{"model":"c","max_tokens":64,"stream":` + strconv.FormatBool(stream) + `,` + anthropicTools +
		`,"messages":[{"role":"user","content":[{"type":"text","text":` + strconv.Quote(userText) + `}]}`
	for _, m := range extra {
		b += "," + m
	}
	return b + "]}"
}

type wantCall struct{ Name, Args string }

func TestToolCallsJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	tests := []struct {
		name      string
		path      string
		body      string
		hdr       map[string]string
		wantCalls []wantCall
		wantText  string
	}{
		{"chat header asks for two", "/v1/chat/completions", chatBody(false, "hi"), map[string]string{HeaderToolCalls: "2"},
			[]wantCall{{"get_weather", weatherArgs}, {"lookup", lookupArgs}}, ""},
		{"chat header asks for more than declared", "/v1/chat/completions", chatBody(false, "hi"), map[string]string{HeaderToolCalls: "3"},
			[]wantCall{{"get_weather", weatherArgs}, {"lookup", lookupArgs}, {"get_weather", weatherArgs}}, ""},
		{"chat text trigger", "/v1/chat/completions", chatBody(false, "please call:lookup now"), nil,
			[]wantCall{{"lookup", lookupArgs}}, ""},
		{"chat text trigger, unknown tool", "/v1/chat/completions", chatBody(false, "call:nope"), nil, nil, content},
		{"chat tools but not asked", "/v1/chat/completions", chatBody(false, "hi"), nil, nil, content},
		{"chat asked but no tools", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"call:lookup"}]}`,
			map[string]string{HeaderToolCalls: "1"}, nil, content},
		{"chat tool result", "/v1/chat/completions", chatBody(false, "call:lookup",
			`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{}"}}]}`,
			`{"role":"tool","tool_call_id":"call_1","content":"22 degrees"}`), map[string]string{HeaderToolCalls: "1"},
			nil, ToolResultPrefix + "22 degrees"},
		{"messages header asks for two", "/v1/messages", messagesBody(false, "hi"), map[string]string{HeaderToolCalls: "2"},
			[]wantCall{{"get_weather", weatherArgs}, {"lookup", lookupArgs}}, ""},
		{"messages text trigger, two calls", "/v1/messages", messagesBody(false, "call:get_weather and call:lookup"), nil,
			[]wantCall{{"get_weather", weatherArgs}, {"lookup", lookupArgs}}, ""},
		{"messages tools but not asked", "/v1/messages", messagesBody(false, "hi"), nil, nil, content},
		{"messages tool result", "/v1/messages", messagesBody(false, "call:lookup",
			`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}]}`,
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"22 degrees"}]}]}`),
			nil, nil, ToolResultPrefix + "22 degrees"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := post(t, srv, tt.path, tt.body, tt.hdr)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var gotCalls []wantCall
			var gotText string
			ids := map[string]bool{}
			if tt.path == "/v1/messages" {
				m := strictDecode[message](t, body)
				for _, b := range m.Content {
					switch b.Type {
					case "tool_use":
						checkPrefix(t, b.ID, "toolu_mock")
						ids[b.ID] = true
						gotCalls = append(gotCalls, wantCall{b.Name, string(b.Input)})
					case "text":
						gotText += b.Text
					}
				}
				wantStop := "end_turn"
				if tt.wantCalls != nil {
					wantStop = "tool_use"
				}
				if m.StopReason == nil || *m.StopReason != wantStop || m.Usage.OutputTokens <= 0 {
					t.Errorf("stop_reason %v, usage %+v; want %s", m.StopReason, m.Usage, wantStop)
				}
			} else {
				c := strictDecode[chatCompletion](t, body)
				msg := c.Choices[0].Message
				for _, tc := range msg.ToolCalls {
					checkPrefix(t, tc.ID, "call_mock")
					ids[tc.ID] = true
					if tc.Type != "function" {
						t.Errorf("tool call type %q", tc.Type)
					}
					gotCalls = append(gotCalls, wantCall{tc.Function.Name, tc.Function.Arguments})
				}
				gotText = msg.Content
				wantFinish := "stop"
				if tt.wantCalls != nil {
					wantFinish = "tool_calls"
					if !strings.Contains(string(body), `"content":null`) {
						t.Errorf("a tool call answer has content, want null: %s", body)
					}
				}
				if c.Choices[0].FinishReason != wantFinish {
					t.Errorf("finish_reason %q, want %q", c.Choices[0].FinishReason, wantFinish)
				}
				checkOpenAIUsage(t, c.Usage)
			}
			if diff := cmp.Diff(tt.wantCalls, gotCalls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if len(ids) != len(gotCalls) {
				t.Errorf("call ids are not distinct: %v", ids)
			}
			if gotText != tt.wantText {
				t.Errorf("text %q, want %q", gotText, tt.wantText)
			}
		})
	}
}

// flushRecorder records what is written between two flushes: the pieces
// a client receives as separate chunks.
type flushRecorder struct {
	h      http.Header
	pieces []string
	cur    strings.Builder
}

func (f *flushRecorder) Header() http.Header { return f.h }
func (f *flushRecorder) WriteHeader(int)     {}
func (f *flushRecorder) Write(b []byte) (int, error) {
	f.cur.Write(b)
	return len(b), nil
}
func (f *flushRecorder) Flush() { f.pieces = append(f.pieces, f.cur.String()); f.cur.Reset() }

// serveRecorded runs one request through the handler and returns the
// flushed pieces and their concatenation.
func serveRecorded(t *testing.T, path, body string, hdr map[string]string) ([]string, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := &flushRecorder{h: http.Header{}}
	New(fast).ServeHTTP(w, req)
	w.Flush()
	all := strings.Join(w.pieces, "")
	if !utf8.ValidString(all) {
		t.Fatalf("stream is not valid UTF-8: %q", all)
	}
	return w.pieces, []byte(all)
}

// checkCutInRune checks that some flushed piece ends inside a UTF-8
// character, as a network may cut a stream.
func checkCutInRune(t *testing.T, pieces []string) {
	t.Helper()
	for _, p := range pieces {
		if !utf8.ValidString(p) {
			return
		}
	}
	t.Error("no flushed piece ends inside a UTF-8 character")
}

func TestToolCallsChatStream(t *testing.T) {
	t.Parallel()
	pieces, body := serveRecorded(t, "/v1/chat/completions", chatBody(true, "hi"), map[string]string{HeaderToolCalls: "2"})
	checkCutInRune(t, pieces)
	events := parseSSE(t, body)
	if last := events[len(events)-1]; last.data != "[DONE]" {
		t.Fatalf("last event %+v", last)
	}
	type call struct {
		id, name string
		args     []string
	}
	var calls []call
	var finish []string
	var usage *openaiUsage
	for i, ev := range events[:len(events)-1] {
		c := strictDecode[chatChunk](t, []byte(ev.data))
		if c.Usage != nil {
			usage = c.Usage
			continue
		}
		if len(c.Choices) != 1 {
			t.Fatalf("chunk %d has %d choices", i, len(c.Choices))
		}
		ch := c.Choices[0]
		if ch.FinishReason != nil {
			finish = append(finish, *ch.FinishReason)
		}
		if i == 0 {
			if ch.Delta.Role != "assistant" || ch.Delta.Content != nil || !strings.Contains(ev.data, `"content":null`) {
				t.Errorf("role chunk %s", ev.data)
			}
			continue
		}
		if ch.Delta.Content != nil {
			t.Errorf("chunk %d has content %q", i, *ch.Delta.Content)
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Index == nil {
				t.Fatalf("chunk %d: tool call without index", i)
			}
			idx := *tc.Index
			if tc.ID != "" { // the chunk that opens a call
				if idx != len(calls) || tc.Type != "function" || tc.Function.Name == "" || tc.Function.Arguments != "" {
					t.Fatalf("chunk %d opens call %d badly: %s", i, idx, ev.data)
				}
				calls = append(calls, call{id: tc.ID, name: tc.Function.Name})
				continue
			}
			if idx != len(calls)-1 || tc.Function.Name != "" {
				t.Fatalf("chunk %d: arguments for call %d while call %d is open: %s", i, idx, len(calls)-1, ev.data)
			}
			calls[idx].args = append(calls[idx].args, tc.Function.Arguments)
		}
	}
	var got []wantCall
	for _, c := range calls {
		checkPrefix(t, c.id, "call_mock")
		if len(c.args) < 2 {
			t.Errorf("call %s: arguments in %d fragments, want several", c.name, len(c.args))
		}
		got = append(got, wantCall{c.name, strings.Join(c.args, "")})
	}
	if calls[0].id == calls[1].id {
		t.Errorf("calls share id %q", calls[0].id)
	}
	if diff := cmp.Diff([]wantCall{{"get_weather", weatherArgs}, {"lookup", lookupArgs}}, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"tool_calls"}, finish); diff != "" {
		t.Errorf("finish reasons (-want +got):\n%s", diff)
	}
	if usage == nil || usage.CompletionTokens <= 0 {
		t.Errorf("usage chunk %+v", usage)
	}
	// Some fragment ends inside the string value "héllo 世界".
	inString := false
	for _, c := range calls {
		for _, a := range c.args {
			if strings.Count(a, `"`)%2 == 1 && strings.ContainsAny(a, "hé世") {
				inString = true
			}
		}
	}
	if !inString {
		t.Error("no fragment cuts the string value")
	}
}

func TestToolCallsMessagesStream(t *testing.T) {
	t.Parallel()
	pieces, body := serveRecorded(t, "/v1/messages", messagesBody(true, "call:get_weather call:lookup"), nil)
	checkCutInRune(t, pieces)
	events := parseSSE(t, body)
	var names []string
	var got []wantCall
	var ids []string
	open := -1
	for i, ev := range events {
		e := strictDecode[anthropicEvent](t, []byte(ev.data))
		if e.Type != ev.name {
			t.Errorf("event %d: event line %q, data type %q", i, ev.name, e.Type)
		}
		names = append(names, e.Type)
		switch e.Type {
		case "content_block_start":
			b := e.ContentBlock
			if b == nil || b.Type != "tool_use" || string(b.Input) != "{}" || *e.Index != len(got) {
				t.Fatalf("content_block_start %s", ev.data)
			}
			checkPrefix(t, b.ID, "toolu_mock")
			ids = append(ids, b.ID)
			got = append(got, wantCall{Name: b.Name})
			open = *e.Index
		case "content_block_delta":
			d := strictDecode[blockDelta](t, e.Delta)
			if d.Type != "input_json_delta" || d.PartialJSON == nil || *e.Index != open {
				t.Fatalf("content_block_delta %s", ev.data)
			}
			got[open].Args += *d.PartialJSON
		case "content_block_stop":
			if *e.Index != open {
				t.Errorf("content_block_stop %s while %d is open", ev.data, open)
			}
			open = -1
		case "message_delta":
			d := strictDecode[messageDelta](t, e.Delta)
			if d.StopReason == nil || *d.StopReason != "tool_use" || e.Usage == nil || e.Usage.OutputTokens <= 0 {
				t.Errorf("message_delta %s", ev.data)
			}
		}
	}
	if diff := cmp.Diff([]wantCall{{"get_weather", weatherArgs}, {"lookup", lookupArgs}}, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if ids[0] == ids[1] {
		t.Errorf("calls share id %q", ids[0])
	}
	want := []string{"message_start", "content_block_start", "ping"}
	for _, a := range []string{weatherArgs, lookupArgs} {
		if len(want) > 3 {
			want = append(want, "content_block_start")
		}
		for range len(fragments([]byte(a))) + 1 {
			want = append(want, "content_block_delta")
		}
		want = append(want, "content_block_stop")
	}
	want = append(want, "message_delta", "message_stop")
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("event types (-want +got)\n%s", diff)
	}
}

// After a tool result, a stream answers with text quoting it.
func TestToolResultStreams(t *testing.T) {
	t.Parallel()
	_, body := serveRecorded(t, "/v1/chat/completions", chatBody(true, "call:lookup",
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{}"}}]}`,
		`{"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"22 degrees"}]}`), nil)
	var text strings.Builder
	for _, ev := range parseSSE(t, body) {
		if ev.data == "[DONE]" {
			continue
		}
		c := strictDecode[chatChunk](t, []byte(ev.data))
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
			if ch.FinishReason != nil && *ch.FinishReason != "stop" {
				t.Errorf("finish_reason %q", *ch.FinishReason)
			}
		}
	}
	if got, want := text.String(), ToolResultPrefix+"22 degrees"; got != want {
		t.Errorf("chat text %q, want %q", got, want)
	}

	_, body = serveRecorded(t, "/v1/messages", messagesBody(true, "call:lookup",
		`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}]}`,
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"22 degrees"}]}`), nil)
	text.Reset()
	for _, ev := range parseSSE(t, body) {
		e := strictDecode[anthropicEvent](t, []byte(ev.data))
		if e.Type == "content_block_delta" {
			text.WriteString(strictDecode[blockDelta](t, e.Delta).Text)
		}
	}
	if got, want := text.String(), ToolResultPrefix+"22 degrees"; got != want {
		t.Errorf("messages text %q, want %q", got, want)
	}
}

func TestArgsFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, schema, want string
	}{
		{"required only", `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"},"c":{"type":"boolean"}},"required":["b","a"]}`, `{"b":1,"a":"héllo 世界"}`},
		{"first property when none required", `{"properties":{"x":{"type":"number"},"y":{"type":"string"}}}`, `{"x":1}`},
		{"enum, nullable, array, object, untyped", `{"properties":{"e":{"enum":["red","blue"]},"n":{"type":["null","boolean"]},"l":{"type":"array"},"o":{"type":"object"},"u":{}},"required":["e","n","l","o","u"]}`,
			`{"e":"red","n":true,"l":[],"o":{},"u":"héllo 世界"}`},
		{"required name not in properties", `{"properties":{"a":{"type":"string"}},"required":["zz"]}`, `{"a":"héllo 世界"}`},
		{"dotted key", `{"properties":{"a.b":{"type":"integer"}},"required":["a.b"]}`, `{"a.b":1}`},
		{"no properties", `{"type":"object"}`, `{}`},
		{"no schema", ``, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := argsFor(gjson.Parse(tt.schema))
			if string(got) != tt.want {
				t.Errorf("argsFor = %s, want %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("argsFor = %s is not JSON", got)
			}
			var joined strings.Builder
			for _, f := range fragments(got) {
				if !utf8.Valid(f) {
					t.Errorf("fragment %q cuts a UTF-8 character", f)
				}
				joined.Write(f)
			}
			if joined.String() != string(got) {
				t.Errorf("fragments add up to %s, want %s", joined.String(), got)
			}
		})
	}
}

// TestPlain: with Options.Plain the mock answers text where it would call
// tools, and reads the model, stream and stream_options from the scan.
func TestPlain(t *testing.T) {
	t.Parallel()
	plain := fast
	plain.Plain = true
	ask := map[string]string{HeaderToolCalls: "2"}
	for opts, wantCalls := range map[Options]int{fast: 2, plain: 0} {
		srv := httptest.NewServer(New(opts))
		t.Cleanup(srv.Close)
		resp, got := post(t, srv, "/v1/chat/completions", chatBody(false, "hi"), ask)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("plain=%v: status %d: %s", opts.Plain, resp.StatusCode, got)
		}
		c := strictDecode[chatCompletion](t, got)
		if n := len(c.Choices[0].Message.ToolCalls); n != wantCalls || c.Model != "m" {
			t.Errorf("plain=%v: %d tool calls for model %q, want %d for \"m\"", opts.Plain, n, c.Model, wantCalls)
		}
		if wantCalls == 0 && c.Choices[0].Message.Content != content {
			t.Errorf("plain=%v: answered %q, want the fixed text", opts.Plain, c.Choices[0].Message.Content)
		}
	}

	srv := httptest.NewServer(New(plain))
	t.Cleanup(srv.Close)
	resp, got := post(t, srv, "/v1/chat/completions", chatBody(true, "hi"), ask)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("stream: status %d, %s: %s", resp.StatusCode, ct, got)
	}
	usage := 0
	for line := range strings.Lines(string(got)) {
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		if gjson.Get(data, "choices.0.delta.tool_calls").Exists() {
			t.Errorf("stream: a tool call: %s", data)
		}
		if gjson.Get(data, "usage.prompt_tokens").Int() > 0 {
			usage++
		}
	}
	if usage != 1 {
		t.Errorf("stream: %d chunks with usage, want 1 (stream_options.include_usage): %s", usage, got)
	}
}
