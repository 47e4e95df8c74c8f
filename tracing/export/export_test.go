package export

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Setup exports over OTLP/HTTP by default, where OTEL_EXPORTER_OTLP_ENDPOINT
// says, as the service OTEL_SERVICE_NAME names. Not parallel: it sets the
// environment.
func TestSetupExportsWhereTheEnvironmentSays(t *testing.T) {
	got := make(chan *coltracepb.ExportTraceServiceRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
			t.Errorf("%s %s: not an OTLP trace export", r.Method, r.URL.Path)
		}
		got <- req
	}))
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	t.Setenv("OTEL_SERVICE_NAME", "gw-test")

	tr, shutdown, err := Setup(t.Context(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start("", "", time.Now()).Local(200, time.Now())
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	req := <-got
	rs := req.GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
		t.Fatalf("exported %v, want one span", req)
	}
	for _, kv := range rs[0].GetResource().GetAttributes() {
		if kv.GetKey() == "service.name" && kv.GetValue().GetStringValue() != "gw-test" {
			t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", kv.GetValue().GetStringValue())
		}
	}
}

func TestSetupRefusesAnUnknownProtocol(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, _, err := Setup(t.Context(), false, nil); err == nil {
		t.Fatal("Setup accepted http/json")
	}
}
