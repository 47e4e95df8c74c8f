package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"switchyard/internal/testkit"
	"switchyard/routing"
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
	testBodyModule(t, false)
}

// TestBodyModuleCheck: TestBodyModule with the check trip, where a big
// body the plan sends on as it came is decided by a check over HTTP/1.1
// and opens no ext_proc stream; the others go on to ext_proc as before.
func TestBodyModuleCheck(t *testing.T) {
	t.Parallel()
	s := testBodyModule(t, true)
	checks, streams := envoyStat(t, s.gw, "cluster.switchyard_check.upstream_rq_total"), envoyStat(t, s.gw, "cluster.switchyard_extproc.upstream_rq_total")
	upstreamSaw(t, postBody(t, s.gw, agentBody("gpt-exact", 50000), false))
	if c, st := envoyStat(t, s.gw, "cluster.switchyard_check.upstream_rq_total"), envoyStat(t, s.gw, "cluster.switchyard_extproc.upstream_rq_total"); c != checks+1 || st != streams {
		t.Errorf("a big unchanged body: checks %d -> %d, ext_proc streams %d -> %d; want one check and no stream", checks, c, streams, st)
	}
	upstreamSaw(t, postBody(t, s.gw, agentBody("renamed", 50000), false))
	if c, st := envoyStat(t, s.gw, "cluster.switchyard_check.upstream_rq_total"), envoyStat(t, s.gw, "cluster.switchyard_extproc.upstream_rq_total"); c != checks+2 || st != streams+1 {
		t.Errorf("a big body rewritten: checks %d -> %d, ext_proc streams %d -> %d; want a check, then a stream", checks+1, c, streams, st)
	}
	// Refused by the check itself, in the called API's shape.
	req, err := http.NewRequest("POST", s.gw.url+"/v1/messages", strings.NewReader(agentBody("claude-x", 50000)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", "not-a-key")
	r, err := roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := r.json(t)["error"].(map[string]any); r.status != 401 || r.json(t)["type"] != "error" || e["type"] != "authentication_error" {
		t.Errorf("a big body with a wrong key: %d %s, want 401 in Anthropic's shape", r.status, r.body)
	}
	if c, st := envoyStat(t, s.gw, "cluster.switchyard_check.upstream_rq_total"), envoyStat(t, s.gw, "cluster.switchyard_extproc.upstream_rq_total"); c != checks+3 || st != streams+1 {
		t.Errorf("a big body with a wrong key: checks %d, ext_proc streams %d; want %d and %d", c, st, checks+3, streams+1)
	}
}

func testBodyModule(t *testing.T, check bool) standard {
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	s := startStandard(t, gatewayOptions{bodyMode: "BY_SIZE", envoyConfigArgs: []string{"-body-module", lib}, check: check})
	for _, tc := range []bodyCase{
		{"small, unchanged", agentBody("gpt-exact", 900), "gpt-exact", "full_duplex", false},
		{"big, unchanged", agentBody("gpt-exact", 50000), "gpt-exact", "summarized", false},
		{"big, session key in the body", strings.Replace(agentBody("gpt-exact", 50000), `{`, `{"metadata":{"user_id":"u-1"},`, 1), "gpt-exact", "summarized", false},
		{"big, session key over lines", strings.Replace(agentBody("gpt-exact", 50000), `{`, "{\r\n\"metadata\": {\n  \"user_id\": \"u-1\"\n},\n", 1), "gpt-exact", "summarized", false},
		{"big, a DEL in the session key", strings.Replace(agentBody("gpt-exact", 50000), `{`, "{\"metadata\":{\"user_id\":\"u\x7f1\"},", 1), "gpt-exact", "summarized", false},
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
		{"big, model in another case", strings.Replace(agentBody("gpt-exact", 50000), `{`, `{"Model":"other",`, 1), 400, "ambiguous_key"},
		{"big, include_usage twice", strings.Replace(agentBody("gpt-exact", 50000), `{`, `{"stream_options":{"include_usage":true,"include_usage":false},`, 1), 400, "ambiguous_key"},
		{"big, unknown model", agentBody("no-such-model", 50000), 404, "model_not_found"},
		{"over the limit", agentBody("gpt-exact", 70000), 413, "request_too_large"},
	} {
		r := postBody(t, s.gw, tc.body, false)
		if e, _ := r.json(t)["error"].(map[string]any); r.status != tc.status || e["code"] != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	return s
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

// TestBodyModuleWithHooks: on_request hooks that never read the body run on
// a big body Envoy kept, from its headers and summary: their header reaches
// the upstream with the client's exact body, their refusal the client, and
// on_response still runs. A hook that reads the body, even by a name built
// at run time, gets it: the body is sent to extproc for it, unless an
// earlier hook refused the request.
func TestBodyModuleWithHooks(t *testing.T) {
	t.Parallel()
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	headersHook := `
function on_request(req)
  if req:header("x-block") then return req:reject(429, "blocked for " .. req.model) end
  req:set_header("x-hook-saw-model", req.model)
end
function on_response(res) res:set_header("x-hook-status", tostring(res.status)) end
`
	hiddenBodyHook := `
function on_request(req)
  local field = "bo" .. "dy"
  req:set_header("x-hook-saw-length", tostring(#req[field]:raw()))
end
`
	for _, tc := range []struct {
		name    string
		scripts map[string]string
		mode    string
	}{
		{"headers only", map[string]string{"10-headers.lua": headersHook}, "summarized"},
		{"one reads the body", map[string]string{"10-headers.lua": headersHook, "20-body.lua": hiddenBodyHook}, "buffered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := startUpstream(t, "A"), startUpstream(t, "B")
			dir := t.TempDir()
			for name, code := range tc.scripts {
				writeFile(t, filepath.Join(dir, name), code)
			}
			gw := startGateway(t, hooksConfig(a, b, dir, "fail_closed"), gatewayOptions{
				bodyMode: "BY_SIZE", envoyConfigArgs: []string{"-body-module", lib}, extraEnv: testEnv})
			count := func(mode string) float64 {
				v, _ := metricValue(gw.metrics(t), `switchyard_request_body_mode_total{mode="`+mode+`"}`)
				return v
			}
			body := agentBody("gpt-exact", 50000)
			before := count(tc.mode)
			r := gw.do(t, "POST", "/v1/chat/completions", nil, body)
			got := upstreamSaw(t, r)
			if got.Body != body || got.Headers["x-hook-saw-model"] != "gpt-exact" || r.header.Get("x-hook-status") != "200" {
				t.Errorf("upstream got %d bytes (client sent %d), x-hook-saw-model %q; client got x-hook-status %q",
					got.BodyLen, len(body), got.Headers["x-hook-saw-model"], r.header.Get("x-hook-status"))
			}
			if _, reads := tc.scripts["20-body.lua"]; reads && got.Headers["x-hook-saw-length"] != strconv.Itoa(len(body)) {
				t.Errorf("the hook reading the body saw %q bytes, want %d", got.Headers["x-hook-saw-length"], len(body))
			}
			if after := count(tc.mode); after != before+1 {
				t.Errorf("%s requests %v -> %v, want one more", tc.mode, before, after)
			}
			// The refusal comes before any hook reads the body: it is
			// decided from the summary, the body left in Envoy.
			before = count("summarized")
			r = gw.do(t, "POST", "/v1/chat/completions", map[string]string{"x-block": "1"}, body)
			if r.status != 429 || !strings.Contains(string(r.body), "blocked for gpt-exact") {
				t.Errorf("refused by the hook: %d %s", r.status, r.body)
			}
			if after := count("summarized"); after != before+1 {
				t.Errorf("summarized requests %v -> %v after the refusal, want one more", before, after)
			}
			if m := gw.metrics(t); strings.Contains(m, "switchyard_hooks_errors_total{") {
				t.Errorf("hook errors counted:\n%s", grep(m, "switchyard_hooks_errors_total"))
			}
		})
	}
}

// TestBodiesPastOneMiB: a body is refused for its size only past
// max_body_bytes, however it reaches the decision: a 3 MiB conversation
// under a 4 MiB limit reaches the provider whole, in every body mode, with
// the module and without; one byte over the limit is refused in the API's
// shape.
func TestBodiesPastOneMiB(t *testing.T) {
	t.Parallel()
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	const limit = 4 << 20
	for _, tc := range []struct {
		name string
		opts gatewayOptions
	}{
		{"by size with the module", gatewayOptions{bodyMode: "BY_SIZE", envoyConfigArgs: []string{"-body-module", lib}}},
		{"by size", gatewayOptions{bodyMode: "BY_SIZE"}},
		{"buffered", gatewayOptions{bodyMode: "BUFFERED"}},
		{"full duplex", gatewayOptions{bodyMode: "FULL_DUPLEX_STREAMED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := startUpstream(t, "A")
			tc.opts.extraEnv = testEnv
			gw := startGateway(t, bigBodyConfig(a, limit), tc.opts)
			body := agentBody("gpt-exact", 3<<20)
			if got := upstreamSaw(t, gw.do(t, "POST", "/v1/chat/completions", nil, body)); got.Body != body {
				t.Errorf("the provider got %d bytes of the client's %d", got.BodyLen, len(body))
			}
			over := agentBody("gpt-exact", limit)
			over = over[:len(over)-(len(over)-limit-1)] // limit + 1 bytes, cut: refused for its size first
			r := gw.do(t, "POST", "/v1/chat/completions", nil, over)
			if e, _ := r.json(t)["error"].(map[string]any); r.status != 413 || e["code"] != "request_too_large" {
				t.Errorf("a body of %d bytes over a limit of %d: %d %.200s", len(over), limit, r.status, r.body)
			}
		})
	}
}

// startModuleGateway starts a gateway as bigBodyConfig configures it, to a
// new upstream, with big bodies kept in Envoy by the body module (BY_SIZE)
// and Envoy's config rendered with envoyArgs too.
func startModuleGateway(t *testing.T, maxBody int, envoyArgs ...string) *gateway {
	t.Helper()
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	a := startUpstream(t, "A")
	return startGateway(t, bigBodyConfig(a, maxBody), gatewayOptions{bodyMode: "BY_SIZE", extraEnv: testEnv,
		envoyConfigArgs: append([]string{"-body-module", lib}, envoyArgs...)})
}

// bigBodyConfig routes gpt-exact to a, with a body limit of maxBody bytes.
func bigBodyConfig(a *fakeUpstream, maxBody int) string {
	return fmt.Sprintf(`max_body_bytes: %d
providers:
  - name: alpha
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_env: SWY_TEST_ALPHA_KEY}
routes:
  - model: gpt-exact
    provider: alpha
`, maxBody, a.port())
}

// TestCheckWithTheRest: the check trip beside what a check does not
// decide alone. A checked request's answer is counted (the response
// stream finds its flight by the id Envoy kept from the check); a request
// with fallbacks, sent on to ext_proc, reaches the provider without the
// trip header; a request sent on is admitted once against its key's
// requests per minute.
func TestCheckWithTheRest(t *testing.T) {
	t.Parallel()
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	opts := gatewayOptions{bodyMode: "BY_SIZE", envoyConfigArgs: []string{"-body-module", lib}, check: true}
	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		mock := startMock(t)
		gw := startGateway(t, exampleConfig(t, mock.URL)+"\nusage: {enabled: true}\n", opts)
		series := `switchyard_tokens_total{key="",model="mock-*",provider="mock",type="input"}`
		before, _ := metricValue(gw.metrics(t), series)
		checks := envoyStat(t, gw, "cluster.switchyard_check.upstream_rq_total")
		r := gw.do(t, "POST", "/v1/chat/completions", nil, agentBody("mock-gpt", 50000))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if c := envoyStat(t, gw, "cluster.switchyard_check.upstream_rq_total"); c != checks+1 {
			t.Fatalf("checks %d -> %d, want one", checks, c)
		}
		waitMetric(t, gw, series, before+reportedUsage(t, r.body)["input"])
	})
	t.Run("fallbacks and limits", func(t *testing.T) {
		t.Parallel()
		a, b := startUpstream(t, "A"), startUpstream(t, "B")
		const keyC = "sk-client-c-0123456789"
		config := standardConfig(a, b, "  - model: fb\n    provider: alpha\n    fallbacks: [{provider: alpha, model: gpt-exact}]\n") +
			"  - name: team-c\n    key_env: SWY_TEST_CLIENT_C\n    limits: {requests_per_minute: 1}\n"
		o := opts
		o.extraEnv = append(slices.Clone(testEnv), "SWY_TEST_CLIENT_C="+keyC)
		gw := startGateway(t, config, o)
		got := upstreamSaw(t, postBody(t, gw, agentBody("fb", 50000), false))
		for k := range got.Headers {
			if strings.EqualFold(k, routing.TripHeader) {
				t.Errorf("the provider got %s", k)
			}
		}
		post := func() result {
			return gw.do(t, "POST", "/v1/chat/completions", map[string]string{"authorization": "Bearer " + keyC}, agentBody("renamed", 50000))
		}
		if r := post(); r.status != 200 {
			t.Errorf("the first request sent on to ext_proc: %d %s, want 200", r.status, r.body)
		}
		if r := post(); r.status != 429 {
			t.Errorf("the second request in the minute: %d, want 429", r.status)
		}
	})
}
