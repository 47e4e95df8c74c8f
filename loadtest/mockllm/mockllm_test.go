package mockllm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/loadtest/agentbody"
)

// fast has no latency and no pause between chunks.
var fast = Options{Latency: -1, ChunkInterval: -1}

func strictDecode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %T strictly: %v\n%s", v, err, data)
	}
	if dec.More() {
		t.Fatalf("trailing data after %T: %s", v, data)
	}
	return v
}

func post(t *testing.T, srv *httptest.Server, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func ptr[T any](v T) *T { return &v }

// responseObject is the completed Responses API object the mock sends for
// model, without id and usage.
func responseObject(model string, output []outputMessage) response {
	r := response{
		Object: "response", CreatedAt: created, Status: "completed", CompletedAt: ptr[int64](created), Model: model,
		Output: output, ParallelToolCalls: true, Temperature: 1, ToolChoice: "auto", Tools: []json.RawMessage{},
		TopP: 1, Truncation: "disabled", Metadata: map[string]string{},
	}
	r.Text.Format.Type = "text"
	return r
}

func TestNonStreaming(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)

	tests := []struct {
		name  string
		path  string
		body  string
		check func(t *testing.T, body []byte)
	}{
		{
			name: "chat",
			path: "/v1/chat/completions",
			body: `{"model":"gpt-x \"quoted\"","messages":[{"role":"user","content":"hi"}]}`,
			check: func(t *testing.T, body []byte) {
				got := strictDecode[chatCompletion](t, body)
				checkPrefix(t, got.ID, "chatcmpl-mock")
				checkOpenAIUsage(t, got.Usage)
				got.ID, got.Usage = "", openaiUsage{}
				want := chatCompletion{
					Object: "chat.completion", Created: created, Model: `gpt-x "quoted"`, SystemFingerprint: "fp_mock",
					Choices: []chatChoice{{Message: chatMessage{Role: "assistant", Content: content}, FinishReason: "stop"}},
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			},
		},
		{
			name: "completions",
			path: "/v1/completions",
			body: `{"model":"davinci","prompt":"say hi"}`,
			check: func(t *testing.T, body []byte) {
				got := strictDecode[textCompletion](t, body)
				checkPrefix(t, got.ID, "cmpl-mock")
				if got.Usage == nil {
					t.Fatal("no usage")
				}
				checkOpenAIUsage(t, *got.Usage)
				got.ID, got.Usage = "", nil
				want := textCompletion{
					Object: "text_completion", Created: created, Model: "davinci", SystemFingerprint: "fp_mock",
					Choices: []textChoice{{Text: content, FinishReason: ptr("stop")}},
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			},
		},
		{
			name: "embeddings with two inputs",
			path: "/v1/embeddings",
			body: `{"model":"embed-1","input":["a","b"]}`,
			check: func(t *testing.T, body []byte) {
				got := strictDecode[embeddingList](t, body)
				if got.Object != "list" || got.Model != "embed-1" || len(got.Data) != 2 {
					t.Fatalf("got %+v", got)
				}
				for i, e := range got.Data {
					if e.Object != "embedding" || e.Index != i || len(e.Embedding) != embeddingDims {
						t.Errorf("data[%d] = %+v", i, e)
					}
				}
				if got.Usage.PromptTokens <= 0 || got.Usage.TotalTokens != got.Usage.PromptTokens {
					t.Errorf("usage = %+v", got.Usage)
				}
			},
		},
		{
			name: "embeddings of token ids are one input",
			path: "/v1/embeddings",
			body: `{"model":"embed-1","input":[1,2,3]}`,
			check: func(t *testing.T, body []byte) {
				if got := strictDecode[embeddingList](t, body); len(got.Data) != 1 {
					t.Errorf("got %d embeddings, want 1", len(got.Data))
				}
			},
		},
		{
			name: "responses",
			path: "/v1/responses",
			body: `{"model":"gpt-r","input":"hi"}`,
			check: func(t *testing.T, body []byte) {
				got := strictDecode[response](t, body)
				checkPrefix(t, got.ID, "resp_mock")
				if got.Usage == nil || got.Usage.InputTokens <= 0 || got.Usage.OutputTokens != len(words) ||
					got.Usage.TotalTokens != got.Usage.InputTokens+got.Usage.OutputTokens {
					t.Errorf("usage = %+v", got.Usage)
				}
				if len(got.Output) != 1 {
					t.Fatalf("output = %+v", got.Output)
				}
				checkPrefix(t, got.Output[0].ID, "msg_mock")
				got.ID, got.Usage, got.Output[0].ID = "", nil, ""
				want := responseObject("gpt-r", []outputMessage{{Type: "message", Status: "completed", Role: "assistant",
					Content: []outputText{{Type: "output_text", Text: content, Annotations: []json.RawMessage{}, Logprobs: []json.RawMessage{}}}}})
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			},
		},
		{
			name: "anthropic messages",
			path: "/v1/messages",
			body: `{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
			check: func(t *testing.T, body []byte) {
				got := strictDecode[message](t, body)
				checkPrefix(t, got.ID, "msg_mock")
				if got.Usage.InputTokens <= 0 || got.Usage.OutputTokens != len(words) {
					t.Errorf("usage = %+v", got.Usage)
				}
				got.ID, got.Usage = "", anthropicUsage{}
				want := message{
					Type: "message", Role: "assistant", Model: "claude-x",
					Content: []contentBlock{{Type: "text", Text: content}}, StopReason: ptr("end_turn"),
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			},
		},
		{
			name: "anthropic count tokens",
			path: "/v1/messages/count_tokens",
			body: `{"model":"claude-x","messages":[{"role":"user","content":"hello there"}]}`,
			check: func(t *testing.T, body []byte) {
				if got := strictDecode[countTokens](t, body); got.InputTokens <= 0 {
					t.Errorf("input_tokens = %d", got.InputTokens)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := post(t, srv, tt.path, tt.body, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			tt.check(t, body)
		})
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	got := strictDecode[modelList](t, body)
	want := modelList{Object: "list"}
	for _, m := range Models {
		want.Data = append(want.Data, model{ID: m, Object: "model", Created: created, OwnedBy: "mock"})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func checkPrefix(t *testing.T, id, prefix string) {
	t.Helper()
	if !strings.HasPrefix(id, prefix) || len(id) == len(prefix) {
		t.Errorf("id %q does not start with %q followed by a sequence number", id, prefix)
	}
}

func checkOpenAIUsage(t *testing.T, u openaiUsage) {
	t.Helper()
	if u.PromptTokens <= 0 || u.CompletionTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("inconsistent usage %+v", u)
	}
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	name string // "" when the event had no event: line
	data string
}

// parseSSE checks the framing line by line: each event is an optional
// "event: NAME" line, exactly one "data: ..." line and an empty line, and
// the stream ends right after an event.
func parseSSE(t *testing.T, body []byte) []sseEvent {
	t.Helper()
	var events []sseEvent
	var cur sseEvent
	haveData := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case l == "":
			if !haveData {
				t.Fatalf("line %d: empty line ends an event without data", line)
			}
			events = append(events, cur)
			cur, haveData = sseEvent{}, false
		case strings.HasPrefix(l, "event: "):
			if cur.name != "" || haveData {
				t.Fatalf("line %d: event line %q in the middle of an event", line, l)
			}
			cur.name = strings.TrimPrefix(l, "event: ")
		case strings.HasPrefix(l, "data: "):
			if haveData {
				t.Fatalf("line %d: second data line in one event", line)
			}
			cur.data, haveData = strings.TrimPrefix(l, "data: "), true
		default:
			t.Fatalf("line %d: unexpected line %q", line, l)
		}
	}
	if haveData || cur.name != "" {
		t.Fatalf("stream ends inside an event")
	}
	if !bytes.HasSuffix(body, []byte("\n\n")) {
		t.Fatalf("stream does not end with a blank line")
	}
	return events
}

func TestStreaming(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	const chunks = 4
	hdr := map[string]string{HeaderChunks: "4"}

	t.Run("chat", func(t *testing.T) {
		t.Parallel()
		_, body := postStream(t, srv, "/v1/chat/completions", `{"model":"m1","stream":true,"stream_options":{"include_usage":true}}`, hdr)
		events := parseSSE(t, body)
		// role chunk + chunks + finish chunk + usage chunk + [DONE]
		if len(events) != chunks+4 {
			t.Fatalf("got %d events, want %d", len(events), chunks+4)
		}
		var text strings.Builder
		for i, ev := range events[:len(events)-1] {
			if ev.name != "" {
				t.Errorf("event %d has an event: line %q", i, ev.name)
			}
			c := strictDecode[chatChunk](t, []byte(ev.data))
			if c.Object != "chat.completion.chunk" || c.Model != "m1" {
				t.Errorf("chunk %d = %+v", i, c)
			}
			switch {
			case i == 0:
				if len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant" || c.Choices[0].Delta.Content == nil ||
					*c.Choices[0].Delta.Content != "" || !strings.Contains(ev.data, `"refusal":null`) || c.Usage != nil {
					t.Fatalf("role chunk = %+v", c)
				}
			case i <= chunks:
				if len(c.Choices) != 1 || c.Choices[0].Delta.Content == nil || c.Choices[0].FinishReason != nil ||
					c.Choices[0].Delta.Role != "" || c.Usage != nil {
					t.Fatalf("content chunk %d = %+v", i, c)
				}
				text.WriteString(*c.Choices[0].Delta.Content)
			case i == chunks+1:
				if len(c.Choices) != 1 || c.Choices[0].FinishReason == nil || *c.Choices[0].FinishReason != "stop" {
					t.Errorf("finish chunk = %+v", c)
				}
			default:
				if len(c.Choices) != 0 || c.Usage == nil || c.Usage.CompletionTokens != chunks {
					t.Errorf("usage chunk = %+v", c)
				}
			}
			// Before the usage chunk, every chunk says "usage":null.
			if i <= chunks+1 && !strings.Contains(ev.data, `"usage":null`) {
				t.Errorf("chunk %d lacks \"usage\":null: %s", i, ev.data)
			}
		}
		if got, want := text.String(), strings.Join(words[:chunks], ""); got != want {
			t.Errorf("text = %q, want %q", got, want)
		}
		if last := events[len(events)-1]; last != (sseEvent{data: "[DONE]"}) {
			t.Errorf("last event = %+v, want data: [DONE]", last)
		}
	})

	t.Run("completions", func(t *testing.T) {
		t.Parallel()
		_, body := postStream(t, srv, "/v1/completions", `{"model":"m2","stream":true}`, hdr)
		events := parseSSE(t, body)
		if len(events) != chunks+2 {
			t.Fatalf("got %d events, want %d", len(events), chunks+2)
		}
		for i, ev := range events[:len(events)-1] {
			c := strictDecode[textCompletion](t, []byte(ev.data))
			if c.Object != "text_completion" || c.Model != "m2" || len(c.Choices) != 1 || c.Usage != nil {
				t.Errorf("chunk %d = %+v", i, c)
			}
		}
		if last := events[len(events)-1]; last.data != "[DONE]" {
			t.Errorf("last event = %+v", last)
		}
	})

	t.Run("responses", func(t *testing.T) {
		t.Parallel()
		_, body := postStream(t, srv, "/v1/responses", `{"model":"m3","stream":true,"input":"x"}`, hdr)
		events := parseSSE(t, body)
		text := strings.Join(words[:chunks], "")
		var names []string
		var deltas strings.Builder
		var itemID string
		for i, ev := range events {
			e := strictDecode[responseEvent](t, []byte(ev.data))
			if e.Type != ev.name {
				t.Errorf("event %d: event line %q, data type %q", i, ev.name, e.Type)
			}
			if e.SequenceNumber != i {
				t.Errorf("event %d: sequence_number %d", i, e.SequenceNumber)
			}
			names = append(names, e.Type)
			switch e.Type {
			case "response.created", "response.in_progress":
				if e.Response == nil {
					t.Fatalf("event %d (%s) has no response", i, e.Type)
				}
				got := *e.Response
				checkPrefix(t, got.ID, "resp_mock")
				got.ID = ""
				want := responseObject("m3", []outputMessage{})
				want.Status, want.CompletedAt = "in_progress", nil
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s response (-want +got)\n%s", e.Type, diff)
				}
			case "response.output_item.added", "response.output_item.done":
				if e.OutputIndex == nil || *e.OutputIndex != 0 || e.Item == nil {
					t.Fatalf("%s = %+v", e.Type, e)
				}
				itemID = e.Item.ID
				checkPrefix(t, itemID, "msg_mock")
				want := outputMessage{ID: itemID, Type: "message", Status: "in_progress", Role: "assistant", Content: []outputText{}}
				if e.Type == "response.output_item.done" {
					want.Status = "completed"
					want.Content = []outputText{{Type: "output_text", Text: text, Annotations: []json.RawMessage{}, Logprobs: []json.RawMessage{}}}
				}
				if diff := cmp.Diff(want, *e.Item); diff != "" {
					t.Errorf("%s item (-want +got)\n%s", e.Type, diff)
				}
			case "response.content_part.added", "response.content_part.done",
				"response.output_text.delta", "response.output_text.done":
				if e.ItemID != itemID || e.OutputIndex == nil || *e.OutputIndex != 0 || e.ContentIndex == nil || *e.ContentIndex != 0 {
					t.Errorf("event %d (%s): item_id %q (item %q), output_index %v, content_index %v",
						i, e.Type, e.ItemID, itemID, e.OutputIndex, e.ContentIndex)
				}
				switch e.Type {
				case "response.content_part.added":
					if e.Part == nil || e.Part.Type != "output_text" || e.Part.Text != "" {
						t.Errorf("part added = %+v", e.Part)
					}
				case "response.content_part.done":
					if e.Part == nil || e.Part.Text != text {
						t.Errorf("part done = %+v, want text %q", e.Part, text)
					}
				case "response.output_text.delta":
					if e.Delta == nil {
						t.Fatalf("delta event %d has no delta", i)
					}
					deltas.WriteString(*e.Delta)
				case "response.output_text.done":
					if e.Text == nil || *e.Text != text {
						t.Errorf("text done = %v, want %q", e.Text, text)
					}
				}
			case "response.completed":
				if e.Response == nil || e.Response.Status != "completed" || e.Response.Usage == nil ||
					e.Response.Usage.OutputTokens != chunks || len(e.Response.Output) != 1 ||
					e.Response.Output[0].ID != itemID || e.Response.Output[0].Content[0].Text != text {
					t.Errorf("completed event = %+v", e.Response)
				}
			}
		}
		if deltas.String() != text {
			t.Errorf("deltas = %q, want %q", deltas.String(), text)
		}
		want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
		for range chunks {
			want = append(want, "response.output_text.delta")
		}
		want = append(want, "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed")
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("event types (-want +got)\n%s", diff)
		}
	})

	t.Run("anthropic messages", func(t *testing.T) {
		t.Parallel()
		_, body := postStream(t, srv, "/v1/messages", `{"model":"claude-s","stream":true,"max_tokens":5,"messages":[]}`, hdr)
		events := parseSSE(t, body)
		var names []string
		var text strings.Builder
		for i, ev := range events {
			e := strictDecode[anthropicEvent](t, []byte(ev.data))
			if e.Type != ev.name {
				t.Errorf("event %d: event line %q, data type %q", i, ev.name, e.Type)
			}
			names = append(names, e.Type)
			switch e.Type {
			case "message_start":
				if e.Message == nil || e.Message.Model != "claude-s" || e.Message.Usage.InputTokens <= 0 {
					t.Errorf("message_start = %+v", e.Message)
				}
			case "content_block_delta":
				d := strictDecode[blockDelta](t, e.Delta)
				if d.Type != "text_delta" {
					t.Errorf("delta type %q", d.Type)
				}
				text.WriteString(d.Text)
			case "message_delta":
				d := strictDecode[messageDelta](t, e.Delta)
				if d.StopReason == nil || *d.StopReason != "end_turn" || e.Usage == nil || e.Usage.OutputTokens != chunks {
					t.Errorf("message_delta = %+v usage %+v", d, e.Usage)
				}
			}
		}
		want := []string{"message_start", "content_block_start", "ping"}
		for range chunks {
			want = append(want, "content_block_delta")
		}
		want = append(want, "content_block_stop", "message_delta", "message_stop")
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("event types (-want +got)\n%s", diff)
		}
		if got, want := text.String(), strings.Join(words[:chunks], ""); got != want {
			t.Errorf("text = %q, want %q", got, want)
		}
	})
}

func postStream(t *testing.T, srv *httptest.Server, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	resp, b := post(t, srv, path, body, hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	return resp, b
}

// TestStreamIsIncremental reads the first event of a stream while the mock
// is still waiting to send the rest: chunks are flushed one by one.
func TestStreamIsIncremental(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(Options{Latency: -1, ChunkInterval: time.Hour}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "data: {") {
		t.Errorf("first line = %q", line)
	}
}

func TestLatencyHeader(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	for _, stream := range []string{"false", "true"} {
		start := time.Now()
		resp, _ := post(t, srv, "/v1/chat/completions", `{"model":"m","stream":`+stream+`}`, map[string]string{HeaderLatencyMS: "80"})
		if el := time.Since(start); el < 80*time.Millisecond {
			t.Errorf("stream=%s: answered after %v, want at least 80ms", stream, el)
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d", resp.StatusCode)
		}
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	body := `{"model":"m","messages":[]}`
	_, b := post(t, srv, "/v1/chat/completions", body, map[string]string{HeaderEcho: "1", "X-Team": "bench"})
	got := strictDecode[chatCompletion](t, b)
	if got.Echo == nil {
		t.Fatal("no echo")
	}
	e := got.Echo
	if e.Path != "/v1/chat/completions" || e.BodyLen != len(body) || e.ContentLength != "27" ||
		e.Headers["x-team"] != "bench" || e.Headers["host"] == "" || e.Headers["content-type"] != "application/json" {
		t.Errorf("echo = %+v", e)
	}

	_, b = post(t, srv, "/v1/messages", `{"model":"c","stream":true}`, map[string]string{HeaderEcho: "1", HeaderChunks: "1"})
	ev := strictDecode[anthropicEvent](t, []byte(parseSSE(t, b)[0].data))
	if ev.Echo == nil || ev.Echo.Path != "/v1/messages" {
		t.Errorf("stream echo = %+v", ev.Echo)
	}

	_, b = post(t, srv, "/v1/chat/completions", body, nil)
	if strings.Contains(string(b), `"echo"`) {
		t.Errorf("echo without asking: %s", b)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	tests := []struct {
		name       string
		method     string
		path, body string
		status     int
		anthropic  bool
	}{
		{name: "chat truncated json", path: "/v1/chat/completions", body: `{"model":"m"`, status: 400},
		{name: "completions not json", path: "/v1/completions", body: `model=m`, status: 400},
		{name: "embeddings empty body", path: "/v1/embeddings", body: ``, status: 400},
		{name: "responses missing model", path: "/v1/responses", body: `{"input":"x"}`, status: 400},
		{name: "chat numeric model", path: "/v1/chat/completions", body: `{"model":7}`, status: 400},
		{name: "embeddings stream", path: "/v1/embeddings", body: `{"model":"e","stream":true}`, status: 400},
		{name: "messages bad json", path: "/v1/messages", body: `{"model":}`, status: 400, anthropic: true},
		{name: "count tokens bad json", path: "/v1/messages/count_tokens", body: `[`, status: 400, anthropic: true},
		{name: "unknown openai path", path: "/v1/nope", body: `{}`, status: 404},
		{name: "unknown anthropic path", path: "/v1/messages/nope", body: `{}`, status: 404, anthropic: true},
		{name: "get chat", method: http.MethodGet, path: "/v1/chat/completions", status: 405},
		{name: "post models", path: "/v1/models", body: `{}`, status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if tt.anthropic {
				e := strictDecode[anthropicError](t, b)
				if e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
					t.Errorf("error = %+v", e)
				}
			} else {
				e := strictDecode[openaiError](t, b)
				if e.Error.Type == "" || e.Error.Message == "" {
					t.Errorf("error = %+v", e)
				}
			}
		})
	}
}

// discard is a minimal ResponseWriter that keeps its header map, so the
// benchmark measures the handler alone.
type discard struct {
	h http.Header
	n int // bytes written
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }
func (d *discard) WriteHeader(int)             {}

type rewindBody struct{ *bytes.Reader }

func (rewindBody) Close() error { return nil }

func BenchmarkChatCompletion(b *testing.B) {
	h := New(fast)
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}`)
	rd := rewindBody{bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	req.Body = rd
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(body)
		h.ServeHTTP(w, req)
	}
}

func BenchmarkChatCompletionHTTP(b *testing.B) {
	srv := httptest.NewServer(New(fast))
	defer srv.Close()
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}]}`
	c := srv.Client()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// The mock takes OTLP/HTTP trace exports and drops them: a traced
// gateway's benchmark sends its spans there.
func TestTracesDropped(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Post(srv.URL+TracesPath, "application/x-protobuf", strings.NewReader("\x0a\x00"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-protobuf" || len(body) != 0 {
		t.Errorf("status %d, %q, body %q: want an empty OTLP answer", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// The mock reads a body's top-level members in one walk; of a name given
// twice the first decides, as a lookup by name finds it.
func TestFirstOfRepeatedNameDecides(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	body := `{"model":"first","stream":false,"stream_options":{"include_usage":false},` +
		`"messages":[{"role":"user","content":"hi"}],"model":"second","stream":true,"stream_options":{"include_usage":true}}`
	resp, got := post(t, srv, "/v1/chat/completions", body, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if c := strictDecode[chatCompletion](t, got); c.Model != "first" {
		t.Errorf("answered for model %q, want the first one's", c.Model)
	}
}

// BenchmarkAgentBody is the mock's work for an agent-shaped chat request
// (a system prompt, tools, a long history with tool results, model last):
// the load benchmark's mock shares the machine with the gateway, so what
// it spends per request is taken from the paths it measures.
func BenchmarkAgentBody(b *testing.B) {
	tools := fast
	tools.AnyToolID = true // as the benchmark runs it
	plain := tools
	plain.Plain = true
	for _, size := range []struct {
		name  string
		bytes int
	}{{"1KB", 1 << 10}, {"256KB", 256 << 10}, {"1MB", 1 << 20}} {
		body, err := agentbody.Generate(agentbody.Spec{API: agentbody.OpenAIChat, Model: "gpt-4o", Size: size.bytes})
		if err != nil {
			b.Fatal(err)
		}
		for mode, opts := range map[string]Options{"tools": tools, "plain": plain} {
			b.Run(mode+"/"+size.name, func(b *testing.B) { benchmarkBody(b, New(opts), body) })
		}
	}
}

func benchmarkBody(b *testing.B, h *Handler, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	w := &discard{h: http.Header{}}
	rd := rewindBody{bytes.NewReader(body)}
	req.Body = rd
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		h.ServeHTTP(w, req)
	}
}

// TestJudgesJSON: the mock refuses a body that is not JSON as a provider
// does, and takes one the gateway's scan would not read to its end (nested
// deeper than it reads) or whose strings are not UTF-8, as it always has.
func TestJudgesJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	deep := strings.Repeat("[", 300) + strings.Repeat("]", 300)
	for body, want := range map[string]int{
		`{"model":"m","messages":[]}`:                                http.StatusOK,
		`{"model":"m","messages":[],"x":` + deep + `}`:               http.StatusOK,
		"{\"model\":\"m\",\"messages\":[],\"x\":\"\xff\"}":           http.StatusOK,
		`{"model":"m","messages":[],}`:                               http.StatusBadRequest,
		`{"model":"m","messages":[`:                                  http.StatusBadRequest,
		`{"model":"m","messages":[],"x":` + deep[:len(deep)-1] + `}`: http.StatusBadRequest,
	} {
		resp, got := post(t, srv, "/v1/chat/completions", body, nil)
		if resp.StatusCode != want {
			t.Errorf("%.60q: status %d, want %d: %s", body, resp.StatusCode, want, got)
		}
		if want == http.StatusBadRequest && !strings.Contains(string(got), "not valid JSON") {
			t.Errorf("%.60q: %s, want it called not valid JSON", body, got)
		}
	}
}
