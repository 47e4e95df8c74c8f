package translate

import (
	"github.com/tidwall/gjson"

	"switchyard/internal/sse"
)

// NewGeminiToChatStream translates a Gemini streamGenerateContent?alt=sse
// stream (one GenerateContentResponse per event) into OpenAI
// chat.completion.chunk events for a client that asked for clientModel,
// ending with a usage chunk and "data: [DONE]" as an include_usage stream
// does. Gemini's stream has no end event: it is complete once an event
// carried a finishReason.
func NewGeminiToChatStream(clientModel string) Stream {
	return newGeminiToChatStream(defaultEnv, clientModel)
}

// NewGeminiToMessagesStream translates a Gemini stream into Anthropic
// Messages events, by way of the chat chunks.
func NewGeminiToMessagesStream(clientModel string) Stream {
	return newGeminiToMessagesStream(defaultEnv, clientModel)
}

func newGeminiToMessagesStream(e env, clientModel string) Stream {
	return pipe{newGeminiToChatStream(e, clientModel), newChatToMessagesStream(e, clientModel)}
}

func newGeminiToChatStream(e env, clientModel string) *geminiToChatStream {
	m := &messagesToChatStream{env: e, model: clientModel}
	return &geminiToChatStream{chat: m, callID: geminiCallIDs(e)}
}

var _ Stream = (*geminiToChatStream)(nil)

// geminiToChatStream reads Gemini's events and writes chat chunks with the
// Messages-to-chat stream's writer (its chunk, usage and [DONE] framing).
type geminiToChatStream struct {
	chat    *messagesToChatStream
	scanner sse.Scanner
	callID  func(int) string
	usage   *geminiUsage
}

// Write implements Stream.
func (s *geminiToChatStream) Write(chunk []byte) []byte {
	s.chat.out = nil
	if !s.chat.done {
		s.scanner.Feed(chunk, s.event)
	}
	return s.chat.out
}

// Close implements Stream.
func (s *geminiToChatStream) Close() []byte {
	c := s.chat
	c.out = nil
	if c.done {
		return c.out
	}
	s.scanner.Flush(s.event)
	switch {
	case c.done:
	case c.finish != "":
		c.start()
		c.emit(chatChunk{Choices: []chunkChoice{}, Usage: geminiChatUsage(s.usage)})
		c.out = sse.Append(c.out, "", []byte("[DONE]"))
		c.done = true
	default:
		c.fail("server_error", streamEndedEarly)
	}
	return c.out
}

// event handles one Gemini event: text parts become content deltas (thought
// parts are dropped), each function call a whole tool call, a finishReason
// the finishing chunk; an error event ends the stream with OpenAI's error.
func (s *geminiToChatStream) event(ev sse.Event) {
	c := s.chat
	if c.done || !gjson.ValidBytes(ev.Data) {
		return
	}
	d := gjson.ParseBytes(ev.Data)
	if e := d.Get("error"); e.IsObject() {
		msg := e.Get("message").String()
		if msg == "" {
			msg = "upstream error"
		}
		c.fail(openAITypeFor(int(e.Get("code").Int()), ""), msg)
		return
	}
	if !c.started {
		c.id = c.env.chatIDFor(d.Get("responseId").String())
		c.start()
	}
	if u := d.Get("usageMetadata"); u.IsObject() {
		s.usage = &geminiUsage{PromptTokenCount: int(u.Get("promptTokenCount").Int()),
			CandidatesTokenCount:    int(u.Get("candidatesTokenCount").Int()),
			CachedContentTokenCount: int(u.Get("cachedContentTokenCount").Int()),
			ThoughtsTokenCount:      int(u.Get("thoughtsTokenCount").Int())}
	}
	cand := d.Get("candidates.0")
	cand.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
		switch {
		case p.Get("thought").Bool():
		case p.Get("functionCall").IsObject():
			fc := p.Get("functionCall")
			i := c.tools
			c.tools++
			call := geminiToolCall(&geminiFunctionCall{ID: fc.Get("id").String(), Name: fc.Get("name").String(),
				Args: []byte(fc.Get("args").Raw)}, p.Get("thoughtSignature").String(), s.callID(i), &i)
			c.chunk(chunkDelta{ToolCalls: []chatToolCall{call}}, nil)
		default:
			c.content(p.Get("text").String())
		}
		return true
	})
	if r := cand.Get("finishReason").String(); r != "" && c.finish == "" {
		c.finish = geminiFinishReason(r, c.tools > 0)
		c.chunk(chunkDelta{}, &c.finish)
	} else if r := d.Get("promptFeedback.blockReason").String(); r != "" && c.finish == "" {
		c.finish = "content_filter"
		c.chunk(chunkDelta{}, &c.finish)
	}
}

// pipe is one stream translation after another.
type pipe struct{ first, second Stream }

// Write implements Stream.
func (p pipe) Write(chunk []byte) []byte { return p.second.Write(p.first.Write(chunk)) }

// Close implements Stream.
func (p pipe) Close() []byte {
	out := p.second.Write(p.first.Close())
	return append(out, p.second.Close()...)
}
