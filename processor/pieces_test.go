package processor

import (
	"strings"
	"testing"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/sjson"
	"google.golang.org/protobuf/testing/protocmp"

	"switchyard/loadtest/agentbody"
	"switchyard/routing"
)

// TestProcessBodiesInPieces: an agent-sized body arrives in many HTTP/2
// frames, is gathered into a pooled buffer and decided on; the buffer is
// cleared as soon as the answer is sent (poisonReleased). What was sent
// still carries the body, as the client sent it or rewritten, in both body
// modes, and the next request in the same buffer is decided on its own body.
func TestProcessBodiesInPieces(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(testConfigYAML, "max_body_bytes: 1024", "max_body_bytes: 4194304", 1)
	r := compileRouter(t, cfg)
	srv := New(Options{Router: func() *routing.Router { return r }})
	openai := []string{"authorization", "Bearer " + secretOpenAI}
	for _, tc := range []struct {
		name, model, key string
		want             func(body []byte) routed
	}{
		{"unchanged", "gpt-4o", keyTeamB, func(b []byte) routed {
			return routed{cluster: "openai", credential: openai, body: string(b)}
		}},
		{"rewritten", "fast", keyTeamA, func(b []byte) routed {
			out, err := sjson.SetBytes(b, "model", "llama3.2")
			if err != nil {
				t.Fatal(err)
			}
			return routed{cluster: "ollama", body: string(out), rewritten: true}
		}},
	} {
		body, err := agentbody.Generate(agentbody.Spec{API: agentbody.OpenAIChat, Model: tc.model, Size: 100 << 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
			for i := range 2 {
				got := run(t, srv, script(mode, post("/v1/chat/completions", bearer(tc.key)...), string(body))...)
				if diff := cmp.Diff(tc.want(body).want(mode), got, protocmp.Transform()); diff != "" {
					t.Errorf("%s %s request %d: (-want +got):\n%.2000s", tc.name, mode, i+1, diff)
				}
			}
		}
	}
}
