package processor

import (
	"context"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/routing"
)

// TestNullServer: the benchmark's floor routes every request to its
// cluster (on the headers when they come with the body or instead of it)
// and, in full-duplex mode, sends each body chunk back as it came.
func TestNullServer(t *testing.T) {
	t.Parallel()
	srv := &NullServer{Cluster: "mock"}
	routed := func(c *extprocv3.CommonResponse) bool {
		h := c.GetHeaderMutation().GetSetHeaders()
		return c.GetClearRouteCache() && len(h) == 1 && h[0].GetHeader().GetKey() == routing.ClusterHeader &&
			string(h[0].GetHeader().GetRawValue()) == "mock"
	}

	st := newFakeStream(context.Background(), headersMsg(fullDuplex, false, post("/v1/chat/completions")...),
		bodyMsg(`{"model":`, false), bodyMsg(`"x"}`, true), trailersMsg())
	if err := srv.Process(st); err != nil {
		t.Fatal(err)
	}
	if len(st.sent) != 4 || !routed(st.sent[0].GetRequestHeaders().GetResponse()) {
		t.Fatalf("full duplex: got %v, want the route on the headers answer, then three more", st.sent)
	}
	for i, want := range []string{`{"model":`, `"x"}`} {
		sr := st.sent[i+1].GetRequestBody().GetResponse().GetBodyMutation().GetStreamedResponse()
		if string(sr.GetBody()) != want || sr.GetEndOfStream() != (i == 1) {
			t.Errorf("chunk %d sent back as %q (end %v), want %q", i, sr.GetBody(), sr.GetEndOfStream(), want)
		}
	}

	st = newFakeStream(context.Background(), headersMsg(buffered, false, post("/v1/chat/completions")...), bodyMsg(`{}`, true))
	if err := srv.Process(st); err != nil {
		t.Fatal(err)
	}
	if len(st.sent) != 2 || st.sent[0].GetRequestHeaders().GetResponse() != nil || !routed(st.sent[1].GetRequestBody().GetResponse()) {
		t.Fatalf("buffered: got %v, want an empty headers answer and the route on the body's", st.sent)
	}

	st = newFakeStream(context.Background(), withSummary([]*extprocv3.ProcessingRequest{headersMsg(buffered, false, post("/v1/chat/completions")...)}, `{"model":"x"}`)...)
	if err := srv.Process(st); err != nil {
		t.Fatal(err)
	}
	if len(st.sent) != 1 || !routed(st.sent[0].GetRequestHeaders().GetResponse()) {
		t.Fatalf("body kept in Envoy: got %v, want the route on the headers answer", st.sent)
	}
}
