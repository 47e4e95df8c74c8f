package processor

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tidwall/gjson"
	"google.golang.org/grpc/metadata"

	"switchyard/config"
	"switchyard/envoy"
	"switchyard/routing"
)

// A counted request goes to its provider's usage cluster, a chat stream
// asks for its usage, and the response stream counts what the provider
// reported without answering Envoy (observability mode).
func TestUsageCountedOnResponseStream(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	r := compileRouter(t, testConfigYAML+"usage: {enabled: true}\n")
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: m})

	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	sent := run(t, s, script(fullDuplex, append(post("/v1/chat/completions", bearer(keyTeamB)...), "x-request-id", "req-1"), body)...)
	hm := sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation()
	if got := headerIn(hm, routing.ClusterHeader); got != routing.UsageClusterPrefix+"openai" {
		t.Errorf("cluster header %q, want the usage cluster", got)
	}
	if got := string(sent[1].GetRequestBody().GetResponse().GetBodyMutation().GetStreamedResponse().GetBody()); !strings.Contains(got, `"include_usage":true`) {
		t.Errorf("upstream body %s does not ask for usage", got)
	}

	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
	observed := func(msg *extprocv3.ProcessingRequest) *extprocv3.ProcessingRequest {
		msg.ObservabilityMode = true
		return msg
	}
	st := newFakeStream(ctx,
		observed(&extprocv3.ProcessingRequest{MetadataContext: flightMetadata(sentFlight(sent)), Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("text/event-stream")}}}}}}),
		observed(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
			Body: []byte("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_")}}}),
		observed(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
			Body: []byte("tokens\":12,\"completion_tokens\":7}}\n\ndata: [DONE]\n\n"), EndOfStream: true}}}),
	)
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	if len(st.sent) != 0 {
		t.Errorf("answered %d messages in observability mode", len(st.sent))
	}
	for typ, want := range map[string]float64{"input": 12, "output": 7} {
		if got := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "openai", "gpt-4o", typ)); got != want {
			t.Errorf("%s tokens = %v, want %v", typ, got, want)
		}
	}
	if n := s.flights.len(); n != 0 {
		t.Errorf("%d flights outlived the response stream", n)
	}
}

// A counted chat stream whose stream_options is an array cannot be asked
// for its usage: a 400 saying so, not the 500 it once got.
func TestUsageRefusesStreamOptionsArray(t *testing.T) {
	t.Parallel()
	r := compileRouter(t, testConfigYAML+"usage: {enabled: true}\n")
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(prometheus.NewRegistry())})
	body := `{"model":"gpt-4o","stream":true,"stream_options":[1],"messages":[{"role":"user","content":"hi"}]}`
	sent := run(t, s, script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamB)...), body)...)
	checkError(t, sent, wantErr{400, config.APIOpenAI, "invalid_request_error", "invalid_type", `"stream_options" must be an object`})
}

// Without usage on, nothing changes: the provider's own cluster, the body as sent.
func TestUsageOffChangesNothing(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	body := `{"model":"gpt-4o","stream":true,"messages":[]}`
	sent := run(t, s, script(fullDuplex, append(post("/v1/chat/completions", bearer(keyTeamB)...), "x-request-id", "req-2"), body)...)
	if got := headerIn(sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation(), routing.ClusterHeader); got != "openai" {
		t.Errorf("cluster header %q, want openai", got)
	}
	if got := string(sent[1].GetRequestBody().GetResponse().GetBodyMutation().GetStreamedResponse().GetBody()); got != body {
		t.Errorf("upstream body %s, want it unchanged", got)
	}
	if n := s.flights.len(); n != 0 || sentFlight(sent) != "" {
		t.Errorf("%d flights kept for a request nobody counts (id %q)", n, sentFlight(sent))
	}
}

func headerIn(hm *extprocv3.HeaderMutation, name string) string {
	for _, h := range hm.GetSetHeaders() {
		if h.GetHeader().GetKey() == name {
			return string(h.GetHeader().GetRawValue())
		}
	}
	return ""
}

// A translated answer is rewritten on the response stream: Content-Length
// goes, each chunk is answered with the client's bytes for it (a stream as
// it comes, a JSON answer whole at its end), and the tokens are counted.
func TestTranslatedResponseStream(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	s := New(Options{Router: func() *routing.Router { return compileRouter(t, testConfigYAML) }, Metrics: m})
	sent := run(t, s, script(fullDuplex, append(post("/v1/chat/completions", bearer(keyTeamB)...), "x-request-id", "req-t"),
		`{"model":"claude-sonnet","stream":true,"messages":[{"role":"user","content":"hi"}]}`)...)
	if got := headerIn(sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation(), routing.ClusterHeader); got != routing.TranslateClusterPrefix+"anthropic" {
		t.Fatalf("cluster header %q, want the translate cluster", got)
	}
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
	body := func(b string, eos bool) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
	}
	st := newFakeStream(ctx,
		&extprocv3.ProcessingRequest{MetadataContext: flightMetadata(sentFlight(sent)), Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("text/event-stream")}}}}}},
		body("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel", false),
		body("lo\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true),
	)
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	if len(st.sent) != 3 {
		t.Fatalf("sent %d answers, want one per message", len(st.sent))
	}
	if rm := st.sent[0].GetResponseHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders(); len(rm) != 1 || rm[0] != "content-length" {
		t.Errorf("response headers remove %v, want content-length", rm)
	}
	first := string(st.sent[1].GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	last := string(st.sent[2].GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	if !strings.Contains(first, `"object":"chat.completion.chunk"`) || strings.Contains(first, "Hel") {
		t.Errorf("first chunk's answer %q: want the role chunk, and no half event", first)
	}
	if !strings.Contains(last, `"content":"Hello"`) || !strings.HasSuffix(last, "data: [DONE]\n\n") {
		t.Errorf("last chunk's answer %q: want the text and [DONE]", last)
	}
	for typ, want := range map[string]float64{"input": 9, "output": 4} {
		if got := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "anthropic", "claude-sonnet", typ)); got != want {
			t.Errorf("%s tokens = %v, want %v", typ, got, want)
		}
	}
}

// TestAskForUsage checks the body a counted chat stream is sent with: the
// usage chunk asked for, every other field as it came.
func TestAskForUsage(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"}"}]} ` + "\n",
		`{"stream_options":{},"model":"m","stream":true}`,
		`{"stream_options":{"include_usage":false,"x":1},"model":"m","stream":true}`,
		`{"stream_options":null,"model":"m","stream":true}`,
	} {
		out, err := askForUsage([]byte(body))
		if err != nil || !gjson.ValidBytes(out) || gjson.GetBytes(out, "stream_options.include_usage").Type != gjson.True {
			t.Errorf("%s: %s, %v", body, out, err)
			continue
		}
		want, got := gjson.Parse(body).Map(), gjson.ParseBytes(out).Map()
		for k, v := range want {
			if k != "stream_options" && got[k].Raw != v.Raw {
				t.Errorf("%s: %s changed: %s", body, k, out)
			}
		}
		want["stream_options"] = gjson.Result{}
		if len(got) != len(want) {
			t.Errorf("%s: fields %s", body, out)
		}
	}
	if _, err := askForUsage([]byte(`{"model":"m","stream_options":[1]}`)); err == nil {
		t.Error("an array of stream_options was taken")
	}
}
