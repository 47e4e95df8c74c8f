package usage

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The bodies below have the shapes the providers send (the official SDK
// types, loadtest/mockllm, the providers' API references): every field the
// real answer carries around the usage, so the reader is tested on what it
// must skip as well as on what it reads.

const chatJSON = `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,` +
	`"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"The usage is \"usage\":{\"prompt_tokens\":9}",` +
	`"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,` +
	`"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":` +
	`{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},` +
	`"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`

const chatReasoningJSON = `{
  "id": "chatcmpl-AWSlkUhIIwdhLg54Lc2ySTjeDfsM1",
  "object": "chat.completion",
  "created": 1732371652,
  "model": "o1-2024-12-17",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes.", "refusal": null}, "finish_reason": "stop"}],
  "usage": {
    "prompt_tokens": 75,
    "completion_tokens": 1186,
    "total_tokens": 1261,
    "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 64},
    "completion_tokens_details": {"reasoning_tokens": 1024, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  }
}`

const completionJSON = `{"id":"cmpl-mock1","object":"text_completion","created":1767225600,"model":"davinci","system_fingerprint":"fp_mock",` +
	`"choices":[{"text":"This is a mock answer","index":0,"logprobs":null,"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":7,"completion_tokens":10,"total_tokens":17}}`

const embeddingsJSON = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.001,0.002]}],` +
	`"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`

const responsesJSON = `{"id":"resp_67ccd3a9da748190baa7f1570fe91ac6","object":"response","created_at":1741476777,"status":"completed",` +
	`"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-4o-2024-08-06",` +
	`"output":[{"type":"message","id":"msg_67ccd3acc8d48190a77525dc6de64b4104becf0e1b","status":"completed","role":"assistant",` +
	`"content":[{"type":"output_text","text":"A tree.","annotations":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,` +
	`"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto",` +
	`"tools":[],"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":328,"input_tokens_details":{"cached_tokens":256,` +
	`"cache_write_tokens":0},"output_tokens":52,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":380},"user":null,"metadata":{}}`

const messageJSON = `{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5",` +
	`"content":[{"type":"text","text":"Hi! My name is Claude."}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":2095,"cache_creation_input_tokens":248,"cache_read_input_tokens":1800,` +
	`"cache_creation":{"ephemeral_5m_input_tokens":248,"ephemeral_1h_input_tokens":0},"output_tokens":503,` +
	`"output_tokens_details":{"thinking_tokens":120},"service_tier":"standard"}}`

// messageCache1hJSON wrote to both caches: cache_creation_input_tokens is
// the total, cache_creation its split by TTL.
const messageCache1hJSON = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-opus-4-1-20250805",` +
	`"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":10,"cache_creation_input_tokens":100300,"cache_read_input_tokens":0,` +
	`"cache_creation":{"ephemeral_5m_input_tokens":300,"ephemeral_1h_input_tokens":100000},"output_tokens":5,"service_tier":"standard"}}`

const messageNullCacheJSON = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],` +
	`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":null,` +
	`"cache_read_input_tokens":null,"output_tokens":3,"server_tool_use":null}}`

const openaiErrorJSON = `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`

const anthropicErrorJSON = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`

// chatStream is the mock's chat stream with stream_options.include_usage:
// every chunk before the last carries "usage":null.
const chatStream = `data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1767225600,"model":"m","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1767225600,"model":"m","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"content":"say \"usage\":{\"prompt_tokens\":99} héllo 世界"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1767225600,"model":"m","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1767225600,"model":"m","system_fingerprint":"fp_mock","choices":[],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":128,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

`

// chatStreamNoUsage is a chat stream whose client did not ask for usage.
const chatStreamNoUsage = `data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1767225600,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1767225600,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}

data: [DONE]

`

const completionStream = "data: {\"id\":\"cmpl-mock2\",\"object\":\"text_completion\",\"created\":1767225600,\"model\":\"m2\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{\"text\":\"This\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\r\n\r\n" +
	"data: {\"id\":\"cmpl-mock2\",\"object\":\"text_completion\",\"created\":1767225600,\"model\":\"m2\",\"system_fingerprint\":\"fp_mock\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\r\n\r\n" +
	"data: [DONE]\r\n\r\n"

const responsesStream = `event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_mock3","object":"response","created_at":1767225600,"status":"in_progress","completed_at":null,"model":"m3","output":[],"tools":[],"usage":null,"user":null,"metadata":{}}}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_mock3","object":"response","created_at":1767225600,"status":"in_progress","completed_at":null,"model":"m3","output":[],"tools":[],"usage":null,"user":null,"metadata":{}}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_mock3","type":"message","status":"in_progress","content":[],"role":"assistant"}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_mock3","output_index":0,"content_index":0,"delta":"héllo","logprobs":[]}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":4,"item_id":"msg_mock3","output_index":0,"content_index":0,"text":"héllo","logprobs":[]}

event: response.completed
data: {"type":"response.completed","sequence_number":5,"response":{"id":"resp_mock3","object":"response","created_at":1767225600,"status":"completed","completed_at":1767225600,"model":"m3","output":[{"id":"msg_mock3","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"héllo"}],"role":"assistant"}],"tools":[],"usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":44},"user":null,"metadata":{}}}

`

// messagesStream is the Anthropic event sequence; message_delta's
// output_tokens is the running total.
const messagesStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \"usage\": {"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" héllo 世界"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

`

// messagesStreamDeltaInput has a message_delta that repeats the input and
// cache counts, with new values, and a thinking breakdown.
const messagesStreamDeltaInput = `event: message_start
data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","content":[],"model":"claude-opus-4-1","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":12,"cache_read_input_tokens":5,"cache_creation_input_tokens":null,"output_tokens":30,"output_tokens_details":{"thinking_tokens":20},"server_tool_use":null}}

event: message_stop
data: {"type":"message_stop"}

`

// messagesStream1h reports its 1-hour cache write in message_start; its
// message_delta repeats the total without the split.
const messagesStream1h = `event: message_start
data: {"type":"message_start","message":{"id":"msg_3","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"cache_creation_input_tokens":5000,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":5000},"output_tokens":1,"service_tier":"standard"}}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":3,"cache_creation_input_tokens":5000,"cache_read_input_tokens":0,"output_tokens":40}}

event: message_stop
data: {"type":"message_stop"}

`

type bodyCase struct {
	name   string
	stream bool
	body   string
	want   Tokens
}

var cases = []bodyCase{
	{"chat json, cached", false, chatJSON, Tokens{Input: 93, CacheRead: 1024, Output: 46}},
	{"chat json, reasoning and cache write", false, chatReasoningJSON, Tokens{Input: 11, CacheCreation: 64, Output: 1186, Reasoning: 1024}},
	{"completions json", false, completionJSON, Tokens{Input: 7, Output: 10}},
	{"embeddings json", false, embeddingsJSON, Tokens{Input: 8}},
	{"responses json", false, responsesJSON, Tokens{Input: 72, CacheRead: 256, Output: 52, Reasoning: 12}},
	{"messages json", false, messageJSON, Tokens{Input: 2095, CacheRead: 1800, CacheCreation: 248, Output: 503, Reasoning: 120}},
	{"messages json, null cache counts", false, messageNullCacheJSON, Tokens{Input: 12, Output: 3}},
	{"messages json, 1-hour cache write", false, messageCache1hJSON, Tokens{Input: 10, CacheCreation: 100300, CacheCreation1h: 100000, Output: 5}},
	{"messages json, 1-hour split without its total", false, `{"usage":{"input_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":7},"output_tokens":1}}`, Tokens{Input: 1, Output: 1}},
	{"openai error", false, openaiErrorJSON, Tokens{}},
	{"anthropic error", false, anthropicErrorJSON, Tokens{}},
	{"usage null", false, `{"id":"x","usage":null}`, Tokens{}},
	{"not json", false, `<html>502 Bad Gateway</html>`, Tokens{}},
	{"empty", false, ``, Tokens{}},
	{"chat stream with usage", true, chatStream, Tokens{Input: 86, CacheRead: 1920, Output: 300, Reasoning: 128}},
	{"chat stream without usage", true, chatStreamNoUsage, Tokens{}},
	{"completions stream, crlf", true, completionStream, Tokens{Input: 5, Output: 1}},
	{"responses stream", true, responsesStream, Tokens{Input: 40, Output: 4}},
	{"messages stream", true, messagesStream, Tokens{Input: 472, CacheRead: 2048, Output: 89}},
	{"messages stream, 1-hour cache write", true, messagesStream1h, Tokens{Input: 3, CacheCreation: 5000, CacheCreation1h: 5000, Output: 40}},
	{"messages stream, delta repeats input", true, messagesStreamDeltaInput, Tokens{Input: 12, CacheRead: 5, CacheCreation: 100, Output: 30, Reasoning: 20}},
	{"anthropic error event", true, "event: error\ndata: " + anthropicErrorJSON + "\n\n", Tokens{}},
	{"stream cut before the usage chunk ends", true, chatStream[:strings.Index(chatStream, `"completion_tokens"`)], Tokens{}},
}

func read(stream bool, chunks ...string) (Tokens, *Reader) {
	r := NewReader(stream)
	for _, c := range chunks {
		r.Write([]byte(c))
	}
	return r.Close(), r
}

func TestReader(t *testing.T) {
	t.Parallel()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, r := read(tt.stream, tt.body)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Tokens (-want +got):\n%s", diff)
			}
			if r.Truncated() {
				t.Error("Truncated = true")
			}
			if again := r.Close(); again != got {
				t.Errorf("second Close = %+v, first %+v", again, got)
			}
		})
	}
}

// Every split of a body, one cut anywhere or two cuts on a stride (inside
// "\r\n", inside a UTF-8 character, inside "usage"), gives the same Tokens
// as the whole.
func TestReaderAnySplit(t *testing.T) {
	t.Parallel()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.body
			for i := 0; i <= len(b); i++ {
				if got, _ := read(tt.stream, b[:i], b[i:]); got != tt.want {
					t.Fatalf("cut at %d: %+v, want %+v", i, got, tt.want)
				}
			}
			for i := 0; i <= len(b); i += 7 {
				for j := i; j <= len(b); j += 13 {
					if got, _ := read(tt.stream, b[:i], b[i:j], b[j:]); got != tt.want {
						t.Fatalf("cuts at %d,%d: %+v, want %+v", i, j, got, tt.want)
					}
				}
			}
			chunks := make([]string, len(b))
			for i := range b {
				chunks[i] = b[i : i+1]
			}
			if got, _ := read(tt.stream, chunks...); got != tt.want {
				t.Fatalf("byte by byte: %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A stream's Tokens grow as its events arrive, before Close.
func TestReaderStreamTokensSoFar(t *testing.T) {
	t.Parallel()
	r := NewReader(true)
	start, rest, _ := strings.Cut(messagesStream, "event: content_block_start")
	r.Write([]byte(start))
	if got, want := r.Tokens(), (Tokens{Input: 472, CacheRead: 2048, Output: 1}); got != want {
		t.Errorf("after message_start: %+v, want %+v", got, want)
	}
	r.Write([]byte("event: content_block_start" + rest))
	if got, want := r.Tokens(), (Tokens{Input: 472, CacheRead: 2048, Output: 89}); got != want {
		t.Errorf("after message_delta: %+v, want %+v", got, want)
	}
	r.Close()
	r.Write([]byte("event: message_delta\ndata: {\"usage\":{\"output_tokens\":1000}}\n\n"))
	if got := r.Tokens(); got.Output != 89 {
		t.Errorf("a Write after Close changed Output to %d", got.Output)
	}
}

func TestReaderJSONTooLarge(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat(" ", MaxJSONBody)
	got, r := read(false, chatJSON[:len(chatJSON)-1], pad, "}")
	if !got.IsZero() || !r.Truncated() {
		t.Errorf("body past MaxJSONBody, usage long before its end: Tokens %+v, Truncated %v; want zero and true", got, r.Truncated())
	}
	// Usage where the APIs put it, at the end of a body past the bound (an
	// answer with logprobs), is read from the body's tail, in any chunks;
	// a "usage" inside the answer's text is no key.
	want, _ := read(false, chatJSON)
	i := strings.Index(chatJSON, `"choices"`)
	big := chatJSON[:i] + `"logprobs":[` + strings.Repeat(`{"token":"\"usage\":{\"prompt_tokens\":7}","logprob":-0.1},`, MaxJSONBody/50) +
		`{}],` + chatJSON[i:]
	for _, size := range []int{1 << 20, 65537, 4096} {
		var chunks []string
		for b := big; len(b) > 0; b = b[min(size, len(b)):] {
			chunks = append(chunks, b[:min(size, len(b))])
		}
		if got, r := read(false, chunks...); got != want || !r.Truncated() {
			t.Errorf("%d-byte chunks of a %d-byte answer: Tokens %+v, Truncated %v; want %+v, true", size, len(big), got, r.Truncated(), want)
		}
	}
	messages := `{"content":[{"type":"text","text":"` + strings.Repeat("word ", MaxJSONBody/4) + `"}],"stop_reason":"end_turn",` +
		"\n  \"usage\" : {\"input_tokens\": 12, \"output_tokens\": 900000}\n}"
	if got, _ := read(false, messages); got.Input != 12 || got.Output != 900000 {
		t.Errorf("a Messages answer past the bound: Tokens %+v, want 12 in and 900000 out", got)
	}
	cut := `{"a":"` + strings.Repeat("x", MaxJSONBody) + `","usage":{"prompt_tokens":5,"completion_tokens":`
	if got, _ := read(false, cut); !got.IsZero() {
		t.Errorf("a body cut inside its usage: Tokens %+v, want none", got)
	}
	// Exactly at the bound is still read.
	body := chatJSON[:len(chatJSON)-1] + strings.Repeat(" ", MaxJSONBody-len(chatJSON)) + "}"
	if got, r := read(false, body); got.IsZero() || r.Truncated() {
		t.Errorf("body of MaxJSONBody bytes: Tokens %+v, Truncated %v", got, r.Truncated())
	}
}

// The service tier an OpenAI answer was served at is read with its usage;
// Anthropic's usage.service_tier is not OpenAI's and is not read.
func TestServiceTier(t *testing.T) {
	t.Parallel()
	chunk := func(tier, usage string) string {
		return `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","service_tier":"` + tier + `","choices":[],"usage":` + usage + "}\n\n"
	}
	respEvent := func(typ, tier, usage string) string {
		return "event: " + typ + "\ndata: {\"type\":\"" + typ + "\",\"response\":{\"id\":\"r\",\"object\":\"response\",\"service_tier\":\"" + tier + "\",\"usage\":" + usage + "}}\n\n"
	}
	const u = `{"prompt_tokens":5,"completion_tokens":1}`
	const ru = `{"input_tokens":5,"output_tokens":1}`
	for _, tc := range []struct {
		name   string
		stream bool
		body   string
		want   string
	}{
		{"chat json", false, strings.Replace(chatJSON, `"service_tier":"default"`, `"service_tier":"priority"`, 1), "priority"},
		{"chat json, default", false, chatJSON, "default"},
		{"responses json", false, strings.Replace(responsesJSON, `"tools":[]`, `"service_tier":"flex","tools":[]`, 1), "flex"},
		{"messages json", false, strings.Replace(messageJSON, `"service_tier":"standard"`, `"service_tier":"priority"`, 1), ""},
		{"chat stream", true, chunk("priority", "null") + chunk("priority", u) + "data: [DONE]\n\n", "priority"},
		{"chat stream cut before its usage", true, chunk("priority", "null") + chunk("priority", "null"), "priority"},
		{"chat stream, the usage chunk's tier", true, chunk("auto", "null") + chunk("flex", u), "flex"},
		{"responses stream", true, respEvent("response.created", "auto", "null") + respEvent("response.completed", "priority", ru), "priority"},
		{"messages stream", true, strings.Replace(messagesStream, `"output_tokens":1}`, `"output_tokens":1,"service_tier":"priority"}`, 1), ""},
	} {
		_, r := read(tc.stream, tc.body)
		if got := r.ServiceTier(); got != tc.want {
			t.Errorf("%s: ServiceTier %q, want %q", tc.name, got, tc.want)
		}
	}
	// A body past MaxJSONBody: the tier at its end, outside the usage.
	pad := `{"choices":[{"logprobs":"` + strings.Repeat("x", MaxJSONBody) + `"}],`
	for body, want := range map[string]string{
		pad + `"usage":{"prompt_tokens":5,"completion_tokens":1},"service_tier":"priority","system_fingerprint":"fp"}`: "priority",
		pad + `"service_tier":"flex","usage":{"prompt_tokens":5,"completion_tokens":1}}`:                               "flex",
		pad + `"usage":{"input_tokens":5,"output_tokens":1,"service_tier":"priority"}}`:                                "",
		pad + `"usage":{"prompt_tokens":5},"service_tier":"prior`:                                                      "",
	} {
		if _, r := read(false, body); r.ServiceTier() != want || !r.Truncated() {
			t.Errorf("a body past the bound ending %s: ServiceTier %q, want %q", body[len(pad):], r.ServiceTier(), want)
		}
	}
}

func TestTokensArithmetic(t *testing.T) {
	t.Parallel()
	a := Tokens{Input: 1, Output: 2, CacheRead: 3, CacheCreation: 4, CacheCreation1h: 3, Reasoning: 1}
	if got, want := a.Add(a), (Tokens{Input: 2, Output: 4, CacheRead: 6, CacheCreation: 8, CacheCreation1h: 6, Reasoning: 2}); got != want {
		t.Errorf("Add = %+v, want %+v", got, want)
	}
	if a.Total() != 10 {
		t.Errorf("Total = %d, want 10 (Reasoning is part of Output, CacheCreation1h of CacheCreation)", a.Total())
	}
	if a.IsZero() || !(Tokens{}).IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestHasUsageObject(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		`{"usage":null}`:                  false,
		`{"usage" : {"a":1}}`:             true,
		`{"usage":null,"x":{"usage":{}}}`: true,
		`{"text":"\"usage\":{"}`:          false,
		`{"usage"`:                        false,
		`{"usage":`:                       false,
		`"usage":[]`:                      false,
	} {
		if got := hasUsageObject([]byte(in)); got != want {
			t.Errorf("hasUsageObject(%s) = %v, want %v", in, got, want)
		}
	}
}

func FuzzUsageReader(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.body), c.stream, uint16(len(c.body)/2), uint16(len(c.body)/3))
	}
	f.Fuzz(func(t *testing.T, body []byte, stream bool, cut1, cut2 uint16) {
		whole, _ := read(stream, string(body))
		i, j := int(cut1)%(len(body)+1), int(cut2)%(len(body)+1)
		if i > j {
			i, j = j, i
		}
		r := NewReader(stream)
		r.Write(body[:i])
		soFar := r.Tokens()
		r.Write(body[i:j])
		r.Write(body[j:])
		got := r.Close()
		if got != whole {
			t.Fatalf("cuts at %d,%d: %+v, whole body: %+v", i, j, got, whole)
		}
		if !stream && !soFar.IsZero() {
			t.Fatalf("JSON body reported %+v before Close", soFar)
		}
	})
}

// chatStreamOf is a chat stream of n content chunks and a usage chunk, one
// event per element, as an upstream sends it.
func chatStreamOf(n int) [][]byte {
	var out [][]byte
	head := `data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":[`
	for i := range n {
		out = append(out, fmt.Appendf(nil, `%s{"index":0,"delta":{"content":" word %d"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", head, i))
	}
	out = append(out, fmt.Appendf(nil, `%s],"usage":{"prompt_tokens":20,"completion_tokens":%d,"total_tokens":%d}}`+"\n\ndata: [DONE]\n\n", head, n, 20+n))
	return out
}

func messagesStreamOf(n int) [][]byte {
	out := [][]byte{[]byte(`event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

`)}
	for i := range n {
		out = append(out, fmt.Appendf(nil, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" word %d\"}}\n\n", i))
	}
	out = append(out, fmt.Appendf(nil, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"+
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":%d}}\n\n"+
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", n))
	return out
}

func BenchmarkReaderStream(b *testing.B) {
	for _, bc := range []struct {
		name   string
		chunks [][]byte
	}{
		{"openai-chat-50", chatStreamOf(50)},
		{"anthropic-messages-50", messagesStreamOf(50)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := 0
			for _, c := range bc.chunks {
				n += len(c)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				r := NewReader(true)
				for _, c := range bc.chunks {
					r.Write(c)
				}
				if r.Close().Output != 50 {
					b.Fatal("wrong usage")
				}
			}
		})
	}
}
