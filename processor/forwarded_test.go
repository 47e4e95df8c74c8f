package processor

import (
	"slices"
	"testing"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"switchyard/envoy"
)

// only keeps the name/value pairs whose name is in names, as Envoy does
// with forward_rules.
func only(kv []string, names []string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		if slices.Contains(names, kv[i]) {
			out = append(out, kv[i], kv[i+1])
		}
	}
	return out
}

// TestForwardedHeadersCoverWhatTheProcessorReads drives the processor with
// every header and with only envoy.ForwardedHeaders: without hooks, each
// answer must be the same, so the forward rules drop nothing the processor
// reads.
func TestForwardedHeadersCoverWhatTheProcessorReads(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	noise := []string{"user-agent", "sdk/1", "x-request-id", "req-1", "accept", "*/*", "x-team", "a"}
	cases := []struct {
		name    string
		headers []string
		eos     bool
		body    string
	}{
		{"routed with a bearer key", post("/v1/chat/completions", bearer(keyTeamB)...), false, `{"model":"gpt-4o"}`},
		{"routed with x-api-key", post("/v1/messages", "x-api-key", keyTeamB), false, `{"model":"claude-sonnet"}`},
		{"routed with api-key and a path prefix", post("/v1/chat/completions?x=1", "api-key", keyTeamB), false, `{"model":"azure-gpt"}`},
		{"model the key may not use", post("/v1/chat/completions", bearer(keyTeamA)...), false, `{"model":"claude-x"}`},
		{"wrong key", post("/v1/chat/completions", bearer("nope")...), false, `{"model":"gpt-4o"}`},
		{"announced body over the limit", post("/v1/chat/completions", append(bearer(keyTeamB), "content-length", "999999")...), false, `{"model":"gpt-4o"}`},
		{"compressed body", post("/v1/chat/completions", append(bearer(keyTeamB), "content-encoding", "gzip")...), false, `{"model":"gpt-4o"}`},
		{"no body", post("/v1/chat/completions", bearer(keyTeamB)...), true, ""},
		{"wrong method", []string{":method", "GET", ":path", "/v1/chat/completions", "authorization", "Bearer " + keyTeamB}, false, `{}`},
		{"unknown path", post("/v1/nope", bearer(keyTeamB)...), false, `{}`},
		{"models list", []string{":method", "GET", ":path", "/v1/models", "authorization", "Bearer " + keyTeamA}, true, ""},
	}
	for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				all := append(slices.Clone(tc.headers), noise...)
				exchange := func(headers []string) any {
					msgs := []*extprocv3.ProcessingRequest{headersMsg(mode, tc.eos, headers...)}
					if !tc.eos {
						msgs = append(msgs, bodyMsg(tc.body, true))
					}
					return run(t, s, msgs...)
				}
				want := exchange(all)
				if diff := cmp.Diff(want, exchange(only(all, envoy.ForwardedHeaders)), protocmp.Transform()); diff != "" {
					t.Errorf("answer with only the forwarded headers differs (-all +forwarded):\n%s", diff)
				}
			})
		}
	}
}
