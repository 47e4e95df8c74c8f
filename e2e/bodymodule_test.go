package e2e

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"switchyard/internal/testkit"
)

// bodyModuleLib builds Envoy's body module once, for the tests that load it.
var bodyModuleLib = sync.OnceValues(func() (string, error) { return testkit.BuildBodyModule(binDir) })

// TestBodyModule: with Envoy's body module a big body stays in Envoy,
// which summarizes it, and extproc routes it from its headers and the
// summary: the upstream gets the client's exact body. A big body whose plan
// changes it (a model rewrite) or that the gateway refuses is sent to
// extproc after all, and planned or refused as without the module; small
// and chunked bodies go full duplex as before, and a body over the limit
// is refused in the API's shape.
func TestBodyModule(t *testing.T) {
	t.Parallel()
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	s := startStandard(t, gatewayOptions{bodyMode: "BY_SIZE", envoyConfigArgs: []string{"-body-module", lib}})
	for _, tc := range []bodyCase{
		{"small, unchanged", agentBody("gpt-exact", 900), "gpt-exact", "full_duplex", false},
		{"big, unchanged", agentBody("gpt-exact", 50000), "gpt-exact", "summarized", false},
		{"big, session key in the body", strings.Replace(agentBody("gpt-exact", 50000), `{`, `{"metadata":{"user_id":"u-1"},`, 1), "gpt-exact", "summarized", false},
		{"big, in Japanese", japanese(agentBody("gpt-exact", 40000)), "gpt-exact", "summarized", false},
		{"big, model rewritten", agentBody("renamed", 50000), "upstream-model-with-a-much-longer-name", "buffered", false},
		{"big, chunked", agentBody("renamed", 50000), "upstream-model-with-a-much-longer-name", "full_duplex", true},
	} {
		tc.check(t, s.gw)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"big, not JSON", agentBody("gpt-exact", 50000)[1:], 400, "invalid_json"},
		{"big, a character cut short in Japanese", strings.Replace(japanese(agentBody("gpt-exact", 40000)), "出力", "出\xe5\x8a", 1), 400, "invalid_json"},
		{"big, model twice", strings.Replace(agentBody("gpt-exact", 50000), `{`, `{"model":"other",`, 1), 400, "duplicate_model"},
		{"big, unknown model", agentBody("no-such-model", 50000), 404, "model_not_found"},
		{"over the limit", agentBody("gpt-exact", 70000), 413, "request_too_large"},
	} {
		r := postBody(t, s.gw, tc.body, false)
		if e, _ := r.json(t)["error"].(map[string]any); r.status != tc.status || e["code"] != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
}

// japanese writes agentBody's tool output in Japanese: three bytes of
// UTF-8 a character, which the module's scan checks a block at a time.
func japanese(body string) string {
	return strings.ReplaceAll(body, "tool output line.", "ツールの出力。")
}

// TestBodyModuleHandoff: a body summarized on the Envoy thread that holds
// it and one handed to the module's summarizer (hooks.c) get the same
// summary, body after body; SWITCHYARD_BODY_HANDOFF forces each way, and by
// default a thread's first body is handed over and the next ones, back to
// back, are not.
func TestBodyModuleHandoff(t *testing.T) {
	t.Parallel()
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	for _, handoff := range []string{"always", "never", ""} {
		t.Run("handoff="+handoff, func(t *testing.T) {
			t.Parallel()
			s := startStandard(t, gatewayOptions{bodyMode: "BY_SIZE", envoyConfigArgs: []string{"-body-module", lib},
				extraEnv: []string{"SWITCHYARD_BODY_HANDOFF=" + handoff}})
			body := agentBody("gpt-exact", 50000)
			for i := range 10 {
				tc := bodyCase{"big body " + strconv.Itoa(i), strings.Replace(body, "tool", "tool "+strconv.Itoa(i), 1), "gpt-exact", "summarized", false}
				tc.check(t, s.gw)
			}
		})
	}
}
