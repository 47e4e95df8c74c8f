package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/bodyscan"
	"switchyard/config"
	"switchyard/internal/testkit"
	"switchyard/routing"
)

// Secrets the test configuration resolves through a fake environment.
const (
	secretOpenAI    = "sk-openai-SECRET-0001"
	secretAnthropic = "sk-ant-SECRET-0002"
	secretAzure     = "azure-SECRET-0003"
	keyTeamA        = "team-a-KEY-0004" // allowed: gpt-4*, fast
	keyTeamB        = "team-b-KEY-0005" // allowed: everything
)

// testMaxBody is the configured body limit; small so the tests can cross it.
const testMaxBody = 1024

const testConfigYAML = `
max_body_bytes: 1024
providers:
  - name: openai
    url: https://api.openai.com
    schema: openai
    auth: {type: bearer, key_env: OPENAI_API_KEY}
  - name: anthropic
    url: https://api.anthropic.com
    schema: anthropic
    auth: {type: header, header: x-api-key, key_env: ANTHROPIC_API_KEY}
  - name: azure
    url: https://example.openai.azure.com
    cluster: azure_eu
    schema: openai
    path_prefix: /openai/deployments/gpt4
    auth: {type: header, header: api-key, key_env: AZURE_KEY}
  - name: ollama
    url: http://127.0.0.1:11434
    schema: openai
  - name: nokey
    url: https://nokey.example
    schema: openai
    auth: {type: bearer, key_env: NOKEY_UNSET}
routes:
  - model: gpt-4o
    provider: openai
  - model: fast
    provider: ollama
    rewrite_model: llama3.2
  - model: azure-gpt
    provider: azure
  - model: claude-sonnet
    provider: anthropic
    rewrite_model: claude-sonnet-4-5
  - model: broken
    provider: nokey
  - model: claude-*
    provider: anthropic
client_keys:
  - name: team-a
    key_env: KEY_TEAM_A
    models: ["gpt-4*", "fast"]
  - name: team-b
    key_env: KEY_TEAM_B
`

var testEnv = config.Env{
	Getenv: func(name string) (string, bool) {
		v, ok := map[string]string{
			"OPENAI_API_KEY":    secretOpenAI,
			"ANTHROPIC_API_KEY": secretAnthropic,
			"AZURE_KEY":         secretAzure,
			"KEY_TEAM_A":        keyTeamA,
			"KEY_TEAM_B":        keyTeamB,
		}[name]
		return v, ok
	},
	ReadFile: func(name string) ([]byte, error) { return nil, io.ErrUnexpectedEOF },
}

func compileRouter(tb testing.TB, yamlText string) *routing.Router {
	tb.Helper()
	cfg, err := config.Decode([]byte(yamlText))
	if err != nil {
		tb.Fatalf("decoding config: %v", err)
	}
	r, err := routing.Compile(cfg, testEnv)
	if err != nil {
		tb.Fatalf("compiling config: %v", err)
	}
	return r
}

func newTestServer(tb testing.TB, m *Metrics) *Server {
	tb.Helper()
	r := compileRouter(tb, testConfigYAML)
	return New(Options{Router: func() *routing.Router { return r }, Metrics: m})
}

// fakeStream is a scripted ext_proc stream: Recv hands out the script, then
// io.EOF (as when Envoy half-closes); Send records every response.
type fakeStream struct {
	grpc.ServerStream // nil: calling an unscripted method panics

	ctx    context.Context
	script []*extprocv3.ProcessingRequest
	next   int
	sent   []*extprocv3.ProcessingResponse
	onRecv func() // optional, called at every Recv
	// direct: RecvMsg and Send pass the messages themselves, not encoded
	// (allocation counts of the processor alone).
	direct bool
}

var _ extprocv3.ExternalProcessor_ProcessServer = (*fakeStream)(nil)

func newFakeStream(ctx context.Context, script ...*extprocv3.ProcessingRequest) *fakeStream {
	return &fakeStream{ctx: ctx, script: script}
}

func (f *fakeStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if f.onRecv != nil {
		f.onRecv()
	}
	if f.next >= len(f.script) {
		return nil, io.EOF
	}
	m := f.script[f.next]
	f.next++
	return m, nil
}

// RecvMsg is how serveStream reads: the next message, encoded and decoded
// again by extproc's codec in 16 KB pieces, as gRPC hands over a message
// that came in HTTP/2 DATA frames.
func (f *fakeStream) RecvMsg(m any) error {
	msg, err := f.Recv()
	if err != nil {
		return err
	}
	var b []byte
	if !f.direct {
		// A message proto cannot encode (a fuzzer's header value that
		// is not UTF-8) is handed over as it is.
		b, err = proto.Marshal(msg)
	}
	if f.direct || err != nil { // the message itself, as Recv would give it
		r := m.(*received)
		r.Request, r.ProtocolConfig, r.MetadataContext = msg.Request, msg.ProtocolConfig, msg.MetadataContext
		r.Attributes, r.ObservabilityMode = msg.Attributes, msg.ObservabilityMode
		return nil
	}
	var data mem.BufferSlice
	for len(b) > 16<<10 {
		data, b = append(data, mem.SliceBuffer(b[:16<<10])), b[16<<10:]
	}
	return Codec{}.Unmarshal(append(data, mem.SliceBuffer(b)), m)
}

// Send keeps a copy of r, as gRPC encodes it before Send returns: what the
// processor changes afterwards (a body buffer it releases) is not what was
// sent.
func (f *fakeStream) Send(r *extprocv3.ProcessingResponse) error {
	if f.direct {
		f.sent = append(f.sent, r)
		return nil
	}
	f.sent = append(f.sent, proto.Clone(r).(*extprocv3.ProcessingResponse))
	return nil
}

func (f *fakeStream) Context() context.Context { return f.ctx }

// reset rewinds the stream for another run of the same script.
func (f *fakeStream) reset() {
	f.next = 0
	clear(f.sent)
	f.sent = f.sent[:0]
}

// run drives one exchange through Server.Process and returns what it sent.
func run(t testing.TB, s *Server, script ...*extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	t.Helper()
	st := newFakeStream(t.Context(), script...)
	if err := s.Process(st); err != nil {
		t.Fatalf("Process: %v", err)
	}
	return st.sent
}

// Request builders. Envoy announces the body mode on the first message.

const (
	buffered   = filterv3.ProcessingMode_BUFFERED
	fullDuplex = filterv3.ProcessingMode_FULL_DUPLEX_STREAMED
)

func headersMsg(mode filterv3.ProcessingMode_BodySendMode, eos bool, kv ...string) *extprocv3.ProcessingRequest {
	hs := make([]*corev3.HeaderValue, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{
		ProtocolConfig: &extprocv3.ProtocolConfiguration{RequestBodyMode: mode},
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers:     &corev3.HeaderMap{Headers: hs},
			EndOfStream: eos,
		}},
	}
}

func bodyMsg(body string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: eos},
	}}
}

func trailersMsg() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{
		RequestTrailers: &extprocv3.HttpTrailers{Trailers: &corev3.HeaderMap{}},
	}}
}

// post is the header list of a POST to path with the given extra headers.
func post(path string, extra ...string) []string {
	return append([]string{":method", "POST", ":path", path, ":authority", "gw", "content-type", "application/json"}, extra...)
}

func bearer(key string) []string { return []string{"authorization", "Bearer " + key} }

// script is a whole request: headers and the body in one message.
func script(mode filterv3.ProcessingMode_BodySendMode, headers []string, body string) []*extprocv3.ProcessingRequest {
	return []*extprocv3.ProcessingRequest{headersMsg(mode, false, headers...), bodyMsg(body, true)}
}

// Expected responses.

func set(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// routed describes a successful decision.
type routed struct {
	cluster    string
	credential []string // name, value; nil for none
	path       string   // new :path, "" when unchanged
	body       string   // body sent upstream
	rewritten  bool     // body differs from the client's
}

func (r routed) mutation(withLength bool) *extprocv3.HeaderMutation {
	hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(routing.ClusterHeader, r.cluster)}}
	for _, h := range []string{"authorization", "x-api-key", "api-key"} {
		if r.credential == nil || r.credential[0] != h {
			hm.RemoveHeaders = append(hm.RemoveHeaders, h)
		}
	}
	if r.credential != nil {
		hm.SetHeaders = append(hm.SetHeaders, set(r.credential[0], r.credential[1]))
	}
	if r.path != "" {
		hm.SetHeaders = append(hm.SetHeaders, set(":path", r.path))
	}
	if withLength {
		hm.SetHeaders = append(hm.SetHeaders, set("content-length", strconv.Itoa(len(r.body))))
	}
	return hm
}

func continueHeaders() *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
}

// buffered: CONTINUE to the headers, then the decision on the body answer.
func (r routed) buffered() []*extprocv3.ProcessingResponse {
	common := &extprocv3.CommonResponse{HeaderMutation: r.mutation(r.rewritten), ClearRouteCache: true}
	if r.rewritten {
		common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte(r.body)}}
	}
	return []*extprocv3.ProcessingResponse{
		continueHeaders(),
		{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}},
	}
}

// duplex: headers answer with the decision, then the whole body streamed.
func (r routed) duplex() []*extprocv3.ProcessingResponse {
	return []*extprocv3.ProcessingResponse{
		{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
			Response: &extprocv3.CommonResponse{HeaderMutation: r.mutation(true), ClearRouteCache: true},
		}}},
		{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
			Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
				Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: []byte(r.body), EndOfStream: true}},
			}},
		}}},
	}
}

func (r routed) want(mode filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingResponse {
	if mode == fullDuplex {
		return r.duplex()
	}
	return r.buffered()
}

// immediateShell is an immediate response without its body; the body is
// checked by decoding it.
func immediateShell(status int, details string) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("content-type", "application/json")}},
		Details: details,
	}}}
}

// The two client-facing error shapes, decoded strictly.

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantErr is the expected error: status, API shape, error type and code,
// and a substring of the message.
type wantErr struct {
	status  int
	api     config.API
	typ     string
	code    string // OpenAI code; also the Details suffix
	message string // substring
}

// decodeExact decodes data strictly (testkit.DecodeStrict) into v and
// checks that the objects at the keys of wantKeys ("" for the top level)
// have exactly the keys listed.
func decodeExact(t testing.TB, data []byte, v any, wantKeys map[string][]string) {
	t.Helper()
	testkit.DecodeStrict(t, data, v)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("decoding error body %s: %v", data, err)
	}
	for obj, keys := range wantKeys {
		m := raw
		if obj != "" {
			m = nil
			if err := json.Unmarshal(raw[obj], &m); err != nil {
				t.Fatalf("error body %s: %q is not an object: %v", data, obj, err)
			}
		}
		got := make([]string, 0, len(m))
		for k := range m {
			got = append(got, k)
		}
		sort.Strings(got)
		want := slices.Clone(keys)
		sort.Strings(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("keys of %q in %s (-want +got):\n%s", obj, data, diff)
		}
	}
}

// checkError checks that got is exactly one immediate response carrying w.
func checkError(t *testing.T, got []*extprocv3.ProcessingResponse, w wantErr) {
	t.Helper()
	if len(got) != 1 || got[0].GetImmediateResponse() == nil {
		t.Fatalf("got %d responses %v, want one immediate response", len(got), got)
	}
	imm := proto.Clone(got[0]).(*extprocv3.ProcessingResponse)
	body := imm.GetImmediateResponse().Body
	imm.GetImmediateResponse().Body = nil
	if diff := cmp.Diff(immediateShell(w.status, "switchyard_"+w.code), imm, protocmp.Transform()); diff != "" {
		t.Errorf("immediate response (-want +got):\n%s", diff)
	}
	var msg string
	switch w.api {
	case config.APIAnthropic:
		var e anthropicError
		decodeExact(t, body, &e, map[string][]string{"": {"type", "error"}, "error": {"type", "message"}})
		if diff := cmp.Diff([]string{"error", w.typ}, []string{e.Type, e.Error.Type}); diff != "" {
			t.Errorf("anthropic error types (-want +got):\n%s", diff)
		}
		msg = e.Error.Message
	default:
		var e openAIError
		decodeExact(t, body, &e, map[string][]string{"": {"error"}, "error": {"message", "type", "param", "code"}})
		if diff := cmp.Diff([]string{w.typ, w.code}, []string{e.Error.Type, e.Error.Code}); diff != "" {
			t.Errorf("openai error type, code (-want +got):\n%s", diff)
		}
		if e.Error.Param != nil {
			t.Errorf("openai error param = %q, want null", *e.Error.Param)
		}
		msg = e.Error.Message
	}
	if !strings.Contains(msg, w.message) {
		t.Errorf("error message %q does not contain %q", msg, w.message)
	}
	for _, s := range []string{secretOpenAI, secretAnthropic, secretAzure, keyTeamA, keyTeamB} {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("error body %s leaks a secret", body)
		}
	}
}

const chatBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`

func TestProcessRouted(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	openai := []string{"authorization", "Bearer " + secretOpenAI}

	type tc struct {
		name   string
		script func(mode filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest
		want   routed
		// trailers: the exchange ended with trailers, which get their own answer.
		trailers bool
	}
	tests := []tc{
		{
			name: "openai bearer key",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/chat/completions", bearer(keyTeamB)...), chatBody)
			},
			want: routed{cluster: "openai", credential: openai, body: chatBody},
		},
		{
			name: "client creds in every header are removed",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/chat/completions", "x-api-key", keyTeamB, "api-key", "other"), chatBody)
			},
			want: routed{cluster: "openai", credential: openai, body: chatBody},
		},
		{
			name: "model rewrite",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/chat/completions", bearer(keyTeamA)...), `{"model":"fast","stream":true}`)
			},
			want: routed{cluster: "ollama", body: `{"model":"llama3.2","stream":true}`, rewritten: true},
		},
		{
			name: "model rewrite keeps whitespace and other fields",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/completions", bearer(keyTeamA)...), "{ \"prompt\": \"x\",\n  \"model\" : \"fast\" }")
			},
			want: routed{cluster: "ollama", body: "{ \"prompt\": \"x\",\n  \"model\" : \"llama3.2\" }", rewritten: true},
		},
		{
			name: "path prefix keeps the query",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/chat/completions?api-version=2024-10-21", "api-key", keyTeamB), `{"model":"azure-gpt"}`)
			},
			want: routed{
				cluster:    "azure_eu",
				credential: []string{"api-key", secretAzure},
				path:       "/openai/deployments/gpt4/v1/chat/completions?api-version=2024-10-21",
				body:       `{"model":"azure-gpt"}`,
			},
		},
		{
			name: "provider/model form",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/embeddings", bearer(keyTeamB)...), `{"model":"openai/text-embedding-3-small","input":"x"}`)
			},
			want: routed{cluster: "openai", credential: openai, body: `{"model":"text-embedding-3-small","input":"x"}`, rewritten: true},
		},
		{
			name: "anthropic x-api-key replaced by provider key",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/messages", "x-api-key", keyTeamB, "anthropic-version", "2023-06-01"), `{"model":"claude-sonnet","max_tokens":10}`)
			},
			want: routed{
				cluster:    "anthropic",
				credential: []string{"x-api-key", secretAnthropic},
				body:       `{"model":"claude-sonnet-4-5","max_tokens":10}`,
				rewritten:  true,
			},
		},
		{
			name: "anthropic glob route without rewrite",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return script(m, post("/v1/messages/count_tokens", bearer(keyTeamB)...), `{"model":"claude-haiku"}`)
			},
			want: routed{cluster: "anthropic", credential: []string{"x-api-key", secretAnthropic}, body: `{"model":"claude-haiku"}`},
		},
		{
			name: "body split over chunks",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return []*extprocv3.ProcessingRequest{
					headersMsg(m, false, post("/v1/chat/completions", bearer(keyTeamA)...)...),
					bodyMsg(`{"messages":[],`, false),
					bodyMsg(`"model":"fa`, false),
					bodyMsg(``, false),
					bodyMsg(`st"}`, true),
				}
			},
			want: routed{cluster: "ollama", body: `{"messages":[],"model":"llama3.2"}`, rewritten: true},
		},
		{
			name: "trailers end the body",
			script: func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
				return []*extprocv3.ProcessingRequest{
					headersMsg(m, false, post("/v1/chat/completions", bearer(keyTeamB)...)...),
					bodyMsg(chatBody[:10], false),
					bodyMsg(chatBody[10:], false),
					trailersMsg(),
				}
			},
			want:     routed{cluster: "openai", credential: openai, body: chatBody},
			trailers: true,
		},
	}
	for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
		for _, tt := range tests {
			if mode == buffered && (strings.Contains(tt.name, "chunks") || tt.trailers) {
				continue // Envoy sends a buffered body in one message
			}
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				got := run(t, srv, tt.script(mode)...)
				want := tt.want.want(mode)
				if tt.trailers {
					want = append(want, &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}})
				}
				if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
					t.Errorf("responses (-want +got):\n%s", diff)
				}
			})
		}
	}
	for _, tt := range tests {
		if strings.Contains(tt.name, "chunks") || tt.trailers {
			continue // Envoy's body module summarizes a body it buffered
		}
		t.Run("summarized/"+tt.name, func(t *testing.T) {
			t.Parallel()
			got := run(t, srv, summarized(t, tt.script(buffered))...)
			if diff := cmp.Diff(tt.want.fromSummary(), got, protocmp.Transform()); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
}

// summarized makes a buffered request's script one whose body Envoy kept
// (body mode NONE, its length announced) with its body module's summary on
// the headers; the body message stays, as Envoy sends it when extproc asks
// for it.
func summarized(t testing.TB, script []*extprocv3.ProcessingRequest) []*extprocv3.ProcessingRequest {
	t.Helper()
	summary, ok := bodyscan.Summary(nil, script[1].GetRequestBody().GetBody())
	if !ok {
		t.Fatalf("no summary of %q", script[1].GetRequestBody().GetBody())
	}
	h := proto.Clone(script[0]).(*extprocv3.ProcessingRequest)
	hs := h.GetRequestHeaders().GetHeaders()
	hs.Headers = append(hs.Headers, &corev3.HeaderValue{Key: "content-length", RawValue: []byte(strconv.Itoa(len(script[1].GetRequestBody().GetBody())))})
	return withSummary(append([]*extprocv3.ProcessingRequest{h}, script[1:]...), string(summary))
}

// withSummary is script with the body mode NONE and, unless summary is "",
// a body module's summary on its headers.
func withSummary(script []*extprocv3.ProcessingRequest, summary string) []*extprocv3.ProcessingRequest {
	h := proto.Clone(script[0]).(*extprocv3.ProcessingRequest)
	h.ProtocolConfig.RequestBodyMode = filterv3.ProcessingMode_NONE
	if summary != "" {
		h.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			routing.BodyNamespace: {Fields: map[string]*structpb.Value{routing.BodySummaryKey: structpb.NewStringValue(summary)}},
		}}
	}
	return append([]*extprocv3.ProcessingRequest{h}, script[1:]...)
}

// askedForBody is the answer to the headers of a request whose body Envoy
// kept, when the plan needs the body: send it, BUFFERED.
func askedForBody() *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
		ModeOverride: &filterv3.ProcessingMode{
			RequestHeaderMode: filterv3.ProcessingMode_SEND, RequestBodyMode: filterv3.ProcessingMode_BUFFERED,
			RequestTrailerMode: filterv3.ProcessingMode_SKIP, ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
			ResponseBodyMode: filterv3.ProcessingMode_NONE, ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
		},
	}
}

// fromSummary: the decision on the headers when the body goes on as it
// came; otherwise a request for the body, and the decision on it.
func (r routed) fromSummary() []*extprocv3.ProcessingResponse {
	if r.rewritten {
		return append([]*extprocv3.ProcessingResponse{askedForBody()}, r.buffered()[1])
	}
	return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
		Response: &extprocv3.CommonResponse{HeaderMutation: r.mutation(false), ClearRouteCache: true},
	}}}}
}

func TestProcessErrors(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)

	type tc struct {
		name   string
		script func(mode filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest
		want   wantErr
	}
	oa := config.APIOpenAI
	an := config.APIAnthropic
	chat := func(body string, hdrs ...string) func(filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
		return func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return script(m, post("/v1/chat/completions", append(bearer(keyTeamB), hdrs...)...), body)
		}
	}
	messages := func(body string, hdrs ...string) func(filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
		return func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return script(m, post("/v1/messages", hdrs...), body)
		}
	}
	big := `{"model":"gpt-4o","pad":"` + strings.Repeat("x", testMaxBody) + `"}`
	tests := []tc{
		{"missing model", chat(`{"messages":[]}`), wantErr{400, oa, "invalid_request_error", "missing_model", `no "model" field`}},
		{"invalid json", chat(`{"model":"gpt-4o",`), wantErr{400, oa, "invalid_request_error", "invalid_json", "not valid JSON"}},
		{"not an object", chat(`["gpt-4o"]`), wantErr{400, oa, "invalid_request_error", "invalid_json", "must be a JSON object"}},
		{"empty body", chat(``), wantErr{400, oa, "invalid_request_error", "invalid_json", "body is required"}},
		{"duplicate model", chat(`{"model":"gpt-4o","model":"fast"}`), wantErr{400, oa, "invalid_request_error", "duplicate_model", "more than once"}},
		{"duplicate model escaped", chat(`{"model":"gpt-4o","mod\u0065l":"fast"}`), wantErr{400, oa, "invalid_request_error", "duplicate_model", "more than once"}},
		{"model in another case", chat(`{"model":"fast","Model":"gpt-4o"}`), wantErr{400, oa, "invalid_request_error", "ambiguous_key", `names "model" more than once, or in another case`}},
		{"stream in another case", chat(`{"model":"gpt-4o","\u017ftream":true}`), wantErr{400, oa, "invalid_request_error", "ambiguous_key", `names "stream" more than`}},
		{"include_usage twice", chat(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true,"include_usage":false}}`), wantErr{400, oa, "invalid_request_error", "ambiguous_key", `names "stream_options.include_usage" more than`}},
		{"stream_options twice", chat(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":false}}`), wantErr{400, oa, "invalid_request_error", "ambiguous_key", `names "stream_options" more than`}},
		{"string stream", chat(`{"model":"gpt-4o","stream":"true"}`), wantErr{400, oa, "invalid_request_error", "invalid_type", `"stream" must be a boolean`}},
		{"number stream", chat(`{"model":"gpt-4o","stream":1}`), wantErr{400, oa, "invalid_request_error", "invalid_type", `"stream" must be a boolean`}},
		{"nested model is not the model", chat(`{"x":{"model":"gpt-4o"}}`), wantErr{400, oa, "invalid_request_error", "missing_model", `no "model" field`}},
		{"number model", chat(`{"model":4}`), wantErr{400, oa, "invalid_request_error", "invalid_model", "must be a string"}},
		{"null model", chat(`{"model":null}`), wantErr{400, oa, "invalid_request_error", "invalid_model", "must be a string"}},
		{"object model", chat(`{"model":{"id":"gpt-4o"}}`), wantErr{400, oa, "invalid_request_error", "invalid_model", "must be a string"}},
		{"empty model", chat(`{"model":""}`), wantErr{400, oa, "invalid_request_error", "invalid_model", "must not be empty"}},
		{"long model", chat(`{"model":"` + strings.Repeat("m", 257) + `"}`), wantErr{400, oa, "invalid_request_error", "invalid_model", "longer than 256"}},
		{"unknown model", chat(`{"model":"llama-9"}`), wantErr{404, oa, "invalid_request_error", "model_not_found", `"llama-9" is not served`}},
		{"provider without key", chat(`{"model":"broken"}`), wantErr{503, oa, "server_error", "provider_unavailable", "NOKEY_UNSET is not set"}},
		{"model not allowed for key", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return script(m, post("/v1/chat/completions", bearer(keyTeamA)...), `{"model":"azure-gpt"}`)
		}, wantErr{403, oa, "permission_error", "model_not_allowed", `not allowed for key "team-a"`}},
		// Chat completions and messages translate; other endpoints cannot.
		{"anthropic model on responses endpoint", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return script(m, post("/v1/responses", bearer(keyTeamB)...), `{"model":"claude-sonnet","input":"hi"}`)
		}, wantErr{400, oa, "invalid_request_error", "invalid_request", "call the anthropic endpoint"}},
		{"missing key", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return script(m, post("/v1/chat/completions"), chatBody)
		}, wantErr{401, oa, "authentication_error", "invalid_api_key", "missing API key"}},
		{"wrong key", chat(chatBody, "authorization", "Bearer nope"), wantErr{401, oa, "authentication_error", "invalid_api_key", "invalid API key"}},
		{"body over the limit", chat(big), wantErr{413, oa, "invalid_request_error", "request_too_large", "limit of 1024 bytes"}},
		{"content-length over the limit", chat(chatBody, "content-length", "1025"), wantErr{413, oa, "invalid_request_error", "request_too_large", "limit of 1024 bytes"}},
		{"gzip", chat(chatBody, "content-encoding", "gzip"), wantErr{415, oa, "invalid_request_error", "unsupported_content_encoding", `"gzip" is not supported`}},
		{"unknown path", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return script(m, post("/v1/images/generations?x=1", bearer(keyTeamB)...), chatBody)
		}, wantErr{404, oa, "invalid_request_error", "unknown_endpoint", `unknown endpoint "/v1/images/generations"`}},
		{"wrong method", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return []*extprocv3.ProcessingRequest{headersMsg(m, true, ":method", "GET", ":path", "/v1/chat/completions", "authorization", "Bearer "+keyTeamB)}
		}, wantErr{405, oa, "invalid_request_error", "method_not_allowed", "use POST"}},
		{"post without body", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return []*extprocv3.ProcessingRequest{headersMsg(m, true, post("/v1/chat/completions", bearer(keyTeamB)...)...)}
		}, wantErr{400, oa, "invalid_request_error", "invalid_json", "body is required"}},

		// Anthropic endpoints answer in Anthropic's shape.
		{"anthropic missing key", messages(`{"model":"claude-sonnet"}`), wantErr{401, an, "authentication_error", "invalid_api_key", "missing API key"}},
		{"anthropic not allowed", messages(`{"model":"claude-sonnet"}`, "x-api-key", keyTeamA), wantErr{403, an, "permission_error", "model_not_allowed", "not allowed"}},
		{"anthropic unknown model", messages(`{"model":"gpt-9"}`, "x-api-key", keyTeamB), wantErr{404, an, "not_found_error", "model_not_found", "not served"}},
		{"anthropic untranslatable field", messages(`{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"frobnicate":1}`, "x-api-key", keyTeamB),
			wantErr{400, an, "invalid_request_error", "translation_refused", "frobnicate"}},
		{"anthropic too large", messages(big, "x-api-key", keyTeamB), wantErr{413, an, "request_too_large", "request_too_large", "limit of 1024"}},
		{"anthropic invalid json", messages(`{`, "x-api-key", keyTeamB), wantErr{400, an, "invalid_request_error", "invalid_json", "not valid JSON"}},
		{"anthropic unknown path", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return script(m, post("/v1/messages/batches", "x-api-key", keyTeamB), `{}`)
		}, wantErr{404, an, "not_found_error", "unknown_endpoint", "unknown endpoint"}},
		{"anthropic wrong method", func(m filterv3.ProcessingMode_BodySendMode) []*extprocv3.ProcessingRequest {
			return []*extprocv3.ProcessingRequest{headersMsg(m, true, ":method", "PUT", ":path", "/v1/messages")}
		}, wantErr{405, an, "invalid_request_error", "method_not_allowed", "use POST"}},
	}
	for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				got := run(t, srv, tt.script(mode)...)
				// In buffered mode a failure found in the body comes after
				// the CONTINUE to the headers.
				if mode == buffered && len(got) == 2 {
					if diff := cmp.Diff(continueHeaders(), got[0], protocmp.Transform()); diff != "" {
						t.Errorf("headers answer (-want +got):\n%s", diff)
					}
					got = got[1:]
				}
				checkError(t, got, tt.want)
			})
		}
	}
	// With the body kept in Envoy, no error comes from its summary: a
	// request refused for its body is refused on the body, after asking.
	for _, tt := range tests {
		t.Run("summarized/"+tt.name, func(t *testing.T) {
			t.Parallel()
			script := tt.script(buffered)
			summary := ""
			if len(script) > 1 {
				s, _ := bodyscan.Summary(nil, script[1].GetRequestBody().GetBody())
				summary = string(s)
			}
			got := run(t, srv, withSummary(script, summary)...)
			if len(got) == 2 {
				if diff := cmp.Diff(askedForBody(), got[0], protocmp.Transform()); diff != "" {
					t.Errorf("headers answer (-want +got):\n%s", diff)
				}
				got = got[1:]
			}
			checkError(t, got, tt.want)
		})
	}
}

// TestProcessAnthropicUnavailable checks the Anthropic shape of a 503, which
// needs an Anthropic provider without credentials.
func TestProcessAnthropicUnavailable(t *testing.T) {
	t.Parallel()
	r := compileRouter(t, `
providers:
  - name: anthropic
    url: https://api.anthropic.com
    schema: anthropic
    auth: {type: header, header: x-api-key, key_env: ANTHROPIC_UNSET}
routes:
  - model: claude-sonnet
    provider: anthropic
`)
	srv := New(Options{Router: func() *routing.Router { return r }})
	for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			got := run(t, srv, script(mode, post("/v1/messages"), `{"model":"claude-sonnet"}`)...)
			if mode == buffered {
				got = got[1:]
			}
			checkError(t, got, wantErr{503, config.APIAnthropic, "overloaded_error", "provider_unavailable", "ANTHROPIC_UNSET is not set"})
		})
	}
}

// TestProcessHeaderPhaseErrorsAnswerOnce checks that an error found in the
// headers is the only answer: the body that Envoy may already have sent in
// full-duplex mode gets none.
func TestProcessHeaderPhaseErrorsAnswerOnce(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	tests := []struct {
		name    string
		headers []string
		status  int
	}{
		{"content-length", post("/v1/chat/completions", "authorization", "Bearer "+keyTeamB, "content-length", "999999"), 413},
		{"gzip", post("/v1/chat/completions", "authorization", "Bearer "+keyTeamB, "content-encoding", "gzip"), 415},
		{"unauthenticated", post("/v1/chat/completions"), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := run(t, srv, headersMsg(fullDuplex, false, tt.headers...), bodyMsg(chatBody[:5], false), bodyMsg(chatBody[5:], true))
			if len(got) != 1 || int(got[0].GetImmediateResponse().GetStatus().GetCode()) != tt.status {
				t.Fatalf("got %v, want one immediate %d", got, tt.status)
			}
		})
	}
}

func TestProcessBodyLimitAcrossChunks(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	chunk := strings.Repeat(" ", testMaxBody/2)
	got := run(t, srv,
		headersMsg(fullDuplex, false, post("/v1/chat/completions", bearer(keyTeamB)...)...),
		bodyMsg(`{"model":"gpt-4o",`, false),
		bodyMsg(chunk, false),
		bodyMsg(chunk, false), // crosses the limit: answered here
		bodyMsg(chunk, false),
		bodyMsg(`}`, true),
	)
	checkError(t, got, wantErr{413, config.APIOpenAI, "invalid_request_error", "request_too_large", "limit of 1024 bytes"})

	// Exactly at the limit is fine.
	body := `{"model":"gpt-4o","pad":"` + strings.Repeat("x", testMaxBody-len(`{"model":"gpt-4o","pad":""}`)) + `"}`
	if len(body) != testMaxBody {
		t.Fatalf("test body is %d bytes, want %d", len(body), testMaxBody)
	}
	got = run(t, srv, script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamB)...), body)...)
	want := routed{cluster: "openai", credential: []string{"authorization", "Bearer " + secretOpenAI}, body: body}.duplex()
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("responses at the limit (-want +got):\n%s", diff)
	}
}

func TestProcessModels(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	type list struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}
	m := func(id, owner string) model { return model{ID: id, Object: "model", OwnedBy: owner} }
	tests := []struct {
		name string
		key  string
		path string
		want list
	}{
		{"allow-list", keyTeamA, "/v1/models", list{"list", []model{m("fast", "ollama"), m("gpt-4o", "openai")}}},
		{"every exact route", keyTeamB, "/v1/models?limit=5", list{"list", []model{
			m("azure-gpt", "azure"), m("broken", "nokey"), m("claude-sonnet", "anthropic"), m("fast", "ollama"), m("gpt-4o", "openai"),
		}}},
	}
	for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				got := run(t, srv, headersMsg(mode, true, ":method", "GET", ":path", tt.path, "authorization", "Bearer "+tt.key))
				if len(got) != 1 {
					t.Fatalf("got %d responses, want 1", len(got))
				}
				imm := proto.Clone(got[0]).(*extprocv3.ProcessingResponse)
				body := imm.GetImmediateResponse().Body
				imm.GetImmediateResponse().Body = nil
				if diff := cmp.Diff(immediateShell(200, "switchyard_models"), imm, protocmp.Transform()); diff != "" {
					t.Errorf("immediate response (-want +got):\n%s", diff)
				}
				var l list
				decodeExact(t, body, &l, map[string][]string{"": {"object", "data"}})
				if diff := cmp.Diff(tt.want, l); diff != "" {
					t.Errorf("models (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("unauthenticated", func(t *testing.T) {
		t.Parallel()
		got := run(t, srv, headersMsg(buffered, true, ":method", "GET", ":path", "/v1/models"))
		checkError(t, got, wantErr{401, config.APIOpenAI, "authentication_error", "invalid_api_key", "missing API key"})
	})
	t.Run("post", func(t *testing.T) {
		t.Parallel()
		got := run(t, srv, script(buffered, post("/v1/models", bearer(keyTeamB)...), `{}`)...)
		checkError(t, got, wantErr{405, config.APIOpenAI, "invalid_request_error", "method_not_allowed", "use GET"})
	})
}

// TestProcessResponsePhases checks that response phases, if Envoy is
// configured to send them, are passed through unchanged.
func TestProcessResponsePhases(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	got := run(t, srv,
		&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{}}},
		&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte("x"), EndOfStream: true}}},
		&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}},
	)
	want := []*extprocv3.ProcessingResponse{
		{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}},
		{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}},
		{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
}

// TestProcessSnapshotPerRequest checks that a request keeps the router it
// started with even if the current one changes between its messages.
func TestProcessSnapshotPerRequest(t *testing.T) {
	t.Parallel()
	first := compileRouter(t, testConfigYAML)
	second := compileRouter(t, strings.Replace(testConfigYAML, "rewrite_model: llama3.2", "rewrite_model: qwen3", 1))
	current := first
	srv := New(Options{Router: func() *routing.Router { return current }})
	st := newFakeStream(t.Context(), script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamA)...), `{"model":"fast"}`)...)
	st.onRecv = func() {
		if st.next == 1 { // after the headers were handled
			current = second
		}
	}
	if err := srv.Process(st); err != nil {
		t.Fatalf("Process: %v", err)
	}
	want := routed{cluster: "ollama", body: `{"model":"llama3.2"}`, rewritten: true}.duplex()
	if diff := cmp.Diff(want, st.sent, protocmp.Transform()); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
}

// Every test in this package reads its messages through extproc's codec
// (fakeStream.RecvMsg) with released body buffers cleared: a body read
// after its message was answered shows up as zeros.
func init() { poisonReleased = true }
