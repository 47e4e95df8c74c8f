package processor

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"switchyard/loadtest/agentbody"
	"switchyard/routing"
)

// benchCase is one kind of request the benchmarks send.
type benchCase struct {
	name    string
	headers []string
	body    string
}

// benchChat is a ~300-byte chat request naming model.
func benchChat(model string) string {
	b := `{"model":"` + model + `","messages":[{"role":"system","content":"You are a terse assistant that answers in one sentence."},` +
		`{"role":"user","content":"Summarise the plot of Hamlet without spoilers for the ending, please."}],` +
		`"temperature":0.2,"max_tokens":128,"stream":true,"user":"bench-user-0001"}`
	return b + strings.Repeat(" ", max(0, 300-len(b)))
}

// benchCases: a plain route (credential swap only) and a model rewrite.
func benchCases() []benchCase {
	hdrs := func(key string) []string {
		return post("/v1/chat/completions", "authorization", "Bearer "+key, "content-length", "300",
			"user-agent", "openai-python/1.50.0", "x-request-id", "0f6c1c0e-6b5e-4d7a-9c55-0d7c3e1b9a11", "accept", "text/event-stream")
	}
	return []benchCase{
		{"plain", hdrs(keyTeamB), benchChat("gpt-4o")},
		{"rewrite", hdrs(keyTeamA), benchChat("fast")},
	}
}

// startGRPC serves srv on a Unix socket and returns a client connected to it.
func startGRPC(b *testing.B, srv *Server, opts ...grpc.ServerOption) extprocv3.ExternalProcessorClient {
	b.Helper()
	return startGRPCWith(b, srv, opts...)
}

// finish half-closes the stream as Envoy does at the end of a request and
// waits for the server to end it.
func finish(stream extprocv3.ExternalProcessor_ProcessClient) error {
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return errors.Join(errors.New("stream did not end after the answer"), err)
	}
	return nil
}

// fullDuplexRequest sends one request as Envoy does in full-duplex mode
// (headers and body without waiting) and reads both answers.
func fullDuplexRequest(b *testing.B, ctx context.Context, client extprocv3.ExternalProcessorClient, hdr, body *extprocv3.ProcessingRequest) {
	stream, err := client.Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(hdr); err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(body); err != nil {
		b.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetRequestHeaders() == nil {
		b.Fatalf("headers answer %v, %v", r, err)
	}
	if r, err := stream.Recv(); err != nil || r.GetRequestBody() == nil {
		b.Fatalf("body answer %v, %v", r, err)
	}
	if err := finish(stream); err != nil {
		b.Fatal(err)
	}
}

// bufferedRequest sends one request as Envoy does in BUFFERED mode: the
// headers, wait for their answer, the body, wait for the decision.
func bufferedRequest(b *testing.B, ctx context.Context, client extprocv3.ExternalProcessorClient, hdr, body *extprocv3.ProcessingRequest) {
	stream, err := client.Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(hdr); err != nil {
		b.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetRequestHeaders() == nil {
		b.Fatalf("headers answer %v, %v", r, err)
	}
	if err := stream.Send(body); err != nil {
		b.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetRequestBody() == nil {
		b.Fatalf("body answer %v, %v", r, err)
	}
	if err := finish(stream); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBuffered is one request over a real gRPC stream in BUFFERED
// mode: headers, wait for CONTINUE, body, wait for the decision.
func BenchmarkBuffered(b *testing.B) {
	client := startGRPC(b, newTestServer(b, nil))
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			hdr := headersMsg(buffered, false, bc.headers...)
			body := bodyMsg(bc.body, true)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				bufferedRequest(b, ctx, client, hdr, body)
			}
		})
	}
}

// BenchmarkFullDuplex is one request over a real gRPC stream in
// FULL_DUPLEX_STREAMED mode: headers and body without waiting, then the two
// answers.
func BenchmarkFullDuplex(b *testing.B) {
	client := startGRPC(b, newTestServer(b, nil))
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			hdr := headersMsg(fullDuplex, false, bc.headers...)
			body := bodyMsg(bc.body, true)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				fullDuplexRequest(b, ctx, client, hdr, body)
			}
		})
	}
}

// decisionStream is a reusable fake stream carrying one benchmark request.
func decisionStream(mode filterv3.ProcessingMode_BodySendMode, bc benchCase) *fakeStream {
	st := newFakeStream(context.Background(), script(mode, bc.headers, bc.body)...)
	st.sent = make([]*extprocv3.ProcessingResponse, 0, 4)
	st.direct = true
	return st
}

// runDecision replays st through srv once and checks the answer count.
func runDecision(tb testing.TB, srv *Server, st *fakeStream) {
	st.reset()
	if err := srv.Process(st); err != nil {
		tb.Fatal(err)
	}
	if len(st.sent) != 2 || st.sent[1].GetRequestBody() == nil {
		tb.Fatalf("got %v, want two answers ending with the body", st.sent)
	}
}

// BenchmarkDecision is the server's work for one request without gRPC:
// Process over a scripted stream. Its ns/op is the processor's CPU cost.
func BenchmarkDecision(b *testing.B) {
	srv := newTestServer(b, nil)
	for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
		for _, bc := range benchCases() {
			b.Run(strings.ToLower(mode.String())+"/"+bc.name, func(b *testing.B) {
				st := decisionStream(mode, bc)
				b.ReportAllocs()
				for b.Loop() {
					runDecision(b, srv, st)
				}
			})
		}
	}
}

// agentBody is an agent-shaped body of size bytes in the shape of api.
func agentBody(_ testing.TB, api agentbody.API, size int) []byte {
	return agentbody.MustGenerate(agentbody.Spec{API: api, Model: "gpt-4o", Size: size})
}

// BenchmarkReadBody is the body's validation and field lookup on
// agent-shaped bodies: the one-pass scan (readBody) against the four passes
// it replaced (readBodyFourPass), in one run. SetBytes makes the MB/s
// column the scan's speed.
func BenchmarkReadBody(b *testing.B) {
	for _, api := range []agentbody.API{agentbody.OpenAIChat, agentbody.AnthropicMessages} {
		for _, sz := range agentbody.Sizes {
			body := agentBody(b, api, sz.Size)
			for _, impl := range []struct {
				name string
				read func([]byte) (bodyFields, *apiError)
			}{{"one_scan", readBody}, {"four_passes", readBodyFourPass}} {
				b.Run(string(api)+"/"+sz.Name+"/"+impl.name, func(b *testing.B) {
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := impl.read(body); err != nil {
							b.Fatal(err.message)
						}
					}
				})
			}
		}
	}
}

// BenchmarkBodyEdits are the changes a plan makes to an agent's chat, whose
// model the OpenAI SDK writes last: a model rewrite, and the usage chunk
// asked for on a counted stream.
func BenchmarkBodyEdits(b *testing.B) {
	edits := []struct {
		name string
		edit func([]byte) ([]byte, error)
	}{
		{"rewrite", func(body []byte) ([]byte, error) { return rewriteModel(body, "gpt-4o-mini") }},
		{"usage", askForUsage},
	}
	for _, sz := range agentbody.Sizes {
		body := agentBody(b, agentbody.OpenAIChat, sz.Size)
		for _, e := range edits {
			b.Run(e.name+"/"+sz.Name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.edit(body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFullDuplexAgent is BenchmarkFullDuplex with agent-shaped bodies
// (a chat with model last, as the OpenAI SDK sends it), with extproc's
// codec and with gRPC's default one: the body crosses the socket to the
// server, is decided on and comes back, as in full-duplex mode. Client and
// server share the process, so ns/op is both sides; the codec only
// changes the server's.
func BenchmarkFullDuplexAgent(b *testing.B) {
	cfg := strings.Replace(testConfigYAML, "max_body_bytes: 1024", "max_body_bytes: 4194304", 1)
	r := compileRouter(b, cfg)
	for _, codec := range []struct {
		name string
		opts []grpc.ServerOption
	}{{"library", nil}, {"codec", []grpc.ServerOption{grpc.ForceServerCodecV2(Codec{})}}} {
		client := startGRPC(b, New(Options{Router: func() *routing.Router { return r }}), codec.opts...)
		for _, sz := range agentbody.Sizes {
			body := agentBody(b, agentbody.OpenAIChat, sz.Size)
			hdr := headersMsg(fullDuplex, false, post("/v1/chat/completions", "authorization", "Bearer "+keyTeamB,
				"content-length", strconv.Itoa(len(body)))...)
			msg := bodyMsg(string(body), true)
			b.Run(sz.Name+"/"+codec.name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				ctx := context.Background()
				for b.Loop() {
					fullDuplexRequest(b, ctx, client, hdr, msg)
				}
			})
		}
	}
}
