package mockllm

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// words are the content pieces; a non-streamed answer is all of them, a
// streamed one sends piece i%len(words) in chunk i.
var words = [...]string{"This", " is", " a", " mock", " answer", " from", " the", " Switchyard", " load", " test."}

// content is the non-streamed answer text.
var content = func() string {
	s := ""
	for _, w := range words {
		s += w
	}
	return s
}()

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
	b = appendString(b, rq.model)
	b = append(b, `,"system_fingerprint":"fp_mock","choices":[{"index":0,"message":{"role":"assistant","content":`...)
	b = appendString(b, content)
	b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"stop"}],`...)
	b = appendOpenAIUsage(b, rq.promptTokens, len(words))
	b = appendEcho(b, rq)
	return append(b, '}')
}

func appendCompletion(b []byte, rq *reqInfo) []byte {
	b = append(b, `{"id":`...)
	b = appendID(b, "cmpl-mock", rq.seq)
	b = append(b, `,"object":"text_completion","created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":`...)
	b = appendString(b, rq.model)
	b = append(b, `,"system_fingerprint":"fp_mock","choices":[{"text":`...)
	b = appendString(b, content)
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
	b = appendString(b, rq.model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
	b = append(b, '}')
	b = appendEcho(b, rq)
	return append(b, '}')
}

// appendResponse appends a Responses API object; status "in_progress" gives
// the empty object of a stream's first event.
func appendResponse(b []byte, rq *reqInfo, status string) []byte {
	done := status == "completed"
	b = append(b, `{"id":`...)
	b = appendID(b, "resp_mock", rq.seq)
	b = append(b, `,"object":"response","created_at":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"status":`...)
	b = appendString(b, status)
	b = append(b, `,"error":null,"incomplete_details":null,"model":`...)
	b = appendString(b, rq.model)
	b = append(b, `,"output":[`...)
	if done {
		b = append(b, `{"type":"message","id":`...)
		b = appendID(b, "msg_mock", rq.seq)
		b = append(b, `,"status":"completed","role":"assistant","content":[{"type":"output_text","text":`...)
		b = appendString(b, content)
		b = append(b, `,"annotations":[]}]}`...)
	}
	b = append(b, `],"usage":`...)
	if done {
		b = append(b, `{"input_tokens":`...)
		b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
		b = append(b, `,"output_tokens":`...)
		b = strconv.AppendInt(b, int64(len(words)), 10)
		b = append(b, `,"total_tokens":`...)
		b = strconv.AppendInt(b, int64(rq.promptTokens+len(words)), 10)
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	b = appendEcho(b, rq)
	return append(b, '}')
}

func appendMessage(b []byte, rq *reqInfo) []byte {
	b = append(b, `{"id":`...)
	b = appendID(b, "msg_mock", rq.seq)
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	b = appendString(b, rq.model)
	b = append(b, `,"content":[{"type":"text","text":`...)
	b = appendString(b, content)
	b = append(b, `}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, int64(len(words)), 10)
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

// streamChat streams chat.completion.chunk objects (or text_completion
// objects when legacy is set), then "data: [DONE]".
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
		b = appendString(b, rq.model)
		return append(b, `,"system_fingerprint":"fp_mock","choices":[`...)
	}
	for i := 0; i < opts.StreamChunks; i++ {
		if !pause(ctx, opts.ChunkInterval, i == 0) {
			return
		}
		ok := s.event("", func(b []byte) []byte {
			b = head(b)
			if legacy {
				b = append(b, `{"text":`...)
				b = appendString(b, words[i%len(words)])
				b = append(b, `,"index":0,"logprobs":null,"finish_reason":null}]`...)
			} else {
				b = append(b, `{"index":0,"delta":{`...)
				if i == 0 {
					b = append(b, `"role":"assistant",`...)
				}
				b = append(b, `"content":`...)
				b = appendString(b, words[i%len(words)])
				b = append(b, `},"logprobs":null,"finish_reason":null}]`...)
			}
			if i == 0 {
				b = appendEcho(b, rq)
			}
			return append(b, '}')
		})
		if !ok {
			return
		}
	}
	ok := s.event("", func(b []byte) []byte {
		b = head(b)
		if legacy {
			b = append(b, `{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}`...)
		} else {
			b = append(b, `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`...)
		}
		return b
	})
	if !ok {
		return
	}
	if rq.includeUsage {
		ok = s.event("", func(b []byte) []byte {
			b = head(b)
			b = append(b, "],"...)
			b = appendOpenAIUsage(b, rq.promptTokens, opts.StreamChunks)
			return append(b, '}')
		})
		if !ok {
			return
		}
	}
	s.event("", func(b []byte) []byte { return append(b, "[DONE]"...) })
}

// streamResponses streams Responses API events: response.created, one
// response.output_text.delta per chunk, response.output_text.done and
// response.completed.
func streamResponses(ctx context.Context, s *sseWriter, rq *reqInfo, opts Options) {
	seq := 0
	typed := func(b []byte, typ string) []byte {
		b = append(b, `{"type":"`...)
		b = append(b, typ...)
		b = append(b, `","sequence_number":`...)
		b = strconv.AppendInt(b, int64(seq), 10)
		seq++
		return b
	}
	itemFields := func(b []byte) []byte {
		b = append(b, `,"item_id":`...)
		b = appendID(b, "msg_mock", rq.seq)
		return append(b, `,"output_index":0,"content_index":0`...)
	}
	if !s.event("response.created", func(b []byte) []byte {
		b = typed(b, "response.created")
		b = append(b, `,"response":`...)
		b = appendResponse(b, &reqInfo{model: rq.model, seq: rq.seq, echo: rq.echo}, "in_progress")
		return append(b, '}')
	}) {
		return
	}
	text := make([]byte, 0, 128)
	for i := 0; i < opts.StreamChunks; i++ {
		if !pause(ctx, opts.ChunkInterval, i == 0) {
			return
		}
		w := words[i%len(words)]
		text = append(text, w...)
		if !s.event("response.output_text.delta", func(b []byte) []byte {
			b = typed(b, "response.output_text.delta")
			b = itemFields(b)
			b = append(b, `,"delta":`...)
			b = appendString(b, w)
			return append(b, '}')
		}) {
			return
		}
	}
	if !s.event("response.output_text.done", func(b []byte) []byte {
		b = typed(b, "response.output_text.done")
		b = itemFields(b)
		b = append(b, `,"text":`...)
		b = appendString(b, string(text))
		return append(b, '}')
	}) {
		return
	}
	s.event("response.completed", func(b []byte) []byte {
		b = typed(b, "response.completed")
		b = append(b, `,"response":`...)
		b = appendResponse(b, &reqInfo{model: rq.model, seq: rq.seq, promptTokens: rq.promptTokens}, "completed")
		return append(b, '}')
	})
}

// streamMessages streams the Anthropic event sequence.
func streamMessages(ctx context.Context, s *sseWriter, rq *reqInfo, opts Options) {
	if !s.event("message_start", func(b []byte) []byte {
		b = append(b, `{"type":"message_start","message":{"id":`...)
		b = appendID(b, "msg_mock", rq.seq)
		b = append(b, `,"type":"message","role":"assistant","model":`...)
		b = appendString(b, rq.model)
		b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":`...)
		b = strconv.AppendInt(b, int64(rq.promptTokens), 10)
		b = append(b, `,"output_tokens":1}}`...)
		b = appendEcho(b, rq)
		return append(b, '}')
	}) {
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
	for i := 0; i < opts.StreamChunks; i++ {
		if !pause(ctx, opts.ChunkInterval, i == 0) {
			return
		}
		if !s.event("content_block_delta", func(b []byte) []byte {
			b = append(b, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`...)
			b = appendString(b, words[i%len(words)])
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
	if !s.event("message_delta", func(b []byte) []byte {
		b = append(b, `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":`...)
		b = strconv.AppendInt(b, int64(opts.StreamChunks), 10)
		return append(b, "}}"...)
	}) {
		return
	}
	s.event("message_stop", func(b []byte) []byte { return append(b, `{"type":"message_stop"}`...) })
}
