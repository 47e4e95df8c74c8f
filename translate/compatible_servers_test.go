package translate

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestToolCallsFinishStop: a turn with tool calls whose finish_reason is
// "stop" (OpenAI's when tool_choice names a function; Ollama's, SGLang's)
// ends in tool_use for a Messages client, JSON and streamed: its loop runs
// the tools only then.
func TestToolCallsFinishStop(t *testing.T) {
	body := `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,
"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"stop"}],
"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`
	out, err := chatResponseToMessages(testEnv, []byte(body), clientModel)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(out, "stop_reason").String(); got != "tool_use" {
		t.Errorf("JSON: stop_reason %q, want tool_use: %s", got, out)
	}
	sse := "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	if s := string(runStream(newChatToMessagesStream(testEnv, clientModel), []byte(sse))); !strings.Contains(s, `"stop_reason":"tool_use"`) {
		t.Errorf("stream: want stop_reason tool_use:\n%s", s)
	}
	// Without tool calls "stop" stays end_turn.
	plain := strings.Replace(strings.Replace(body, `"content":null,
"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]`, `"content":"hi"`, 1), "\n", "", -1)
	if out, err := chatResponseToMessages(testEnv, []byte(plain), clientModel); err != nil || gjson.GetBytes(out, "stop_reason").String() != "end_turn" {
		t.Errorf("a text turn: %s, %v; want end_turn", out, err)
	}
}

// TestParallelCallsWithoutIndex: servers that send each of parallel tool
// calls whole in a chunk of its own, without an index (or all at index 0),
// give a Messages client one tool_use block per call, with its id, name and
// input.
func TestParallelCallsWithoutIndex(t *testing.T) {
	call := func(id, city, index string) string {
		return "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{" + index + "\"id\":\"" + id +
			"\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"" + city + "\\\"}\"}}]},\"finish_reason\":null}]}\n\n"
	}
	// A server that sends a new id on every delta of one call (no name
	// after the first) still makes one call of it.
	sse := call("call_1", "Paris", `"index":0,`) +
		"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_b\",\"function\":{\"arguments\":\" \"}}]},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
	if out := string(runStream(newChatToMessagesStream(testEnv, clientModel), []byte(sse))); strings.Count(out, `"type":"tool_use"`) != 1 {
		t.Errorf("a call whose deltas carry new ids became several tool_use blocks:\n%s", out)
	}
	for _, index := range []string{"", `"index":0,`} {
		sse := call("call_1", "Paris", index) + call("call_2", "Rome", index) +
			"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
		out := string(runStream(newChatToMessagesStream(testEnv, clientModel), []byte(sse)))
		if strings.Count(out, `"type":"tool_use"`) != 2 || !strings.Contains(out, `"id":"call_2"`) ||
			strings.Contains(out, `Paris\"}{\"city`) || !strings.Contains(out, `"index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Rome\"}"}`) {
			t.Errorf("index %q: want two tool_use blocks, call_2 the second with Rome:\n%s", index, out)
		}
	}
}
