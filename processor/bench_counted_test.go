package processor

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/envoy"
	"switchyard/routing"
)

// BenchmarkCountedAnswer is the server's work for one counted request
// without gRPC: the decision, then the response stream reading a streamed
// chat answer with its usage chunk (tokens counted, priced and charged to
// the key's budgets when it has some). docs/PERFORMANCE.md ("Spend") has
// its figures before and after pricing.
func BenchmarkCountedAnswer(b *testing.B) {
	for _, bc := range []struct{ name, limits string }{
		{"usage", ""},
		{"tokens", "limits: {tokens_per_day: 1000000000}"},
		{"usd", "limits: {tokens_per_day: 1000000000, usd_per_day: 1000000}"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// The limits go under team-b, the config's last key.
			cfg := testConfigYAML + "    " + bc.limits + "\nusage: {enabled: true}\n"
			r := compileRouter(b, cfg)
			srv := New(Options{Router: func() *routing.Router { return r }})
			st := decisionStream(fullDuplex, benchCases()[0])
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
			id := structpb.NewStringValue("")
			md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{routing.RequestNamespace: {Fields: map[string]*structpb.Value{"id": id}}}}
			headers := &extprocv3.ProcessingRequest{ObservabilityMode: true, MetadataContext: md, Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
				Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("text/event-stream")}}}}}}
			chunk := &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
				Body: []byte("data: {\"choices\":[{\"delta\":{\"content\":\"Hamlet\"}}],\"usage\":null}\n\n")}}}
			last := &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
				Body: []byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":61,\"completion_tokens\":24}}\n\ndata: [DONE]\n\n"), EndOfStream: true}}}
			resp := newFakeStream(ctx, headers, chunk, last)
			resp.direct = true
			b.ReportAllocs()
			for b.Loop() {
				st.reset()
				if err := srv.Process(st); err != nil {
					b.Fatal(err)
				}
				id.Kind = &structpb.Value_StringValue{StringValue: sentFlight(st.sent)}
				resp.reset()
				if err := srv.Process(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
