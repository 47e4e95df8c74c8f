package mockllm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// responsesTools declares the tools of openaiTools the Responses API way,
// and a custom tool (as Codex declares apply_patch) the mock cannot call.
const responsesTools = `"tools":[` +
	`{"type":"function","name":"get_weather","parameters":{"type":"object",` +
	`"properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]}},` +
	`{"type":"function","name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}},` +
	`{"type":"custom","name":"apply_patch"}]`

// conversationBody is a request of the API at path, declaring the test
// tools, whose messages (Responses: input items) are items.
func conversationBody(path string, stream bool, items ...string) string {
	s := strconv.FormatBool(stream)
	list := strings.Join(items, ",")
	switch path {
	case "/v1/messages":
		return `{"model":"c","max_tokens":64,"stream":` + s + `,` + anthropicTools + `,"messages":[` + list + `]}`
	case "/v1/responses":
		return `{"model":"r","stream":` + s + `,` + responsesTools + `,"input":[` + list + `]}`
	}
	return `{"model":"m","stream":` + s + `,"stream_options":{"include_usage":true},` + openaiTools + `,"messages":[` + list + `]}`
}

// A conversation's items, written the way each API writes them.
func userChat(text string) string { return `{"role":"user","content":` + strconv.Quote(text) + `}` }
func userMessages(text string) string {
	return `{"role":"user","content":[{"type":"text","text":` + strconv.Quote(text) + `}]}`
}
func userResponses(text string) string {
	return `{"type":"message","role":"user","content":[{"type":"input_text","text":` + strconv.Quote(text) + `}]}`
}

// A turn of a tool loop: the assistant's call of lookup and its result.
func turnChat(id, result string) string {
	return `{"role":"assistant","content":null,"tool_calls":[{"id":"` + id + `","type":"function","function":{"name":"lookup","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"` + id + `","content":` + strconv.Quote(result) + `}`
}
func turnMessages(id, result string) string {
	return `{"role":"assistant","content":[{"type":"tool_use","id":"` + id + `","name":"lookup","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":` + strconv.Quote(result) + `},` +
		`{"type":"text","text":"<system-reminder>keep going</system-reminder>"}]}`
}
func turnResponses(id, result string) string {
	return `{"type":"function_call","call_id":"` + id + `","name":"lookup","arguments":"{}"},` +
		`{"type":"function_call_output","call_id":"` + id + `","output":` + strconv.Quote(result) + `}`
}

// loopArgs is the loop trigger's arguments with turn n's number in place.
func loopArgs(n int) string { return `{"q":"step-` + strconv.Itoa(n) + `"}` }

// loopPrompt asks for three turns of lookup with loopArgs.
const loopPrompt = `run it: call:lookup*3{"q":"step-{n}"} then stop`

// TestToolLoop: the trigger is read from the last user message, whatever
// system-role entries stand around it, in the three APIs; a loop `*N` calls
// again until N turns of tool results are in, then answers with text quoting
// the last turn's results. Each case runs as JSON and as a stream.
func TestToolLoop(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	type api struct {
		path               string
		user               func(string) string
		turn               func(id, result string) string
		system, systemTail string // a system-role entry: where the API puts one, and where Claude Code does
	}
	apis := []api{
		{"/v1/chat/completions", userChat, turnChat, `{"role":"system","content":"be brief"}`, `{"role":"system","content":"env: linux"}`},
		{"/v1/messages", userMessages, turnMessages, `{"role":"system","content":"be brief"}`, `{"role":"system","content":"env: linux"}`},
		{"/v1/responses", userResponses, turnResponses,
			`{"type":"message","role":"developer","content":[{"type":"input_text","text":"be brief"}]}`,
			`{"role":"system","content":"env: linux"}`},
	}
	for _, a := range apis {
		tests := []struct {
			name      string
			items     []string
			wantCalls []wantCall
			wantText  string
		}{
			{"trigger before a trailing system entry", []string{a.system, a.user("call:lookup"), a.systemTail},
				[]wantCall{{"lookup", lookupArgs}}, ""},
			{"loop turn 1", []string{a.system, a.user(loopPrompt), a.systemTail},
				[]wantCall{{"lookup", loopArgs(1)}}, ""},
			{"loop turn 2", []string{a.user(loopPrompt), a.turn("t1", "out-1"), a.systemTail},
				[]wantCall{{"lookup", loopArgs(2)}}, ""},
			{"loop turn 3", []string{a.user(loopPrompt), a.turn("t1", "out-1"), a.systemTail, a.turn("t2", "out-2"), a.systemTail},
				[]wantCall{{"lookup", loopArgs(3)}}, ""},
			{"loop done", []string{a.user(loopPrompt), a.turn("t1", "out-1"), a.turn("t2", "out-2"), a.turn("t3", "out-3"), a.systemTail},
				nil, ToolResultPrefix + "out-3"},
			{"one call without a count", []string{a.user("call:lookup"), a.turn("t1", "out-1")},
				nil, ToolResultPrefix + "out-1"},
			{"arguments without a count", []string{a.user(`call:lookup{"q":"x"}`)},
				[]wantCall{{"lookup", `{"q":"x"}`}}, ""},
			{"two tools, two counts", []string{a.user("call:lookup*2 call:get_weather"), a.turn("t1", "out-1")},
				[]wantCall{{"lookup", lookupArgs}}, ""},
			{"only the last user message counts", []string{a.user("call:lookup*3"), a.turn("t1", "out-1"), a.user("thanks")},
				nil, content},
			{"a new prompt starts a new loop", []string{a.user("call:lookup*2"), a.turn("t1", "out-1"), a.turn("t2", "out-2"),
				a.user("again call:lookup*2"), a.turn("t3", "out-3")}, []wantCall{{"lookup", lookupArgs}}, ""},
			{"a tool the request does not declare", []string{a.user("call:Bash*3"), a.systemTail}, nil, content},
			{"no trigger", []string{a.user("hello"), a.systemTail}, nil, content},
		}
		for _, tt := range tests {
			for _, stream := range []bool{false, true} {
				name := a.path + " " + tt.name
				if stream {
					name += " stream"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					resp, body := post(t, srv, a.path, conversationBody(a.path, stream, tt.items...), nil)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d: %s", resp.StatusCode, body)
					}
					calls, text := readAnswer(t, a.path, stream, body)
					if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
						t.Errorf("calls (-want +got):\n%s", diff)
					}
					if text != tt.wantText {
						t.Errorf("text %q, want %q", text, tt.wantText)
					}
				})
			}
		}
	}
}

// TestToolLoopResponsesParallel: function calls the Responses API answered
// with in one turn, and their outputs, count as one turn.
func TestToolLoopResponsesParallel(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	body := conversationBody("/v1/responses", false, userResponses("call:lookup*2 call:get_weather*2"),
		`{"type":"function_call","call_id":"a","name":"lookup","arguments":"{}"}`,
		`{"type":"function_call","call_id":"b","name":"get_weather","arguments":"{}"}`,
		`{"type":"function_call_output","call_id":"a","output":"one"}`,
		`{"type":"function_call_output","call_id":"b","output":[{"type":"input_text","text":"two"}]}`)
	_, b := post(t, srv, "/v1/responses", body, nil)
	calls, _ := readAnswer(t, "/v1/responses", false, b)
	if diff := cmp.Diff([]wantCall{{"lookup", lookupArgs}, {"get_weather", weatherArgs}}, calls); diff != "" {
		t.Errorf("second turn's calls (-want +got):\n%s", diff)
	}
	_, b = post(t, srv, "/v1/responses", strings.TrimSuffix(body, "]}")+","+turnResponses("c", "three")+"]}", nil)
	if calls, text := readAnswer(t, "/v1/responses", false, b); calls != nil || text != ToolResultPrefix+"three" {
		t.Errorf("after two turns: calls %v, text %q", calls, text)
	}
}

// readAnswer reads an answer of the API at path, decoding every object and
// event strictly: the tool calls it makes and its text.
func readAnswer(t *testing.T, path string, stream bool, body []byte) ([]wantCall, string) {
	t.Helper()
	var calls []wantCall
	var text strings.Builder
	switch {
	case path == "/v1/chat/completions" && !stream:
		msg := strictDecode[chatCompletion](t, body).Choices[0].Message
		for _, c := range msg.ToolCalls {
			calls = append(calls, wantCall{c.Function.Name, c.Function.Arguments})
		}
		text.WriteString(msg.Content)
	case path == "/v1/chat/completions":
		for _, ev := range parseSSE(t, body) {
			if ev.data == "[DONE]" {
				continue
			}
			for _, ch := range strictDecode[chatChunk](t, []byte(ev.data)).Choices {
				if ch.Delta.Content != nil {
					text.WriteString(*ch.Delta.Content)
				}
				for _, c := range ch.Delta.ToolCalls {
					if c.ID != "" {
						calls = append(calls, wantCall{Name: c.Function.Name})
					}
					calls[*c.Index].Args += c.Function.Arguments
				}
			}
		}
	case path == "/v1/messages" && !stream:
		for _, b := range strictDecode[message](t, body).Content {
			if b.Type == "tool_use" {
				calls = append(calls, wantCall{b.Name, string(b.Input)})
			}
			text.WriteString(b.Text)
		}
	case path == "/v1/messages":
		for _, ev := range parseSSE(t, body) {
			e := strictDecode[anthropicEvent](t, []byte(ev.data))
			switch {
			case e.Type == "content_block_start" && e.ContentBlock.Type == "tool_use":
				calls = append(calls, wantCall{Name: e.ContentBlock.Name})
			case e.Type == "content_block_delta":
				d := strictDecode[blockDelta](t, e.Delta)
				if d.PartialJSON != nil {
					calls[*e.Index].Args += *d.PartialJSON
				}
				text.WriteString(d.Text)
			}
		}
	case !stream:
		for _, it := range strictDecode[response](t, body).Output {
			if it.Type == "function_call" {
				checkPrefix(t, it.CallID, "call_mock")
				calls = append(calls, wantCall{it.Name, *it.Arguments})
			}
			for _, c := range it.Content {
				text.WriteString(c.Text)
			}
		}
	default:
		deltas := map[string]string{}
		for _, ev := range parseSSE(t, body) {
			e := strictDecode[responseEvent](t, []byte(ev.data))
			switch e.Type {
			case "response.output_text.delta":
				text.WriteString(*e.Delta)
			case "response.function_call_arguments.delta":
				deltas[e.ItemID] += *e.Delta
			case "response.function_call_arguments.done":
				if *e.Arguments != deltas[e.ItemID] {
					t.Errorf("%s: arguments %s, the deltas add up to %s", e.ItemID, *e.Arguments, deltas[e.ItemID])
				}
			case "response.output_item.done":
				if e.Item.Type == "function_call" {
					if *e.Item.Arguments != deltas[e.Item.ID] || e.Item.Status != "completed" {
						t.Errorf("item done %+v, the deltas add up to %s", e.Item, deltas[e.Item.ID])
					}
					calls = append(calls, wantCall{e.Item.Name, *e.Item.Arguments})
				}
			case "response.completed":
				var out []wantCall
				for _, it := range e.Response.Output {
					if it.Type == "function_call" {
						out = append(out, wantCall{it.Name, *it.Arguments})
					}
				}
				if diff := cmp.Diff(calls, out); diff != "" {
					t.Errorf("response.completed's output differs from the items streamed (-streamed +completed):\n%s", diff)
				}
				if e.Response.Usage == nil || e.Response.Usage.OutputTokens <= 0 {
					t.Errorf("response.completed usage %+v", e.Response.Usage)
				}
			}
		}
	}
	return calls, text.String()
}

// FuzzToolLoop: whatever the user writes after `call:` and whatever a tool
// returns, every answer of the three APIs, JSON or streamed, is valid JSON.
func FuzzToolLoop(f *testing.F) {
	f.Add(loopPrompt, "out-1")
	f.Add(`call:lookup{"q":"{n}{n}\\{n}\u00e9"}`, "")
	f.Add(`call:lookup*99999999999999999999{"q":1} call:get_weather*2{`, "世界")
	f.Add(`call:lookup*1{"q":"x"}}}} call:lookup*2[1]`, `"quoted"`)
	h := New(fast)
	f.Fuzz(func(t *testing.T, prompt, result string) {
		apis := []struct {
			path string
			user func(string) string
			turn func(string, string) string
		}{
			{"/v1/chat/completions", userChat, turnChat},
			{"/v1/messages", userMessages, turnMessages},
			{"/v1/responses", userResponses, turnResponses},
		}
		for _, a := range apis {
			for _, items := range [][]string{{a.user(prompt)}, {a.user(prompt), a.turn("t1", result)}} {
				for _, stream := range []bool{false, true} {
					body := conversationBody(a.path, stream, items...)
					if !json.Valid([]byte(body)) {
						return // the prompt or result is not valid UTF-8: not a request
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, a.path, strings.NewReader(body)))
					if rec.Code != http.StatusOK {
						t.Fatalf("%s: status %d: %s", a.path, rec.Code, rec.Body)
					}
					if !stream {
						if !json.Valid(rec.Body.Bytes()) {
							t.Fatalf("%s: the answer is not JSON: %s", a.path, rec.Body)
						}
						continue
					}
					for _, line := range strings.Split(rec.Body.String(), "\n") {
						data, ok := strings.CutPrefix(line, "data: ")
						if ok && data != "[DONE]" && !json.Valid([]byte(data)) {
							t.Fatalf("%s: an event is not JSON: %s", a.path, data)
						}
					}
				}
			}
		}
	})
}
