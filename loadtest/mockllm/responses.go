package mockllm

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"switchyard/internal/jsonstr"
)

// words are the content pieces; a non-streamed answer is all of them, a
// streamed one sends piece i%len(words) in chunk i.
var words = [...]string{"This", " is", " a", " mock", " answer", " from", " the", " Switchyard", " load", " test."}

// Answer is the text of every non-streamed answer, and of a streamed one
// with DefaultStreamChunks chunks: what a client of the mock should print.
var Answer = content

// content is the non-streamed answer text.
var content = func() string {
	s := ""
	for _, w := range words {
		s += w
	}
	return s
}()

// contentBytes is content for the builders that take bytes.
var contentBytes = []byte(content)

// embeddingDims is the length of every embedding vector.
const embeddingDims = 8

func appendID(b []byte, prefix string, seq uint64) []byte {
	b = append(b, '"')
	b = append(b, prefix...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '"')
}

func appendEcho(b []byte, rq *reqInfo) []byte {
	if rq.echo == nil {
		return b
	}
	b = append(b, `,"echo":`...)
	return append(b, rq.echo...)
}

func appendOpenAIUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt+completion), 10)
	return append(b, '}')
}

func appendChat(b []byte, rq *reqInfo) []byte {
	b = append(b, `{"id":`...)
	b = appendID(b, "chatcmpl-mock", rq.seq)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":`...)
	b = jsonstr.Append(b, rq.model)
	b = append(b, `,"system_fingerprint":"fp_mock","choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if rq.calls != nil {
		b = append(b, `null,"refusal":null,"tool_calls":`...)
		b = appendChatToolCalls(b, rq)
		b = append(b, `},"logprobs":null,"finish_reason":"tool_calls"}],`...)
		b = appendOpenAIUsage(b, rq.promptTokens, toolOutputTokens(rq.calls))
	} else {
		text, n := rq.text()
		b = jsonstr.Append(b, text)
		b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"stop"}],`...)
		b = appendOpenAIUsage(b, rq.promptTokens, n)
	}
	b = appendEcho(b, rq)
	return append(b, '}')
}

func appendCompletion(b []byte, rq *reqInfo) []byte {
	b = append(b, `{"id":`...)
	b = appendID(b, "cmpl-mock", rq.seq)
	b = append(b, `,"object":"text_completion","created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":`...)
	b = jsonstr.Append(b, rq.model)
	b = append(b, `,"system_fingerprint":"fp_mock","choices":[{"text":`...)
	b = jsonstr.Append(b, content)
	b = append(b, `,"index":0,"logprobs":null,"finish_reason":"stop"}],`...)
	b = appendOpenAIUsage(b, rq.promptTokens, len(words))
	b = appendEcho(b, rq)
	return append(b, '}')
}

func appendEmbeddings(b []byte, rq *reqInfo) []byte {
	b = append(b, `{"object":"list","data":[`...)
	for i := 0; i < rq.inputs; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":[`...)
		for d := 0; d < embeddingDims; d++ {
			if d > 0 {
				b = append(b, ',')
			}
			// A fixed, distinct vector per input: 0.0i0d as a decimal.
			b = append(b, "0.0"...)
			b = strconv.AppendInt(b, int64(i%10), 10)
			b = strconv.AppendInt(b, int64(d+1), 10)
		}
		b = append(b, "]}"...)
	}
	b = append(b, `],"model":`...)
	b = jsonstr.Append(b, rq.model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
	b = append(b, '}')
	b = appendEcho(b, rq)
	return append(b, '}')
}

// appendResponse appends a Responses API response object. With text nil it
// is the empty in-progress object of a stream's first events; otherwise it
// is the completed object whose one output message holds text (or whose
// output is rq.calls' function calls, when there are any), with usage.
// The fields are those the real API sends, so that SDK types and agent
// clients that decode them strictly accept it.
func appendResponse(b []byte, rq *reqInfo, text []byte, outputTokens int) []byte {
	done := text != nil
	b = append(b, `{"id":`...)
	b = appendID(b, "resp_mock", rq.seq)
	b = append(b, `,"object":"response","created_at":`...)
	b = strconv.AppendInt(b, created, 10)
	if done {
		b = append(b, `,"status":"completed","completed_at":`...)
		b = strconv.AppendInt(b, created, 10)
	} else {
		b = append(b, `,"status":"in_progress","completed_at":null`...)
	}
	b = append(b, `,"background":false,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":`...)
	b = jsonstr.Append(b, rq.model)
	b = append(b, `,"output":[`...)
	switch {
	case done && rq.calls != nil:
		for i := range rq.calls {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendFunctionCall(b, rq, i, true)
		}
	case done:
		b = appendOutputMessage(b, rq, "completed", text)
	}
	b = append(b, `],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":`...)
	if done {
		b = append(b, `{"input_tokens":`...)
		b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
		b = append(b, `,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":`...)
		b = strconv.AppendInt(b, int64(outputTokens), 10)
		b = append(b, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		b = strconv.AppendInt(b, int64(rq.promptTokens+outputTokens), 10)
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"user":null,"metadata":{}`...)
	b = appendEcho(b, rq)
	return append(b, '}')
}

// appendOutputMessage appends the assistant message output item; with text
// nil its content is still empty (the item of response.output_item.added).
func appendOutputMessage(b []byte, rq *reqInfo, status string, text []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendID(b, "msg_mock", rq.seq)
	b = append(b, `,"type":"message","status":`...)
	b = jsonstr.Append(b, status)
	b = append(b, `,"content":[`...)
	if text != nil {
		b = appendOutputText(b, text)
	}
	return append(b, `],"role":"assistant"}`...)
}

// appendOutputText appends an output_text content part.
func appendOutputText(b []byte, text []byte) []byte {
	b = append(b, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	b = jsonstr.Append(b, string(text))
	return append(b, '}')
}

func appendMessage(b []byte, rq *reqInfo) []byte {
	b = append(b, `{"id":`...)
	b = appendID(b, "msg_mock", rq.seq)
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	b = jsonstr.Append(b, rq.model)
	b = append(b, `,"content":[`...)
	var n int
	if rq.calls != nil {
		b = appendToolUseBlocks(b, rq)
		b = append(b, `],"stop_reason":"tool_use"`...)
		n = toolOutputTokens(rq.calls)
	} else {
		var text string
		text, n = rq.text()
		b = append(b, `{"type":"text","text":`...)
		b = jsonstr.Append(b, text)
		b = append(b, `}],"stop_reason":"end_turn"`...)
	}
	b = append(b, `,"stop_sequence":null,"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
	b = append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '}')
	b = appendEcho(b, rq)
	return append(b, '}')
}

func appendCountTokens(b []byte, rq *reqInfo) []byte {
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
	b = appendEcho(b, rq)
	return append(b, '}')
}

// sseWriter writes events and flushes each one.
type sseWriter struct {
	w   http.ResponseWriter
	f   http.Flusher
	buf []byte
}

// event writes one SSE event: an optional "event:" line and the data line
// built by fill.
func (s *sseWriter) event(name string, fill func([]byte) []byte) bool {
	return s.eventCut(name, fill, false)
}

// eventCut is event; with cutRune set, an event holding a multibyte UTF-8
// character is written and flushed in two parts cut inside that character.
func (s *sseWriter) eventCut(name string, fill func([]byte) []byte, cutRune bool) bool {
	b := s.buf[:0]
	if name != "" {
		b = append(b, "event: "...)
		b = append(b, name...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = fill(b)
	b = append(b, '\n', '\n')
	s.buf = b
	if cutRune {
		if i := splitInRune(b); i > 0 {
			if !s.write(b[:i]) {
				return false
			}
			b = b[i:]
		}
	}
	return s.write(b)
}

func (s *sseWriter) write(b []byte) bool {
	if _, err := s.w.Write(b); err != nil {
		return false
	}
	if s.f != nil {
		s.f.Flush()
	}
	return true
}

func (h *Handler) serveStream(ctx context.Context, w http.ResponseWriter, ep endpoint, rq *reqInfo, opts Options) {
	hdr := w.Header()
	hdr["Content-Type"] = ctSSE
	hdr["Cache-Control"] = noCache
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	bp := bufPool.Get().(*[]byte)
	s := &sseWriter{w: w, f: f, buf: (*bp)[:0]}
	defer func() { *bp = s.buf[:0]; bufPool.Put(bp) }()

	switch ep {
	case epChat:
		streamChat(ctx, s, rq, opts, false)
	case epCompletions:
		streamChat(ctx, s, rq, opts, true)
	case epResponses:
		streamResponses(ctx, s, rq, opts)
	case epMessages:
		streamMessages(ctx, s, rq, opts)
	}
}

// pause waits between chunks; false when the client went away.
func pause(ctx context.Context, d time.Duration, first bool) bool {
	if first {
		return true
	}
	return wait(ctx, d)
}

// streamChat streams chat.completion.chunk objects as the real API does: a
// first chunk with the assistant role and empty content, one content chunk
// per word, a chunk with finish_reason "stop" and, when the request asked for
// stream_options.include_usage, a usage chunk with no choices ("usage":null
// in every chunk before it); then "data: [DONE]". With legacy set it streams
// text_completion objects, which have no role chunk.
func streamChat(ctx context.Context, s *sseWriter, rq *reqInfo, opts Options, legacy bool) {
	head := func(b []byte) []byte {
		b = append(b, `{"id":`...)
		if legacy {
			b = appendID(b, "cmpl-mock", rq.seq)
			b = append(b, `,"object":"text_completion","created":`...)
		} else {
			b = appendID(b, "chatcmpl-mock", rq.seq)
			b = append(b, `,"object":"chat.completion.chunk","created":`...)
		}
		b = strconv.AppendInt(b, created, 10)
		b = append(b, `,"model":`...)
		b = jsonstr.Append(b, rq.model)
		return append(b, `,"system_fingerprint":"fp_mock","choices":[`...)
	}
	tail := func(b []byte) []byte {
		if rq.includeUsage {
			b = append(b, `,"usage":null`...)
		}
		return append(b, '}')
	}
	if !legacy {
		ok := s.event("", func(b []byte) []byte {
			b = head(b)
			if rq.calls != nil {
				b = append(b, `{"index":0,"delta":{"role":"assistant","content":null,"refusal":null},"logprobs":null,"finish_reason":null}]`...)
			} else {
				b = append(b, `{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`...)
			}
			b = appendEcho(b, rq)
			return tail(b)
		})
		if !ok {
			return
		}
	}
	pieces, n := rq.textPieces(opts)
	finish := "stop"
	if rq.calls != nil {
		if !streamChatToolCalls(ctx, s, rq, opts, head, tail) {
			return
		}
		n, finish = 0, "tool_calls"
	}
	for i := 0; i < n; i++ {
		if !pause(ctx, opts.ChunkInterval, i == 0) {
			return
		}
		ok := s.event("", func(b []byte) []byte {
			b = head(b)
			if legacy {
				b = append(b, `{"text":`...)
				b = jsonstr.Append(b, pieces[i%len(pieces)])
				b = append(b, `,"index":0,"logprobs":null,"finish_reason":null}]`...)
				if i == 0 {
					b = appendEcho(b, rq)
				}
			} else {
				b = append(b, `{"index":0,"delta":{"content":`...)
				b = jsonstr.Append(b, pieces[i%len(pieces)])
				b = append(b, `},"logprobs":null,"finish_reason":null}]`...)
			}
			return tail(b)
		})
		if !ok {
			return
		}
	}
	ok := s.event("", func(b []byte) []byte {
		b = head(b)
		if legacy {
			b = append(b, `{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]`...)
		} else {
			b = append(b, `{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
			b = append(b, finish...)
			b = append(b, `"}]`...)
		}
		return tail(b)
	})
	if !ok {
		return
	}
	if rq.includeUsage {
		ok = s.event("", func(b []byte) []byte {
			b = head(b)
			b = append(b, "],"...)
			if rq.calls != nil {
				n = toolOutputTokens(rq.calls)
			}
			b = appendOpenAIUsage(b, rq.promptTokens, n)
			return append(b, '}')
		})
		if !ok {
			return
		}
	}
	s.event("", func(b []byte) []byte { return append(b, "[DONE]"...) })
}

// streamResponses streams the Responses API event sequence of a text
// answer, as the real API sends it: response.created, response.in_progress,
// response.output_item.added, response.content_part.added, one
// response.output_text.delta per chunk, response.output_text.done,
// response.content_part.done, response.output_item.done and
// response.completed, numbered by sequence_number. Clients such as Codex
// track the item and part the deltas belong to, so none may be left out.
//
// An answer with tool calls sends, after response.in_progress, the events of
// each function call item (streamFunctionCalls) and response.completed.
func streamResponses(ctx context.Context, s *sseWriter, rq *reqInfo, opts Options) {
	seq := 0
	evCut := func(typ string, fill func([]byte) []byte, cutRune bool) bool {
		return s.eventCut(typ, func(b []byte) []byte {
			b = append(b, `{"type":"`...)
			b = append(b, typ...)
			b = append(b, `","sequence_number":`...)
			b = strconv.AppendInt(b, int64(seq), 10)
			seq++
			b = fill(b)
			return append(b, '}')
		}, cutRune)
	}
	ev := func(typ string, fill func([]byte) []byte) bool { return evCut(typ, fill, false) }
	partFields := func(b []byte) []byte {
		b = append(b, `,"item_id":`...)
		b = appendID(b, "msg_mock", rq.seq)
		return append(b, `,"output_index":0,"content_index":0`...)
	}
	empty := &reqInfo{model: rq.model, seq: rq.seq, echo: rq.echo}
	if !ev("response.created", func(b []byte) []byte {
		b = append(b, `,"response":`...)
		return appendResponse(b, empty, nil, 0)
	}) {
		return
	}
	empty.echo = nil
	if !ev("response.in_progress", func(b []byte) []byte {
		b = append(b, `,"response":`...)
		return appendResponse(b, empty, nil, 0)
	}) {
		return
	}
	if rq.calls != nil {
		if !streamFunctionCalls(ctx, rq, opts, evCut) {
			return
		}
		ev("response.completed", func(b []byte) []byte {
			b = append(b, `,"response":`...)
			done := &reqInfo{model: rq.model, seq: rq.seq, promptTokens: rq.promptTokens, calls: rq.calls}
			return appendResponse(b, done, []byte{}, toolOutputTokens(rq.calls))
		})
		return
	}
	if !ev("response.output_item.added", func(b []byte) []byte {
		b = append(b, `,"output_index":0,"item":`...)
		return appendOutputMessage(b, rq, "in_progress", nil)
	}) {
		return
	}
	if !ev("response.content_part.added", func(b []byte) []byte {
		b = partFields(b)
		b = append(b, `,"part":`...)
		return appendOutputText(b, []byte{})
	}) {
		return
	}
	pieces, n := rq.textPieces(opts)
	text := make([]byte, 0, 128)
	for i := 0; i < n; i++ {
		if !pause(ctx, opts.ChunkInterval, i == 0) {
			return
		}
		w := pieces[i%len(pieces)]
		text = append(text, w...)
		if !ev("response.output_text.delta", func(b []byte) []byte {
			b = partFields(b)
			b = append(b, `,"delta":`...)
			b = jsonstr.Append(b, w)
			return append(b, `,"logprobs":[]`...)
		}) {
			return
		}
	}
	if !ev("response.output_text.done", func(b []byte) []byte {
		b = partFields(b)
		b = append(b, `,"text":`...)
		b = jsonstr.Append(b, string(text))
		return append(b, `,"logprobs":[]`...)
	}) {
		return
	}
	if !ev("response.content_part.done", func(b []byte) []byte {
		b = partFields(b)
		b = append(b, `,"part":`...)
		return appendOutputText(b, text)
	}) {
		return
	}
	if !ev("response.output_item.done", func(b []byte) []byte {
		b = append(b, `,"output_index":0,"item":`...)
		return appendOutputMessage(b, rq, "completed", text)
	}) {
		return
	}
	ev("response.completed", func(b []byte) []byte {
		b = append(b, `,"response":`...)
		return appendResponse(b, &reqInfo{model: rq.model, seq: rq.seq, promptTokens: rq.promptTokens}, text, n)
	})
}

// streamMessages streams the Anthropic event sequence: message_start,
// content_block_start, ping, one content_block_delta per chunk,
// content_block_stop, message_delta and message_stop.
func streamMessages(ctx context.Context, s *sseWriter, rq *reqInfo, opts Options) {
	if !s.event("message_start", func(b []byte) []byte {
		b = append(b, `{"type":"message_start","message":{"id":`...)
		b = appendID(b, "msg_mock", rq.seq)
		b = append(b, `,"type":"message","role":"assistant","model":`...)
		b = jsonstr.Append(b, rq.model)
		b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":`...)
		b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
		b = append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}`...)
		b = appendEcho(b, rq)
		return append(b, '}')
	}) {
		return
	}
	if rq.calls != nil {
		streamToolUse(ctx, s, rq, opts)
		return
	}
	if !s.event("content_block_start", func(b []byte) []byte {
		return append(b, `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`...)
	}) {
		return
	}
	if !s.event("ping", func(b []byte) []byte { return append(b, `{"type":"ping"}`...) }) {
		return
	}
	pieces, n := rq.textPieces(opts)
	for i := 0; i < n; i++ {
		if !pause(ctx, opts.ChunkInterval, i == 0) {
			return
		}
		if !s.event("content_block_delta", func(b []byte) []byte {
			b = append(b, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`...)
			b = jsonstr.Append(b, pieces[i%len(pieces)])
			return append(b, "}}"...)
		}) {
			return
		}
	}
	if !s.event("content_block_stop", func(b []byte) []byte {
		return append(b, `{"type":"content_block_stop","index":0}`...)
	}) {
		return
	}
	endMessage(s, "end_turn", n)
}

// endMessage sends message_delta with the stop reason and output tokens,
// and message_stop.
func endMessage(s *sseWriter, stopReason string, outputTokens int) {
	if !s.event("message_delta", func(b []byte) []byte {
		b = append(b, `{"type":"message_delta","delta":{"stop_reason":"`...)
		b = append(b, stopReason...)
		b = append(b, `","stop_sequence":null},"usage":{"output_tokens":`...)
		b = strconv.AppendInt(b, int64(outputTokens), 10)
		return append(b, "}}"...)
	}) {
		return
	}
	s.event("message_stop", func(b []byte) []byte { return append(b, `{"type":"message_stop"}`...) })
}
