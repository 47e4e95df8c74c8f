package translate

import (
	"strings"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"

	"switchyard/internal/apierr"
	"switchyard/internal/sse"
)

// NewChatToMessagesStream translates an OpenAI chat.completion.chunk stream
// into Anthropic Messages events for a client that asked for clientModel:
// message_start, then for each text run or tool call a content_block_start,
// its deltas and a content_block_stop, then message_delta (stop reason and
// usage) and message_stop. Only choice 0 is read. message_delta waits for
// [DONE] (or the end of the stream) because OpenAI sends usage after the
// finish reason.
func NewChatToMessagesStream(clientModel string) Stream {
	return newChatToMessagesStream(defaultEnv, clientModel)
}

func newChatToMessagesStream(e env, clientModel string) *chatToMessagesStream {
	return &chatToMessagesStream{env: e, model: clientModel, tools: map[int64]streamTool{}}
}

var _ Stream = (*chatToMessagesStream)(nil)

type chatToMessagesStream struct {
	env     env
	model   string
	scanner sse.Scanner
	out     []byte

	started  bool
	id       string
	next     int    // index of the next content block
	open     string // "", "text" or "tool": the open block's kind
	openTool int    // the open tool call's number (streamTool)
	tools    map[int64]streamTool
	calls    int // tool calls begun
	usage    messagesUsage
	finish   string // Anthropic stop_reason, once the upstream gave one
	done     bool
}

// Write implements Stream.
func (s *chatToMessagesStream) Write(chunk []byte) []byte {
	s.out = nil
	if !s.done {
		s.scanner.Feed(chunk, s.event)
	}
	return s.out
}

// Close implements Stream.
func (s *chatToMessagesStream) Close() []byte {
	s.out = nil
	if s.done {
		return s.out
	}
	s.scanner.Flush(s.event)
	if !s.done {
		if s.finish != "" {
			s.end()
		} else {
			s.fail("api_error", streamEndedEarly)
		}
	}
	return s.out
}

func (s *chatToMessagesStream) event(ev sse.Event) {
	if s.done {
		return
	}
	if strings.TrimSpace(string(ev.Data)) == "[DONE]" {
		if s.finish == "" { // an upstream that gave no finish_reason
			s.finish = stopReason("", s.calls > 0)
		}
		s.end()
		return
	}
	if !gjson.ValidBytes(ev.Data) {
		return
	}
	d := gjson.ParseBytes(ev.Data)
	if !d.IsObject() {
		return
	}
	if e := d.Get("error"); e.Exists() && e.Type != gjson.Null {
		msg := e.Get("message").String()
		if e.Type == gjson.String {
			msg = e.String()
		}
		if msg == "" {
			msg = "upstream error"
		}
		s.fail(anthropicTypeForOpenAI(e.Get("type").String()), msg)
		return
	}
	if u := d.Get("usage"); u.IsObject() {
		s.usage = messagesUsageFor(chatUsage{
			PromptTokens:        int(u.Get("prompt_tokens").Int()),
			CompletionTokens:    int(u.Get("completion_tokens").Int()),
			PromptTokensDetails: &promptTokensDetail{CachedTokens: int(u.Get("prompt_tokens_details.cached_tokens").Int())},
		})
	}
	if !s.started {
		s.start(d.Get("id").String())
	}
	d.Get("choices").ForEach(func(_, c gjson.Result) bool {
		if c.Get("index").Int() == 0 {
			s.choice(c)
		}
		return !s.done
	})
}

// choice handles choice 0 of one chunk.
func (s *chatToMessagesStream) choice(c gjson.Result) {
	delta := c.Get("delta")
	for _, key := range []string{"content", "refusal"} {
		if text := delta.Get(key); text.Type == gjson.String && text.Str != "" {
			s.text(text.Str)
		}
	}
	for j, tc := range delta.Get("tool_calls").Array() {
		idx := int64(j)
		if v := tc.Get("index"); v.Exists() {
			idx = v.Int()
		}
		// A new id and name at an index begin a new call: some
		// OpenAI-compatible servers (Ollama, SGLang) send each of parallel
		// calls whole, all at index 0 or with none. A new id alone does not:
		// others send one on every delta of a call.
		t, known := s.tools[idx]
		if id := tc.Get("id").String(); !known || id != "" && id != t.id && tc.Get("function.name").String() != "" {
			s.closeBlock()
			if id == "" {
				id = "toolu_" + strings.TrimPrefix(s.id, "msg_") + "_" + itoa(s.calls)
			}
			t = streamTool{n: s.calls, id: id}
			s.tools[idx], s.calls = t, s.calls+1
			s.startBlock("tool", startBlock{Type: "tool_use", ID: id, Name: tc.Get("function.name").String(), Input: json.RawMessage(`{}`)})
			s.openTool = t.n
		} else if s.open != "tool" || s.openTool != t.n {
			// An Anthropic block cannot be reopened once stopped.
			s.fail("api_error", "the upstream interleaved the arguments of parallel tool calls, which cannot be translated")
			return
		}
		if args := tc.Get("function.arguments").String(); args != "" {
			s.emit("content_block_delta", streamEvent{Index: s.blockIndex(), Delta: jsonDelta{Type: "input_json_delta", PartialJSON: args}})
		}
	}
	if r := c.Get("finish_reason"); r.Type == gjson.String && r.Str != "" {
		s.finish = stopReason(r.Str, s.calls > 0)
		s.closeBlock()
	}
}

// streamTool is a tool call of the stream: its number among them, and its
// id as the client gets it.
type streamTool struct {
	n  int
	id string
}

func (s *chatToMessagesStream) start(chatID string) {
	s.started = true
	s.id = s.env.messageIDFor(chatID)
	s.emit("message_start", streamEvent{Message: &messagesResponse{
		ID: s.id, Type: "message", Role: "assistant", Model: s.model, Content: []block{}, Usage: s.usage,
	}})
}

func (s *chatToMessagesStream) text(t string) {
	if s.open != "text" {
		s.closeBlock()
		empty := ""
		s.startBlock("text", startBlock{Type: "text", Text: &empty})
	}
	s.emit("content_block_delta", streamEvent{Index: s.blockIndex(), Delta: textDelta{Type: "text_delta", Text: t}})
}

func (s *chatToMessagesStream) startBlock(kind string, b startBlock) {
	s.open = kind
	s.emit("content_block_start", streamEvent{Index: s.blockIndex(), ContentBlock: &b})
}

// blockIndex is the index of the open block.
func (s *chatToMessagesStream) blockIndex() *int {
	i := s.next
	return &i
}

func (s *chatToMessagesStream) closeBlock() {
	if s.open == "" {
		return
	}
	s.emit("content_block_stop", streamEvent{Index: s.blockIndex()})
	s.open = ""
	s.next++
}

// end closes the message: message_delta with the stop reason and the usage
// the upstream reported, then message_stop.
func (s *chatToMessagesStream) end() {
	if !s.started {
		s.start("")
	}
	s.closeBlock()
	u := s.usage
	s.emit("message_delta", streamEvent{Delta: messageDelta{StopReason: s.finish}, Usage: &deltaUsage{
		InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CacheReadInputTokens: u.CacheReadInputTokens,
	}})
	s.emit("message_stop", streamEvent{})
	s.done = true
}

// fail closes the open block and sends an Anthropic error event, which ends
// the stream for Anthropic clients.
func (s *chatToMessagesStream) fail(typ, msg string) {
	s.closeBlock()
	s.emit("error", streamEvent{Error: &apierr.AnthropicError{Type: typ, Message: msg}})
	s.done = true
}

func (s *chatToMessagesStream) emit(name string, ev streamEvent) {
	ev.Type = name
	s.out = sse.Append(s.out, name, mustMarshal(ev))
}

// anthropicTypeForOpenAI maps the type of an error OpenAI sends mid-stream.
func anthropicTypeForOpenAI(t string) string {
	switch t {
	case "invalid_request_error", "authentication_error", "permission_error", "rate_limit_error":
		return t
	}
	return "api_error"
}

// streamEvent is any Anthropic stream event; Type says which fields are set.
type streamEvent struct {
	Type         string                 `json:"type"`
	Index        *int                   `json:"index,omitempty"`
	Message      *messagesResponse      `json:"message,omitempty"`
	ContentBlock *startBlock            `json:"content_block,omitempty"`
	Delta        any                    `json:"delta,omitempty"`
	Usage        *deltaUsage            `json:"usage,omitempty"`
	Error        *apierr.AnthropicError `json:"error,omitempty"`
}

type startBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type textDelta struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type jsonDelta struct {
	Type        string `json:"type"`
	PartialJSON string `json:"partial_json"`
}

type messageDelta struct {
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
}

type deltaUsage struct {
	InputTokens          int `json:"input_tokens"`
	OutputTokens         int `json:"output_tokens"`
	CacheReadInputTokens int `json:"cache_read_input_tokens"`
}
