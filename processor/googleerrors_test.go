package processor

import (
	"context"
	"errors"
	"io"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/grpc/metadata"

	"switchyard/envoy"
)

func googleHeaders(status string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(status)},
			{Key: "content-type", RawValue: []byte("application/json; charset=UTF-8")}}}}}}
}

func googleBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: []byte(body), EndOfStream: true}}}
}

// TestGoogleErrorsSuccessPassesAtHeaders: a success is answered at its
// headers with nothing changed and no body asked for, and the stream ends.
func TestGoogleErrorsSuccessPassesAtHeaders(t *testing.T) {
	for _, status := range []string{"200", "304"} {
		var g googleErrorStream
		out := g.handle(context.Background(), googleHeaders(status))
		if len(out) != 1 || out[0].GetModeOverride() != nil || out[0].GetResponseHeaders().GetResponse() != nil || !g.done {
			t.Errorf("%s: %v, done %t; want an empty headers answer and the stream done", status, out, g.done)
		}
	}
}

// TestGoogleErrorsRewritten: an error asks for its body; Google's shape
// becomes Anthropic's with its status and Google's message, an HTML page
// a generic Anthropic error, and Claude's own error passes unchanged.
func TestGoogleErrorsRewritten(t *testing.T) {
	for _, tc := range []struct {
		status, body string
		wantStatus   string
		wantType     string
		wantMessage  string // "" : the body passes unchanged
	}{
		{"429", `{"error":{"code":429,"message":"Quota exceeded for aiplatform","status":"RESOURCE_EXHAUSTED"}}`, "429", "rate_limit_error", "Quota exceeded for aiplatform"},
		{"401", `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`, "401", "authentication_error", "Request had invalid authentication credentials."},
		{"403", `{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}`, "403", "permission_error", "Permission denied"},
		{"503", `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}`, "503", "overloaded_error", "The service is currently unavailable."},
		{"500", `{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}`, "500", "api_error", "Internal error encountered."},
		{"502", `<html><body>Bad Gateway</body></html>`, "502", "api_error", "upstream answered 502 bad gateway"},
		{"400", `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}`, "", "", ""},
	} {
		var g googleErrorStream
		out := g.handle(context.Background(), googleHeaders(tc.status))
		if len(out) != 1 || out[0].GetModeOverride().GetResponseBodyMode() != filterv3.ProcessingMode_BUFFERED || g.done {
			t.Fatalf("%s: headers answered %v; want the body asked for whole", tc.status, out)
		}
		out = g.handle(context.Background(), googleBody(tc.body))
		common := out[0].GetResponseBody().GetResponse()
		if !g.done {
			t.Errorf("%s: the stream is not done after the body", tc.status)
		}
		if tc.wantMessage == "" {
			if common.GetBodyMutation() != nil || common.GetHeaderMutation() != nil {
				t.Errorf("%s: Claude's own error was changed: %v", tc.status, common)
			}
			continue
		}
		body := common.GetBodyMutation().GetBody()
		set := setHeaders(common.GetHeaderMutation())
		if set[":status"] != tc.wantStatus || set["content-type"] != "application/json" || gjson.GetBytes(body, "type").String() != "error" ||
			gjson.GetBytes(body, "error.type").String() != tc.wantType || gjson.GetBytes(body, "error.message").String() != tc.wantMessage {
			t.Errorf("%s: %v %s; want %s %s %q", tc.status, set, body, tc.wantStatus, tc.wantType, tc.wantMessage)
		}
	}
}

// BenchmarkGoogleErrorsSuccess is what a success of Claude on Vertex pays
// extproc for the Google errors filter: its headers read and answered
// (the gRPC round trip itself aside).
func BenchmarkGoogleErrorsSuccess(b *testing.B) {
	msg := googleHeaders("200")
	b.ReportAllocs()
	for b.Loop() {
		var g googleErrorStream
		if out := g.handle(context.Background(), msg); len(out) != 1 {
			b.Fatal(out)
		}
	}
}

// BenchmarkGoogleErrorsStream is the whole of what a success of Claude on
// Vertex adds in extproc: one stream of the Google errors filter over
// real gRPC, its response headers answered, the stream ended by extproc.
func BenchmarkGoogleErrorsStream(b *testing.B) {
	client := startGRPC(b, newTestServer(b, nil))
	ctx := metadata.AppendToOutgoingContext(context.Background(), envoy.PhaseMetadataKey, envoy.PhaseGoogleErrors)
	msg := googleHeaders("200")
	b.ReportAllocs()
	for b.Loop() {
		stream, err := client.Process(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := stream.Send(msg); err != nil {
			b.Fatal(err)
		}
		if r, err := stream.Recv(); err != nil || r.GetResponseHeaders() == nil || r.GetModeOverride() != nil {
			b.Fatalf("headers answer %v, %v", r, err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			b.Fatalf("the stream did not end after a success: %v", err)
		}
	}
}
