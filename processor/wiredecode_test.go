package processor

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/bodyscan"
	"switchyard/loadtest/agentbody"
)

// decodeSeeds are the messages Envoy sends, and some the fast path leaves
// to the library.
func decodeSeeds(tb testing.TB) []*extprocv3.ProcessingRequest {
	bc := benchCases()[0]
	attrs := &extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{}},
		Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{"request.id": structpb.NewStringValue("r")}}},
	}
	withValue := headersMsg(fullDuplex, true, bc.headers...)
	withValue.GetRequestHeaders().Headers.Headers = append(withValue.GetRequestHeaders().Headers.Headers,
		&corev3.HeaderValue{Key: "x-value", Value: "v"}, &corev3.HeaderValue{Key: "x-empty"})
	withMetadata := headersMsg(fullDuplex, false, bc.headers...)
	withMetadata.MetadataContext = &corev3.Metadata{}
	filled := bodyMsg("{}", true)
	filled.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"ns": {}}}
	numbers := headersMsg(buffered, false)
	numbers.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"ns": {Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1), "s": structpb.NewStringValue("")}}}}
	typed := headersMsg(buffered, false)
	typed.MetadataContext = &corev3.Metadata{TypedFilterMetadata: map[string]*anypb.Any{"ns": {TypeUrl: "t"}}}
	return []*extprocv3.ProcessingRequest{
		headersMsg(fullDuplex, false, bc.headers...),
		withMetadata,
		filled,
		summarizedMsg(tb, bc.headers...),
		numbers,
		typed,
		headersMsg(buffered, true),
		withValue,
		bodyMsg(bc.body, true),
		bodyMsg("", true),
		bodyMsg(string(agentBody(tb, agentbody.OpenAIChat, 64<<10)), false),
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte("x"), EndOfStreamWithoutMessage: true, GrpcMessageCompressed: true, DrainComplete: true}}, ObservabilityMode: true},
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}}},
			ProtocolConfig: &extprocv3.ProtocolConfiguration{RequestBodyMode: 7, ResponseBodyMode: buffered, SendBodyWithoutWaitingForHeaderResponse: true}},
		trailersMsg(),
		attrs,
		{},
	}
}

// summarizedMsg is the headers message of a request whose body Envoy kept,
// with the body module's summary of an agent-shaped body.
func summarizedMsg(tb testing.TB, kv ...string) *extprocv3.ProcessingRequest {
	summary, ok := bodyscan.Summary(nil, agentBody(tb, agentbody.OpenAIChat, 32<<10))
	if !ok {
		tb.Fatal("no summary of an agent body")
	}
	return withSummary([]*extprocv3.ProcessingRequest{headersMsg(buffered, false, kv...)}, string(summary))[0]
}

// TestDecodeRequestMatchesLibrary: the fast path decodes what Envoy sends
// as the protobuf library does, whole or split across buffers.
func TestDecodeRequestMatchesLibrary(t *testing.T) {
	t.Parallel()
	for i, m := range decodeSeeds(t) {
		wire, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		checkDecode(t, wire)
		for _, in := range []mem.BufferSlice{{mem.SliceBuffer(wire)}, {mem.SliceBuffer(wire[:len(wire)/2]), mem.SliceBuffer(wire[len(wire)/2:])}} {
			got := &extprocv3.ProcessingRequest{}
			if err := (Codec{}).Unmarshal(in, got); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if diff := cmp.Diff(m, got, protocmp.Transform()); diff != "" {
				t.Errorf("message %d (-want +got):\n%s", i, diff)
			}
		}
	}
}

// TestDecodeRequestTakesEnvoysMessages: what Envoy 1.40 sends on the
// request path goes through the fast path, not the library. Envoy adds an
// metadata_context to every message, empty (a body's end as it arrived from
// Envoy, byte for byte: request_body{end_of_stream: true},
// metadata_context{}) or with the body module's summary.
func TestDecodeRequestTakesEnvoysMessages(t *testing.T) {
	t.Parallel()
	envoyEnd := []byte{0x22, 0x02, 0x10, 0x01, 0x42, 0x00}
	headers := headersMsg(fullDuplex, false, benchCases()[0].headers...)
	headers.MetadataContext = &corev3.Metadata{}
	body := bodyMsg(string(agentBody(t, agentbody.OpenAIChat, 32<<10)), false)
	body.MetadataContext = &corev3.Metadata{}
	wires := [][]byte{envoyEnd}
	for _, m := range []*extprocv3.ProcessingRequest{headers, body, summarizedMsg(t, benchCases()[0].headers...)} {
		w, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, w)
	}
	for i, w := range wires {
		if !decodeRequest(w, &extprocv3.ProcessingRequest{}, false) {
			t.Errorf("message %d (%x...) left to the library", i, w[:min(16, len(w))])
		}
		checkDecode(t, w)
	}
}

// checkDecode compares decodeRequest with proto.Unmarshal on wire: when
// the fast path takes a message, it decodes exactly what the library does
// (a body nil or not alike), and it takes every message the library
// refuses to the library.
func checkDecode(t *testing.T, wire []byte) {
	t.Helper()
	want := &extprocv3.ProcessingRequest{}
	libErr := proto.Unmarshal(wire, want)
	for _, alias := range []bool{false, true} {
		got := &extprocv3.ProcessingRequest{}
		if !decodeRequest(wire, got, alias) {
			continue
		}
		if libErr != nil {
			t.Fatalf("decodeRequest(%x) took a message the library refuses: %v", wire, libErr)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("decodeRequest(%x, alias %v) (-library +fast):\n%s", wire, alias, diff)
		}
		wb, gb := want.GetRequestBody(), got.GetRequestBody()
		if wb != nil && (wb.Body == nil) != (gb.Body == nil) {
			t.Fatalf("decodeRequest(%x): body nil %v, library's nil %v", wire, gb.Body == nil, wb.Body == nil)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, m := range decodeSeeds(f) {
		wire, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		if len(wire) < 4096 {
			f.Add(wire)
		}
	}
	f.Fuzz(checkDecode)
}

// BenchmarkUnmarshal decodes Envoy's messages as the codec receives them:
// a header message in one buffer, agent-shaped bodies in 16 KB frames (as
// gRPC reads them), with the fast path and with the library.
func BenchmarkUnmarshal(b *testing.B) {
	type input struct {
		name string
		msg  *extprocv3.ProcessingRequest
	}
	inputs := []input{{"headers", headersMsg(fullDuplex, false, benchCases()[0].headers...)}}
	for _, sz := range agentbody.Sizes {
		inputs = append(inputs, input{"body_" + sz.Name, bodyMsg(string(agentBody(b, agentbody.OpenAIChat, sz.Size)), true)})
	}
	for _, in := range inputs {
		wire, err := proto.Marshal(in.msg)
		if err != nil {
			b.Fatal(err)
		}
		var frames mem.BufferSlice
		for rest := wire; len(rest) > 0; {
			n := min(len(rest), 16<<10)
			frames = append(frames, mem.SliceBuffer(rest[:n]))
			rest = rest[n:]
		}
		for _, impl := range []struct {
			name      string
			unmarshal func(mem.BufferSlice, *extprocv3.ProcessingRequest) error
		}{
			{"fast", func(d mem.BufferSlice, m *extprocv3.ProcessingRequest) error { return Codec{}.Unmarshal(d, m) }},
			{"library", func(d mem.BufferSlice, m *extprocv3.ProcessingRequest) error {
				buf := d.MaterializeToBuffer(mem.DefaultBufferPool())
				defer buf.Free()
				return proto.Unmarshal(buf.ReadOnlyData(), m)
			}},
		} {
			b.Run(in.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(wire)))
				b.ReportAllocs()
				for b.Loop() {
					if err := impl.unmarshal(frames, &extprocv3.ProcessingRequest{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
