// Package mockllm is a fake LLM upstream that answers the OpenAI and
// Anthropic HTTP APIs with realistic, fixed content after a configurable
// latency.
//
// It serves as the upstream of the load benchmark (where it must cost as
// little as possible, so it records nothing and builds responses by
// appending to pooled buffers) and as the `mock` provider of `make run`.
//
// Endpoints:
//
//	POST /v1/chat/completions       OpenAI chat (JSON or SSE)
//	POST /v1/completions            OpenAI legacy completions (JSON or SSE)
//	POST /v1/embeddings             OpenAI embeddings (JSON)
//	POST /v1/responses              OpenAI Responses API (JSON or SSE events)
//	GET  /v1/models                 OpenAI model list
//	POST /v1/messages               Anthropic messages (JSON or SSE events)
//	POST /v1/messages/count_tokens  Anthropic token count
//
// Every generated response names the `model` of the request, so a test can
// see a rewrite done by the gateway. A request body with `"stream": true`
// gets a Server-Sent Events stream of Options.StreamChunks chunks, one every
// Options.ChunkInterval, each flushed on its own. Streams follow the real
// APIs' event sequences (every Responses API event from response.created to
// response.completed, the Anthropic message_start … message_stop events, a
// chat stream's role chunk first), so SDK stream parsers and agent CLIs such
// as Codex and Claude Code accept them.
//
// Per-request overrides (for tests): `x-mock-latency-ms`, `x-mock-chunks`,
// `x-mock-interval-ms`. With `x-mock-echo: 1` the response JSON (the first
// event of a stream) carries an "echo" object with the path, every request
// header, the body length and the Content-Length header the mock received.
package mockllm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"switchyard/bodyscan"

	"switchyard/internal/jsonstr"
)

// Defaults used for zero Options fields.
const (
	DefaultLatency       = 60 * time.Millisecond
	DefaultStreamChunks  = 10
	DefaultChunkInterval = 5 * time.Millisecond
)

// Request headers that override Options for one request.
const (
	HeaderLatencyMS  = "X-Mock-Latency-Ms"
	HeaderChunks     = "X-Mock-Chunks"
	HeaderIntervalMS = "X-Mock-Interval-Ms"
	HeaderEcho       = "X-Mock-Echo"
	// HeaderToolCalls asks for N parallel tool calls (tools.go).
	HeaderToolCalls = "X-Mock-Tool-Calls"
)

// maxBody bounds the request body the mock reads.
const maxBody = 8 << 20

// Options configures the mock. A zero field takes its default; a negative
// Latency or ChunkInterval means none.
type Options struct {
	// Latency is waited before the first byte of every response.
	Latency time.Duration
	// StreamChunks is the number of content chunks of a streamed response.
	StreamChunks int
	// ChunkInterval is waited between two streamed chunks.
	ChunkInterval time.Duration
	// Plain answers every request with text, never with tool calls, and
	// reads a request's fields from the one scan that judges its JSON
	// instead of walking the body and its conversation again. The
	// benchmark's mock shares the machine with the paths it measures; with
	// agent-sized bodies the walks cost it milliseconds per request.
	Plain bool
	// AnyToolID accepts tool call ids the services refuse, and results
	// that answer no call (toolIDError; the benchmark's mock): finding them
	// walks the conversation again, about 570 us per 256 KiB (twice the
	// tool loop's own cost), and the benchmark's ids are the mock's own.
	AnyToolID bool
}

func (o Options) withDefaults() Options {
	switch {
	case o.Latency == 0:
		o.Latency = DefaultLatency
	case o.Latency < 0:
		o.Latency = 0
	}
	if o.StreamChunks <= 0 {
		o.StreamChunks = DefaultStreamChunks
	}
	switch {
	case o.ChunkInterval == 0:
		o.ChunkInterval = DefaultChunkInterval
	case o.ChunkInterval < 0:
		o.ChunkInterval = 0
	}
	return o
}

// Models is the list served by GET /v1/models.
var Models = []string{"mock-gpt", "mock-claude", "mock-embed"}

// created is the fixed creation timestamp in every response.
const created = 1767225600 // 2026-01-01T00:00:00Z

// Handler is the mock upstream. Create it with New.
type Handler struct {
	opts Options
	seq  atomic.Uint64
}

var _ http.Handler = (*Handler)(nil)

// New returns a mock upstream configured by opts.
func New(opts Options) *Handler {
	return &Handler{opts: opts.withDefaults()}
}

type api uint8

const (
	apiOpenAI api = iota
	apiAnthropic
)

type endpoint uint8

const (
	epChat endpoint = iota
	epCompletions
	epEmbeddings
	epResponses
	epMessages
	epCountTokens
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Shared header values; net/http only reads them.
var (
	ctJSON = []string{"application/json"}
	ctSSE  = []string{"text/event-stream"}
	// ctProtobuf answers OTLP/HTTP exports (an empty response message).
	ctProtobuf = []string{"application/x-protobuf"}
	noCache    = []string{"no-cache"}
)

// TracesPath takes OTLP/HTTP trace exports (OTEL_EXPORTER_OTLP_ENDPOINT
// set to the mock's URL) and drops them.
const TracesPath = "/v1/traces"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ep endpoint
	switch r.URL.Path {
	case "/v1/chat/completions":
		ep = epChat
	case "/v1/completions":
		ep = epCompletions
	case "/v1/embeddings":
		ep = epEmbeddings
	case "/v1/responses":
		ep = epResponses
	case "/v1/messages":
		ep = epMessages
	case "/v1/messages/count_tokens":
		ep = epCountTokens
	case "/v1/models":
		if r.Method != http.MethodGet {
			writeError(w, apiOpenAI, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		h.serveModels(w, r)
		return
	case TracesPath:
		// OTLP/HTTP trace exports, dropped: a benchmark of a traced
		// gateway needs somewhere to send its spans.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = ctProtobuf
		return
	default:
		writeError(w, apiOf(r.URL.Path), http.StatusNotFound, "unknown path")
		return
	}
	a := apiOpenAI
	if ep == epMessages || ep == epCountTokens {
		a = apiAnthropic
	}
	if r.Method != http.MethodPost {
		writeError(w, a, http.StatusMethodNotAllowed, "method not allowed")
		return
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	body, err := readBody(r.Body, (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		writeError(w, a, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	// A provider judges the JSON before anything else. The gateway's own
	// scan does it at a few GB/s (the mock shares the benchmark's machine
	// with the paths it measures); what it refuses, gjson judges again, so
	// that a body nested deeper than the scan reads is not refused for
	// that alone.
	scan := bodyscan.Scan(body)
	if scan.Verdict != bodyscan.Valid && !gjson.ValidBytes(body) {
		writeError(w, a, http.StatusBadRequest, "body is not valid JSON")
		return
	}
	var f fields
	if h.opts.Plain && scan.Verdict == bodyscan.Valid {
		f = scannedFields(body, &scan)
	} else {
		f = readFields(body)
	}
	model := f.model
	if model.Type != gjson.String || model.Str == "" {
		writeError(w, a, http.StatusBadRequest, "model must be a non-empty string")
		return
	}
	stream := f.stream.Type == gjson.True
	if stream && (ep == epEmbeddings || ep == epCountTokens) {
		writeError(w, a, http.StatusBadRequest, "streaming is not supported on this endpoint")
		return
	}

	opts := h.opts
	if v := r.Header.Get(HeaderLatencyMS); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			opts.Latency = time.Duration(n) * time.Millisecond
		}
	}
	if v := r.Header.Get(HeaderChunks); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			opts.StreamChunks = n
		}
	}
	if v := r.Header.Get(HeaderIntervalMS); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			opts.ChunkInterval = time.Duration(n) * time.Millisecond
		}
	}

	rq := reqInfo{
		model:        model.Str,
		promptTokens: 1 + len(body)/4,
		seq:          h.seq.Add(1),
		includeUsage: f.streamOptions.Get("include_usage").Type == gjson.True,
		inputs:       countInputs(f.input),
	}
	if r.Header.Get(HeaderEcho) == "1" {
		rq.echo = echoJSON(r, len(body))
	}
	if !h.opts.Plain && mayUseTools(body, ep) {
		if msg := h.toolIDError(f.messages, ep); msg != "" {
			writeError(w, a, http.StatusBadRequest, msg)
			return
		}
		planTools(&f, ep, r.Header.Get(HeaderToolCalls), &rq)
	}

	if !wait(r.Context(), opts.Latency) {
		return
	}

	if stream {
		h.serveStream(r.Context(), w, ep, &rq, opts)
		return
	}

	// The answer has a buffer of its own: rq's strings are in body.
	op := bufPool.Get().(*[]byte)
	defer bufPool.Put(op)
	out := (*op)[:0]
	switch ep {
	case epChat:
		out = appendChat(out, &rq)
	case epCompletions:
		out = appendCompletion(out, &rq)
	case epEmbeddings:
		out = appendEmbeddings(out, &rq)
	case epResponses:
		text, n := contentBytes, len(words)
		switch {
		case rq.calls != nil:
			n = toolOutputTokens(rq.calls)
		case rq.answer != "":
			text, n = []byte(rq.answer), len(answerPieces(rq.answer))
		}
		out = appendResponse(out, &rq, text, n)
	case epMessages:
		out = appendMessage(out, &rq)
	case epCountTokens:
		out = appendCountTokens(out, &rq)
	}
	*op = out[:0]
	w.Header()["Content-Type"] = ctJSON
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// fields are the top-level members of a request body the mock reads,
// found in one walk of it: an agent's body is hundreds of kilobytes, and a
// lookup per name would skip over all of it each time. Of a name given
// twice the first is kept, as a lookup by name finds it.
type fields struct {
	model, stream, streamOptions, input, messages, tools gjson.Result
}

func readFields(body []byte) fields {
	var f fields
	// In place: the fields live as long as body's buffer, which the
	// handler keeps to its end.
	gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))).ForEach(func(k, v gjson.Result) bool {
		if dst := f.slot(k.Str); dst != nil && !dst.Exists() {
			*dst = v
		}
		return true
	})
	return f
}

// scannedFields are the members of body that Options.Plain reads, from
// its scan. The scan keeps the last of a name given twice.
func scannedFields(body []byte, scan *bodyscan.Result) fields {
	at := func(v bodyscan.Span) gjson.Result {
		if !v.OK() {
			return gjson.Result{}
		}
		b := body[v.Start:v.End]
		return gjson.Parse(unsafe.String(unsafe.SliceData(b), len(b)))
	}
	f := fields{model: at(scan.Model), input: at(scan.Input)}
	if scan.Stream {
		f.stream = gjson.Result{Type: gjson.True}
	}
	if scan.IncludeUsage {
		f.streamOptions = gjson.Parse(`{"include_usage":true}`)
	}
	return f
}

// slot is where the member named name goes; nil: not read.
func (f *fields) slot(name string) *gjson.Result {
	switch name {
	case "model":
		return &f.model
	case "stream":
		return &f.stream
	case "stream_options":
		return &f.streamOptions
	case "input":
		return &f.input
	case "messages":
		return &f.messages
	case "tools":
		return &f.tools
	}
	return nil
}

// reqInfo is what a response needs to know about its request.
type reqInfo struct {
	model        string
	promptTokens int
	seq          uint64
	includeUsage bool
	inputs       int    // embeddings: number of inputs
	echo         []byte // encoded echo object, nil unless asked for
	// Chat, Messages and Responses only (tools.go): the tool calls to
	// answer with, or the text answer to a tool result; both empty for the
	// fixed answer.
	calls  []toolCall
	answer string
}

// textPieces is the text answer cut into stream chunks, and how many chunks
// to send: the fixed words, StreamChunks of them, unless rq.answer is set.
func (rq *reqInfo) textPieces(opts Options) ([]string, int) {
	if rq.answer == "" {
		return words[:], opts.StreamChunks
	}
	p := answerPieces(rq.answer)
	return p, len(p)
}

// text is the non-streamed text answer and its output token count.
func (rq *reqInfo) text() (string, int) {
	if rq.answer == "" {
		return content, len(words)
	}
	return rq.answer, len(answerPieces(rq.answer))
}

func readBody(rc io.Reader, buf []byte) ([]byte, error) {
	lr := io.LimitReader(rc, maxBody+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, err
		}
	}
	if len(buf) > maxBody {
		return buf, errBodyTooLarge
	}
	return buf, nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errBodyTooLarge = constError("body too large")

func countInputs(in gjson.Result) int {
	if in.IsArray() {
		n := len(in.Array())
		if n > 0 {
			// An array of token ids is one input.
			if first := in.Array()[0]; first.Type == gjson.Number {
				return 1
			}
			return n
		}
	}
	return 1
}

// wait sleeps for d unless ctx ends first; it reports whether to go on.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func apiOf(path string) api {
	if strings.HasPrefix(path, "/v1/messages") {
		return apiAnthropic
	}
	return apiOpenAI
}

// echoJSON encodes what the mock received; only built when asked for.
func echoJSON(r *http.Request, bodyLen int) []byte {
	hdr := make(map[string]string, len(r.Header)+1)
	for k, v := range r.Header {
		hdr[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	hdr["host"] = r.Host
	b, err := json.Marshal(Echo{
		Path:          r.URL.Path,
		Headers:       hdr,
		BodyLen:       bodyLen,
		ContentLength: r.Header.Get("Content-Length"),
	})
	if err != nil { // a map of strings always encodes
		panic(err)
	}
	return b
}

// Echo is the "echo" object added to a response when the request carries
// `x-mock-echo: 1`.
type Echo struct {
	// Path is the request path the mock received.
	Path string `json:"path"`
	// Headers holds every request header, lower-case names, values joined
	// by ", ", plus "host".
	Headers map[string]string `json:"headers"`
	// BodyLen is the number of body bytes the mock read.
	BodyLen int `json:"body_len"`
	// ContentLength is the Content-Length header as received ("" if none).
	ContentLength string `json:"content_length"`
}

func (h *Handler) serveModels(w http.ResponseWriter, r *http.Request) {
	if !wait(r.Context(), h.opts.Latency) {
		return
	}
	b := append(make([]byte, 0, 256), `{"object":"list","data":[`...)
	for i, m := range Models {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = jsonstr.Append(b, m)
		b = append(b, `,"object":"model","created":`...)
		b = strconv.AppendInt(b, created, 10)
		b = append(b, `,"owned_by":"mock"}`...)
	}
	b = append(b, "]}"...)
	w.Header()["Content-Type"] = ctJSON
	_, _ = w.Write(b)
}

// writeError answers in the error shape of the API the client called.
func writeError(w http.ResponseWriter, a api, status int, msg string) {
	b := make([]byte, 0, 128+len(msg))
	typ := "invalid_request_error"
	if a == apiAnthropic {
		if status == http.StatusNotFound {
			typ = "not_found_error"
		}
		b = append(b, `{"type":"error","error":{"type":`...)
		b = jsonstr.Append(b, typ)
		b = append(b, `,"message":`...)
		b = jsonstr.Append(b, msg)
		b = append(b, "}}"...)
	} else {
		b = append(b, `{"error":{"message":`...)
		b = jsonstr.Append(b, msg)
		b = append(b, `,"type":`...)
		b = jsonstr.Append(b, typ)
		b = append(b, `,"param":null,"code":null}}`...)
	}
	w.Header()["Content-Type"] = ctJSON
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
