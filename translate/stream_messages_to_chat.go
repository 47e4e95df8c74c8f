package translate

import (
	"github.com/tidwall/gjson"

	"switchyard/internal/apierr"
	"switchyard/internal/sse"
)

// NewMessagesToChatStream translates an Anthropic Messages event stream into
// OpenAI chat.completion.chunk events for a client that asked for
// clientModel, ending with "data: [DONE]". The chunk before [DONE] carries
// usage with empty choices, as OpenAI sends for include_usage; it is sent
// whether or not the client asked, so the gateway can count tokens.
func NewMessagesToChatStream(clientModel string) Stream {
	return newMessagesToChatStream(defaultEnv, clientModel)
}

func newMessagesToChatStream(e env, clientModel string) *messagesToChatStream {
	return &messagesToChatStream{env: e, model: clientModel, toolIndex: map[int64]int{}}
}

var _ Stream = (*messagesToChatStream)(nil)

type messagesToChatStream struct {
	env     env
	model   string
	scanner sse.Scanner
	out     []byte

	started   bool // the first chunk (role) was sent
	id        string
	created   int64
	toolIndex map[int64]int // Anthropic block index -> OpenAI tool call index
	tools     int           // tool calls so far
	argued    []bool        // by OpenAI index: the call's arguments were sent
	usage     messagesUsage
	finish    string // set by message_delta
	done      bool   // [DONE] was sent
}

// Write implements Stream.
func (s *messagesToChatStream) Write(chunk []byte) []byte {
	s.out = nil
	if !s.done {
		s.scanner.Feed(chunk, s.event)
	}
	return s.out
}

// Close implements Stream.
func (s *messagesToChatStream) Close() []byte {
	s.out = nil
	if s.done {
		return s.out
	}
	s.scanner.Flush(s.event)
	if !s.done {
		if s.finish != "" {
			s.finishStream()
		} else {
			s.fail("server_error", streamEndedEarly)
		}
	}
	return s.out
}

// event handles one upstream event. Events whose data is not a JSON object
// are skipped, as is everything OpenAI cannot show (ping, thinking and
// signature deltas, citations).
func (s *messagesToChatStream) event(ev sse.Event) {
	if s.done || !gjson.ValidBytes(ev.Data) {
		return
	}
	d := gjson.ParseBytes(ev.Data)
	if !d.IsObject() {
		return
	}
	switch d.Get("type").String() {
	case "message_start":
		m := d.Get("message")
		if !s.started {
			s.id = s.env.chatIDFor(m.Get("id").String())
		}
		s.readUsage(m.Get("usage"))
		s.start()
	case "content_block_start":
		b := d.Get("content_block")
		switch b.Get("type").String() {
		case "text":
			s.content(b.Get("text").String())
		case "tool_use":
			i := s.tools
			s.tools++
			s.toolIndex[d.Get("index").Int()] = i
			s.argued = append(s.argued, false)
			s.chunk(chunkDelta{ToolCalls: []chatToolCall{{Index: &i, ID: b.Get("id").String(), Type: "function",
				Function: chatFunctionCall{Name: b.Get("name").String()}}}}, nil)
		}
	case "content_block_delta":
		delta := d.Get("delta")
		switch delta.Get("type").String() {
		case "text_delta":
			s.content(delta.Get("text").String())
		case "input_json_delta":
			i, ok := s.toolIndex[d.Get("index").Int()]
			if part := delta.Get("partial_json").String(); ok && part != "" {
				s.arguments(i, part)
			}
		}
	case "content_block_stop":
		// A call without input streams only empty deltas; OpenAI sends
		// "{}", which a client's JSON parser takes and "" it does not.
		if i, ok := s.toolIndex[d.Get("index").Int()]; ok && !s.argued[i] {
			s.arguments(i, "{}")
		}
	case "message_delta":
		s.readUsage(d.Get("usage"))
		if r := d.Get("delta.stop_reason"); r.Type == gjson.String && s.finish == "" {
			stop := r.String()
			s.finish = finishReason(&stop)
			s.chunk(chunkDelta{}, &s.finish)
		}
	case "message_stop":
		if s.finish == "" {
			s.finish = "stop"
			s.chunk(chunkDelta{}, &s.finish)
		}
		s.finishStream()
	case "error":
		e := d.Get("error")
		typ := e.Get("type").String()
		msg := e.Get("message").String()
		if msg == "" {
			msg = "upstream error"
		}
		s.fail(openAITypeFor(0, typ), msg)
	}
}

// arguments sends part of tool call i's arguments.
func (s *messagesToChatStream) arguments(i int, part string) {
	s.argued[i] = true
	s.chunk(chunkDelta{ToolCalls: []chatToolCall{{Index: &i, Function: chatFunctionCall{Arguments: part}}}}, nil)
}

// readUsage keeps the counts an event reports; message_delta repeats or
// completes what message_start said.
func (s *messagesToChatStream) readUsage(u gjson.Result) {
	set := func(dst *int, key string) {
		if v := u.Get(key); v.Exists() && v.Type == gjson.Number {
			*dst = int(v.Int())
		}
	}
	set(&s.usage.InputTokens, "input_tokens")
	set(&s.usage.OutputTokens, "output_tokens")
	set(&s.usage.CacheReadInputTokens, "cache_read_input_tokens")
	set(&s.usage.CacheCreationInputTokens, "cache_creation_input_tokens")
}

// start sends the first chunk (the assistant role) once.
func (s *messagesToChatStream) start() {
	if s.started {
		return
	}
	s.started = true
	if s.id == "" {
		s.id = s.env.chatIDFor("")
	}
	s.created = s.env.now()
	empty := ""
	s.chunk(chunkDelta{Role: "assistant", Content: &empty}, nil)
}

func (s *messagesToChatStream) content(text string) {
	if text != "" {
		s.chunk(chunkDelta{Content: &text}, nil)
	}
}

// chunk appends one chat.completion.chunk with one choice.
func (s *messagesToChatStream) chunk(delta chunkDelta, finish *string) {
	s.start()
	s.emit(chatChunk{Choices: []chunkChoice{{Delta: delta, FinishReason: finish}}})
}

func (s *messagesToChatStream) emit(c chatChunk) {
	c.ID, c.Object, c.Created, c.Model = s.id, "chat.completion.chunk", s.created, s.model
	s.out = sse.Append(s.out, "", mustMarshal(c))
}

// finishStream sends the usage chunk and [DONE].
func (s *messagesToChatStream) finishStream() {
	s.start()
	s.emit(chatChunk{Choices: []chunkChoice{}, Usage: chatUsageFor(s.usage)})
	s.out = sse.Append(s.out, "", []byte("[DONE]"))
	s.done = true
}

// fail sends an error the way OpenAI does mid-stream, a data line holding
// {"error":{...}}, then [DONE].
func (s *messagesToChatStream) fail(typ, msg string) {
	s.out = sse.Append(s.out, "", mustMarshal(apierr.OpenAI{Error: apierr.OpenAIError{Message: msg, Type: typ, Code: "upstream_error"}}))
	s.out = sse.Append(s.out, "", []byte("[DONE]"))
	s.done = true
}

type chatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *chatUsage    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content,omitempty"`
	ToolCalls []chatToolCall `json:"tool_calls,omitempty"`
}
