package bedrock

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"
)

func TestConverseBody(t *testing.T) {
	in := `{"model":"m","stream":true,"max_tokens":50,"temperature":0.5,"top_p":0.9,"stop_sequences":["END"],
"system":[{"type":"text","text":"be brief"}],
"tools":[{"name":"lookup","description":"find","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"lookup"},
"messages":[{"role":"user","content":"hi"},
 {"role":"assistant","content":[{"type":"text","text":"calling"},{"type":"tool_use","id":"t1","name":"lookup","input":{"q":"x"}}]},
 {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"22","is_error":true},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}`
	out, stream, err := ConverseBody([]byte(in))
	if err != nil || !stream {
		t.Fatalf("stream %v err %v", stream, err)
	}
	want := `{"messages":[{"role":"user","content":[{"text":"hi"}]},
{"role":"assistant","content":[{"text":"calling"},{"toolUse":{"input":{"q":"x"},"name":"lookup","toolUseId":"t1"}}]},
{"role":"user","content":[{"toolResult":{"content":[{"text":"22"}],"status":"error","toolUseId":"t1"}},{"image":{"format":"png","source":{"bytes":"AAAA"}}}]}],
"system":[{"text":"be brief"}],
"inferenceConfig":{"maxTokens":50,"stopSequences":["END"],"temperature":0.5,"topP":0.9},
"toolConfig":{"tools":[{"toolSpec":{"description":"find","inputSchema":{"json":{"type":"object"}},"name":"lookup"}}],"toolChoice":{"tool":{"name":"lookup"}}}}`
	var got, w any
	_ = json.Unmarshal(out, &got)
	_ = json.Unmarshal([]byte(want), &w)
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, c := range []struct{ body, want string }{
		{`{"model":"m","max_tokens":5,"thinking":{"type":"enabled"},"messages":[]}`, "thinking is not supported"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`, "a document block is not supported"},
		{`{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web"}],"messages":[]}`, "server tool"},
	} {
		if _, _, err := ConverseBody([]byte(c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
}

func TestConverseAnswerToMessages(t *testing.T) {
	out, err := ConverseAnswerToMessages([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"hi"},
{"toolUse":{"toolUseId":"t1","name":"lookup","input":{"q":"x"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":5,"outputTokens":7,"totalTokens":12}}`), "nova")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"type": "message", "model": "nova", "stop_reason": "tool_use", "content.0.text": "hi",
		"content.1.type": "tool_use", "content.1.id": "t1", "content.1.input.q": "x", "usage.input_tokens": "5", "usage.output_tokens": "7"} {
		if got := gjson.GetBytes(out, path).String(); got != want {
			t.Errorf("%s = %q, want %q in %s", path, got, want, out)
		}
	}
}

func converseFrame(t testing.TB, typ, payload string) []byte {
	return frame(t, map[string]string{":event-type": typ, ":message-type": "event", ":content-type": "application/json"}, []byte(payload))
}

// TestConverseStream: ConverseStream's events become the Messages
// events, a text block opened by its first delta, usage with the stop.
func TestConverseStream(t *testing.T) {
	var all []byte
	for _, e := range [][2]string{
		{"messageStart", `{"role":"assistant"}`},
		{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`},
		{"contentBlockStop", `{"contentBlockIndex":0}`},
		{"contentBlockStart", `{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t1","name":"lookup"}}}`},
		{"contentBlockDelta", `{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"q\":"}}}`},
		{"contentBlockStop", `{"contentBlockIndex":1}`},
		{"messageStop", `{"stopReason":"tool_use"}`},
		{"metadata", `{"usage":{"inputTokens":5,"outputTokens":7,"totalTokens":12},"metrics":{"latencyMs":3}}`},
	} {
		all = append(all, converseFrame(t, e[0], e[1])...)
	}
	s := NewConverseStream("nova")
	var out []byte
	for i := 0; i < len(all); i += 5 {
		out = append(out, s.Write(all[i:min(i+5, len(all))])...)
	}
	out = append(out, s.Close()...)
	var types []string
	for _, ev := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
		lines := strings.SplitN(ev, "\n", 2)
		data := strings.TrimPrefix(lines[1], "data: ")
		types = append(types, gjson.Get(data, "type").String())
		switch gjson.Get(data, "type").String() {
		case "content_block_start":
			if idx := gjson.Get(data, "index").Int(); (idx == 0) != (gjson.Get(data, "content_block.type").String() == "text") {
				t.Errorf("block start %s", data)
			}
		case "message_delta":
			if gjson.Get(data, "delta.stop_reason").String() != "tool_use" || gjson.Get(data, "usage.output_tokens").Int() != 7 || gjson.Get(data, "usage.input_tokens").Int() != 5 {
				t.Errorf("message_delta %s", data)
			}
		}
	}
	want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("event types (-want +got):\n%s\n%s", diff, out)
	}
}

// TestConverseToolHistoryKeepsToolConfig: Converse refuses tool blocks
// without a toolConfig, so a turn after a tool loop keeps one: the tools
// when tool_choice is none (Converse has no none), stand-ins named as the
// calls were when the tools were dropped. Without tool blocks none sends no
// tools, as before.
func TestConverseToolHistoryKeepsToolConfig(t *testing.T) {
	history := `"messages":[{"role":"user","content":"hi"},
 {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"lookup","input":{"q":"x"}}]},
 {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"22"},{"type":"text","text":"now sum up"}]}]`
	tools := `"tools":[{"name":"lookup","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],`
	for _, tc := range []struct {
		name, body, want string
	}{
		{"tool_choice none", `{"model":"m","max_tokens":50,` + tools + `"tool_choice":{"type":"none"},` + history + `}`, `properties`},
		{"the tools dropped", `{"model":"m","max_tokens":50,` + history + `}`, `{"type":"object"}`},
		{"none without tool blocks", `{"model":"m","max_tokens":50,` + tools + `"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"hi"}]}`, ""},
	} {
		out, _, err := ConverseBody([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cfg := gjson.GetBytes(out, "toolConfig")
		switch {
		case tc.want == "" && cfg.Exists():
			t.Errorf("%s: toolConfig %s, want none", tc.name, cfg.Raw)
		case tc.want != "" && (cfg.Get("tools.0.toolSpec.name").Str != "lookup" || cfg.Get("toolChoice").Exists() ||
			!strings.Contains(cfg.Get("tools.0.toolSpec.inputSchema.json").Raw, tc.want)):
			t.Errorf("%s: toolConfig %s, want the tool lookup (%s) and no choice", tc.name, cfg.Raw, tc.want)
		}
	}
}

// TestConverseStreamLeavesOutReasoning: a reasoning model's Converse stream
// (reasoningContent in block 0, the text in block 1) gives the client its
// text as block 0, every stop closing a block it started.
func TestConverseStreamLeavesOutReasoning(t *testing.T) {
	var all []byte
	for _, e := range [][2]string{
		{"messageStart", `{"role":"assistant"}`},
		{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"thinking..."}}}`},
		{"contentBlockStop", `{"contentBlockIndex":0}`},
		{"contentBlockDelta", `{"contentBlockIndex":1,"delta":{"text":"Hi"}}`},
		{"contentBlockStop", `{"contentBlockIndex":1}`},
		{"contentBlockStart", `{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"t1","name":"lookup"}}}`},
		{"contentBlockDelta", `{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{}"}}}`},
		{"contentBlockStop", `{"contentBlockIndex":2}`},
		{"messageStop", `{"stopReason":"tool_use"}`},
		{"metadata", `{"usage":{"inputTokens":5,"outputTokens":7,"totalTokens":12}}`},
	} {
		all = append(all, converseFrame(t, e[0], e[1])...)
	}
	s := NewConverseStream("r1")
	out := string(append(s.Write(all), s.Close()...))
	var got []string
	for _, ev := range strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n") {
		data := gjson.Parse(strings.TrimPrefix(strings.SplitN(ev, "\n", 2)[1], "data: "))
		if typ := data.Get("type").Str; strings.HasPrefix(typ, "content_block") {
			got = append(got, typ+" "+data.Get("index").Raw)
		}
	}
	want := []string{"content_block_start 0", "content_block_delta 0", "content_block_stop 0",
		"content_block_start 1", "content_block_delta 1", "content_block_stop 1"}
	if diff := cmp.Diff(want, got); diff != "" || strings.Contains(out, "thinking") {
		t.Errorf("blocks (-want +got):\n%s\n%s", diff, out)
	}
}

// TestConverseToolIDs: a tool call id Converse refuses (its toolUseId has
// Anthropic's rule) gets one it accepts, the same on the call and on its
// result; one it accepts is left alone.
func TestConverseToolIDs(t *testing.T) {
	for _, id := range []string{"toolu_01A09q90qw90lq917835lq9", "functions.Bash:0", "call_1__sig_" + strings.Repeat("Q2lN", 30)} {
		body := `{"model":"m","max_tokens":50,"tools":[{"name":"lookup","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"},
 {"role":"assistant","content":[{"type":"tool_use","id":"` + id + `","name":"lookup","input":{}}]},
 {"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":"22"}]}]}`
		out, _, err := ConverseBody([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		call := gjson.GetBytes(out, "messages.1.content.0.toolUse.toolUseId").Str
		result := gjson.GetBytes(out, "messages.2.content.0.toolResult.toolUseId").Str
		fits := len(call) <= 64 && strings.Trim(call, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == ""
		if call == "" || call != result || !fits || (call == id) != (id == "toolu_01A09q90qw90lq917835lq9") {
			t.Errorf("%s: the call's toolUseId %q, its result's %q", id, call, result)
		}
	}
}

// A body with several fields Converse does not take is refused naming the
// same one every time, not whichever a map gave first.
func TestConverseRefusesTheSameField(t *testing.T) {
	body := []byte(`{"model":"m","max_tokens":5,"top_k":3,"thinking":{"type":"enabled"},"container":"c","messages":[]}`)
	for range 20 {
		if _, _, err := ConverseBody(body); err == nil || !strings.HasPrefix(err.Error(), "container is not supported") {
			t.Fatalf("%v, want the refusal of container", err)
		}
	}
}
