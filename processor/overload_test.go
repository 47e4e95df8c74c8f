package processor

import (
	"testing"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	"switchyard/config"
)

// TestMaxInflight: a request arriving while MaxInflight others are being
// decided is refused at once with 429; below the cap requests pass.
func TestMaxInflight(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, nil)
	srv.opts.MaxInflight = 2
	headers := func(path string) []string {
		return []string{":method", "POST", ":path", path, "authorization", "Bearer " + keyTeamA}
	}

	srv.inflight.Store(1) // one other request in flight: this one is the second
	got := run(t, srv, headersMsg(filterv3.ProcessingMode_BUFFERED, false, headers("/v1/chat/completions")...))
	if len(got) != 1 || got[0].GetImmediateResponse() != nil {
		t.Fatalf("under the cap: got %v, want the headers answer", got)
	}

	srv.inflight.Store(2) // at the cap: this one is the third
	got = run(t, srv, headersMsg(filterv3.ProcessingMode_BUFFERED, false, headers("/v1/chat/completions")...))
	checkError(t, got, wantErr{429, config.APIOpenAI, "rate_limit_error", "gateway_overloaded", "too many requests"})
	got = run(t, srv, headersMsg(filterv3.ProcessingMode_BUFFERED, false, headers("/v1/messages")...))
	checkError(t, got, wantErr{429, config.APIAnthropic, "rate_limit_error", "gateway_overloaded", "too many requests"})
	if n := srv.inflight.Load(); n != 2 {
		t.Errorf("inflight %d after the refused streams ended, want the 2 others", n)
	}
}
