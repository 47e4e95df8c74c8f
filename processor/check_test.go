package processor

import (
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/routing"
)

// TestCheckable: a check carries a plan only when Envoy takes all of it
// from a check's answer.
func TestCheckable(t *testing.T) {
	plan := func(path string, set ...string) *Plan {
		a := Attempt{Path: path, RemoveHeaders: []string{"authorization"}}
		for _, h := range set {
			a.SetHeaders = append(a.SetHeaders, routing.Header{Name: h, Value: "v"})
		}
		return &Plan{Attempts: []Attempt{a}}
	}
	for _, tc := range []struct {
		name string
		p    *Plan
		want bool
	}{
		{"routing header and key", plan("/v1/chat/completions", routing.ClusterHeader, "authorization", "x-api-key"), true},
		{"anthropic headers", plan("/v1/messages", routing.ClusterHeader, routing.VersionHeader, routing.BetaHeader), true},
		{"another path", plan("/openai/v1/chat/completions", routing.ClusterHeader), false},
		{"a hook's header without x-", plan("/v1/chat/completions", routing.ClusterHeader, "openai-organization"), false},
		{"the host", plan("/v1/chat/completions", routing.ClusterHeader, ":authority"), false},
	} {
		path := "/v1/chat/completions"
		if tc.name == "anthropic headers" {
			path = "/v1/messages"
		}
		if got := checkable(tc.p, path); got != tc.want {
			t.Errorf("%s: checkable %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestWriteCheck: a decision becomes 200 with its headers, removals and
// id; a refusal stays as it is; what a check cannot say (asking for the
// body, a 5xx, a 200 answer) becomes the trip header.
func TestWriteCheck(t *testing.T) {
	decision := &extprocv3.ProcessingResponse{
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{routing.RequestNamespace: namespace("id", structpb.NewStringValue("f-1"))}},
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader(routing.ClusterHeader, "openai")},
				RemoveHeaders: []string{"authorization", "api-key"}},
		}}},
	}
	w := httptest.NewRecorder()
	writeCheck(w, decision)
	if h := w.Header(); w.Code != 200 || h.Get(routing.ClusterHeader) != "openai" || h.Get("x-envoy-auth-headers-to-remove") != "authorization,api-key" ||
		h.Get(routing.CheckFlightHeader) != "f-1" || h.Get(routing.TripHeader) != "" {
		t.Errorf("decision: %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	writeCheck(w, immediate(401, []byte(`{"error":{}}`), "switchyard_invalid_key", routing.Header{Name: "retry-after", Value: "1"}))
	if w.Code != 401 || w.Body.String() != `{"error":{}}` || w.Header().Get("content-type") != "application/json" || w.Header().Get("retry-after") != "1" {
		t.Errorf("refusal: %d %v %s", w.Code, w.Header(), w.Body)
	}
	for name, resp := range map[string]*extprocv3.ProcessingResponse{
		"body asked for": {Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
			ModeOverride: &filterv3.ProcessingMode{RequestBodyMode: filterv3.ProcessingMode_BUFFERED}},
		"a 503":        immediate(503, []byte(`{}`), "switchyard_x"),
		"a 200 answer": immediate(200, []byte(`{}`), "switchyard_estimate"),
	} {
		w = httptest.NewRecorder()
		writeCheck(w, resp)
		if w.Code != 200 || w.Header().Get(routing.TripHeader) == "" || w.Header().Get(routing.ClusterHeader) != "" || w.Body.Len() != 0 {
			t.Errorf("%s: %d %v %s, want 200 with the trip header alone", name, w.Code, w.Header(), w.Body)
		}
	}
}
