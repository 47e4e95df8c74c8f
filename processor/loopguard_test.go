package processor

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"switchyard/config"
	"switchyard/routing"
)

func mustFields(t testing.TB, body string) bodyFields {
	t.Helper()
	f, err := readBody([]byte(body))
	if err != nil {
		t.Fatalf("readBody(%s): %+v", body, err)
	}
	return f
}

func TestLoopGuardFingerprint(t *testing.T) {
	t.Parallel()
	g := newLoopGuard()
	fp := func(key, session string, api config.API, body string) uint64 {
		f := mustFields(t, body)
		return g.fingerprint(key, session, api, &f, []byte(body))
	}
	chat := func(model, first, last string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"` + first + `"},{"role":"user","content":"` + last + `"}]}`
	}
	tool := func(id, out string) string {
		return `{"model":"claude-x","max_tokens":9,"messages":[{"role":"user","content":"go"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":"` + out + `"}]}]}`
	}
	responses := func(out string) string {
		return `{"model":"gpt-5","input":[{"role":"user","content":"go"},{"type":"function_call_output","call_id":"c1","output":"` + out + `"}]}`
	}
	same := []struct {
		name string
		a, b uint64
	}{
		{"only the last chat message counts", fp("k", "s", config.APIOpenAI, chat("m", "a", "z")), fp("k", "s", config.APIOpenAI, chat("m", "b", "z"))},
		{"the same tool result", fp("k", "s", config.APIAnthropic, tool("t1", "exit 1")), fp("k", "s", config.APIAnthropic, tool("t1", "exit 1"))},
		// A model makes a new id for each call: a stuck tool loop repeats
		// all but the ids.
		{"the same tool result of another call", fp("k", "s", config.APIAnthropic, tool("toolu_01", "exit 1")), fp("k", "s", config.APIAnthropic, tool("toolu_02", "exit 1"))},
		{"the same chat tool message of another call", fp("k", "s", config.APIOpenAI, `{"model":"m","messages":[{"role":"tool","tool_call_id":"call_1","content":"exit 1"}]}`),
			fp("k", "s", config.APIOpenAI, `{"model":"m","messages":[{"role":"tool","tool_call_id":"call_2","content":"exit 1"}]}`)},
		{"the same Responses output of another call", fp("k", "", config.APIOpenAI, responses("x")), fp("k", "", config.APIOpenAI, strings.Replace(responses("x"), `"c1"`, `"c2"`, 1))},
		{"the same Responses tool output", fp("k", "", config.APIOpenAI, responses("x")), fp("k", "", config.APIOpenAI, `{"input":[{"role":"user","content":"other"},{"type":"function_call_output","call_id":"c1","output":"x"}],"model":"gpt-5"}`)},
		{"a trailing system reminder does not count", fp("k", "s", config.APIAnthropic, strings.Replace(tool("t1", "exit 1"), `}]}]}`, `}]},{"role":"system","content":"<total_tokens>900 tokens left"}]}`, 1)),
			fp("k", "s", config.APIAnthropic, strings.Replace(tool("t1", "exit 1"), `}]}]}`, `}]},{"role":"system","content":"<total_tokens>800 tokens left"}]}`, 1))},
		{"the same Responses input string", fp("k", "", config.APIOpenAI, `{"model":"m","input":"hi"}`), fp("k", "", config.APIOpenAI, `{"input":"hi","model":"m","stream":true}`)},
	}
	for _, tc := range same {
		if tc.a != tc.b {
			t.Errorf("%s: fingerprints differ", tc.name)
		}
	}
	base := fp("k", "s", config.APIOpenAI, chat("m", "a", "z"))
	differ := []struct {
		name string
		fp   uint64
	}{
		{"another last message", fp("k", "s", config.APIOpenAI, chat("m", "a", "y"))},
		{"another model", fp("k", "s", config.APIOpenAI, chat("m2", "a", "z"))},
		{"another session", fp("k", "s2", config.APIOpenAI, chat("m", "a", "z"))},
		{"another key", fp("k2", "s", config.APIOpenAI, chat("m", "a", "z"))},
		{"another API", fp("k", "s", config.APIAnthropic, chat("m", "a", "z"))},
	}
	for _, tc := range differ {
		if tc.fp == base {
			t.Errorf("%s: same fingerprint", tc.name)
		}
	}
	// Two calls with the same output are two requests; the same call
	// again, with other ids and another thought before it, is a repeat.
	bash := func(id, command, thought string) string {
		return `{"model":"claude-x","max_tokens":9,"messages":[{"role":"user","content":"set up"},{"role":"assistant","content":[` +
			`{"type":"thinking","thinking":"` + thought + `","signature":"s` + id + `"},` +
			`{"type":"tool_use","id":"` + id + `","name":"Bash","input":{"command":"` + command + `"}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":"(no output)"}]}]}`
	}
	if fp("k", "s", config.APIAnthropic, bash("t1", "mkdir src", "a")) == fp("k", "s", config.APIAnthropic, bash("t2", "git init", "a")) {
		t.Error("two commands with the same output have the same fingerprint")
	}
	if fp("k", "s", config.APIAnthropic, bash("t1", "mkdir src", "a")) != fp("k", "s", config.APIAnthropic, bash("t2", "mkdir src", "b")) {
		t.Error("the same command again, with another id and thought, has another fingerprint")
	}
	chatCall := func(id, args string) string {
		return `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"` + id + `","type":"function","function":{"name":"sh","arguments":"` + args + `"}}]},` +
			`{"role":"tool","tool_call_id":"` + id + `","content":"ok"}]}`
	}
	if fp("k", "s", config.APIOpenAI, chatCall("c1", "ls")) == fp("k", "s", config.APIOpenAI, chatCall("c1", "pwd")) ||
		fp("k", "s", config.APIOpenAI, chatCall("c1", "ls")) != fp("k", "s", config.APIOpenAI, chatCall("c2", "ls")) {
		t.Error("chat tool calls: another call is no repeat, the same call with another id is")
	}
	fnCall := func(id, args string) string {
		return `{"model":"gpt-5","input":[{"type":"function_call","call_id":"` + id + `","name":"sh","arguments":"` + args + `"},` +
			`{"type":"function_call_output","call_id":"` + id + `","output":"ok"}]}`
	}
	if fp("k", "", config.APIOpenAI, fnCall("c1", "ls")) == fp("k", "", config.APIOpenAI, fnCall("c1", "pwd")) ||
		fp("k", "", config.APIOpenAI, fnCall("c1", "ls")) != fp("k", "", config.APIOpenAI, fnCall("c2", "ls")) {
		t.Error("Responses function calls: another call is no repeat, the same call with another id is")
	}
	if fp("k", "s", config.APIAnthropic, tool("t1", "exit 1")) == fp("k", "s", config.APIAnthropic, tool("t1", "exit 2")) {
		t.Error("different tool results have the same fingerprint")
	}
	// An "id" inside a tool's text is text: only the keys' values are left out.
	toolText := func(text string) uint64 {
		return fp("k", "s", config.APIOpenAI, `{"model":"m","messages":[{"role":"tool","tool_call_id":"c1","content":"`+text+`"}]}`)
	}
	if toolText(`{\"id\": \"a\"}`) == toolText(`{\"id\": \"b\"}`) || toolText(`x\\`) == toolText(`y\\`) {
		t.Error("tool results differing in an id inside their text have the same fingerprint")
	}
	if fp("k", "", config.APIOpenAI, responses("x")) == fp("k", "", config.APIOpenAI, responses("y")) {
		t.Error("different Responses tool outputs have the same fingerprint")
	}
	if fp("k", "", config.APIOpenAI, `{"model":"e","prompt":"a"}`) == fp("k", "", config.APIOpenAI, `{"model":"e","prompt":"b"}`) {
		t.Error("bodies without a conversation are not told apart")
	}
}

func TestLoopGuardWindow(t *testing.T) {
	t.Parallel()
	g := newLoopGuard()
	policy := &config.LoopGuard{MaxRepeats: 3, Window: time.Minute}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if !g.allow(1, policy, true, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("request %d of 3 refused", i+1)
		}
	}
	if g.allow(1, policy, true, t0.Add(10*time.Second)) || g.allow(1, policy, true, t0.Add(59*time.Second)) {
		t.Fatal("a fourth identical request within the window passed")
	}
	if !g.allow(2, policy, true, t0.Add(30*time.Second)) {
		t.Fatal("another fingerprint was refused")
	}
	if !g.allow(1, policy, true, t0.Add(time.Minute)) {
		t.Fatal("the window expired but the request was refused")
	}
	if n := len(g.entries); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
	g.allow(3, policy, true, t0.Add(10*time.Minute)) // sweeps the expired
	if n := len(g.entries); n != 1 {
		t.Errorf("%d entries after the windows expired, want 1", n)
	}
}

const loopConfigYAML = `
providers:
  - {name: openai, url: "https://api.openai.com", schema: openai, auth: {type: bearer, key_env: OPENAI_API_KEY}}
  - {name: anthropic, url: "https://api.anthropic.com", schema: anthropic, auth: {type: header, header: x-api-key, key_env: ANTHROPIC_API_KEY}}
routes:
  - {model: gpt-4o, provider: openai}
  - {model: claude-x, provider: anthropic}
loop_guard: {max_repeats: 100}
client_keys:
  - name: team-a
    key_env: KEY_TEAM_A
    loop_guard: {max_repeats: 3, window: 60s}
  - name: team-b
    key_env: KEY_TEAM_B
`

// TestLoopGuardThroughProcessor: the fourth identical request of a key
// with max_repeats 3 gets 429 in the API's shape and is counted; a
// different last message, another session and a key with a laxer guard
// pass.
func TestLoopGuardThroughProcessor(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := compileRouter(t, loopConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: m})
	chat := `{"model":"gpt-4o","messages":[{"role":"user","content":"run the tests"}]}`
	send := func(headers []string, body string) bool {
		out := run(t, s, script(fullDuplex, headers, body)...)
		return len(out) == 1 && out[0].GetImmediateResponse() == nil || len(out) > 1
	}
	a := post("/v1/chat/completions", bearer(keyTeamA)...)
	for i := range 3 {
		if !send(a, chat) {
			t.Fatalf("identical request %d of 3 refused", i+1)
		}
	}
	checkError(t, run(t, s, script(fullDuplex, a, chat)...), wantErr{
		status: 429, api: config.APIOpenAI, typ: "rate_limit_error", code: "loop_detected",
		message: "an identical request (same model and last message) was repeated 3 times within 60s",
	})
	if !send(a, `{"model":"gpt-4o","messages":[{"role":"user","content":"run the tests"},{"role":"assistant","content":"ok"},{"role":"user","content":"now lint"}]}`) {
		t.Error("a request with another last message was refused")
	}
	if !send(append(a, "x-session-id", "other"), chat) {
		t.Error("the same request in another session was refused")
	}
	for range 5 {
		if !send(post("/v1/chat/completions", bearer(keyTeamB)...), chat) {
			t.Fatal("team-b, under the top-level max_repeats 100, was refused")
		}
	}
	msgs := `{"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"FAIL"}]}]}`
	ah := post("/v1/messages", "x-api-key", keyTeamA)
	for range 3 {
		send(ah, msgs)
	}
	checkError(t, run(t, s, script(fullDuplex, ah, msgs)...), wantErr{
		status: 429, api: config.APIAnthropic, typ: "rate_limit_error", code: "loop_detected", message: "repeated 3 times",
	})
	if got := testutil.ToFloat64(m.loopGuardVec.WithLabelValues("team-a")); got != 2 {
		t.Errorf("loop guard refusals for team-a = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(m.loopGuardVec); n != 1 {
		t.Errorf("%d loop guard series, want 1", n)
	}
}

// TestLoopGuardRetriesAreNoRepeats: an SDK's retries of an attempt that
// got no answer (x-stainless-retry-count 1 and up) are not counted as the
// agent repeating itself; once the guard refuses, a retry is refused too.
func TestLoopGuardRetriesAreNoRepeats(t *testing.T) {
	t.Parallel()
	r := compileRouter(t, loopConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(prometheus.NewRegistry())})
	chat := `{"model":"gpt-4o","messages":[{"role":"user","content":"run the tests"}]}`
	refused := func(headers []string) bool {
		out := run(t, s, script(fullDuplex, headers, chat)...)
		return len(out) == 1 && out[0].GetImmediateResponse() != nil
	}
	a := post("/v1/chat/completions", bearer(keyTeamA)...)
	retry := func(n int) []string { return append(slices.Clip(a), routing.RetryCountHeader, strconv.Itoa(n)) }
	// max_repeats 3: three requests pass, each retried twice.
	for i := range 3 {
		if refused(a) || refused(retry(1)) || refused(retry(2)) {
			t.Fatalf("request %d of 3, or a retry of it, refused", i+1)
		}
	}
	if !refused(a) || !refused(retry(1)) {
		t.Error("past max_repeats, a request or its retry passed")
	}
}

// TestLoopGuardOffByDefault: without loop_guard identical requests all pass.
func TestLoopGuardOffByDefault(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	for i := range 50 {
		out := run(t, s, script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamB)...), chatBody)...)
		if len(out) == 1 && out[0].GetImmediateResponse() != nil {
			t.Fatalf("request %d refused without a loop guard: %s", i+1, out[0].GetImmediateResponse().GetBody())
		}
	}
}

// FuzzLoopFingerprint reads the conversation of any body the gateway
// accepts without panicking, and fingerprints it the same way twice.
func FuzzLoopFingerprint(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user","content":"a"}]}`)
	f.Add(`{"model":"m","input":"a"}`)
	f.Add(`{"model":"m","input":[{"type":"function_call_output","output":"x"}],"messages":null}`)
	f.Add(`{"model":"m","messages":[]}`)
	f.Add(`{"model":"m","messages":{"a":1}}`)
	g := newLoopGuard()
	f.Fuzz(func(t *testing.T, body string) {
		fields, err := readBody([]byte(body))
		if err != nil {
			return
		}
		prev, last, ok := lastItems(&fields)
		if ok && (!strings.Contains(body, last) || !strings.Contains(body, prev)) {
			t.Fatalf("last items %q, %q are not in the body", prev, last)
		}
		a := g.fingerprint("k", "s", config.APIOpenAI, &fields, []byte(body))
		if b := g.fingerprint("k", "s", config.APIOpenAI, &fields, []byte(body)); a != b {
			t.Fatal("fingerprint is not stable")
		}
	})
}

// TestSessionMetricsExposition compares the exposition of the session,
// affinity, loop guard and key rest series after a few requests with
// testdata/metrics/sessions.golden: names, help, labels, bounded values.
func TestSessionMetricsExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := compileRouter(t, strings.Replace(loopConfigYAML, "routes:\n", "routes:\n  - {model: fast, targets: [{provider: openai}, {provider: openai, model: gpt-4o-mini}]}\n", 1))
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: m})
	a := post("/v1/chat/completions", bearer(keyTeamA)...)
	body := `{"model":"fast","messages":[{"role":"user","content":"x"}]}`
	for range 4 {
		run(t, s, script(fullDuplex, append(a, "x-session-id", "s1"), body)...)
	}
	run(t, s, script(fullDuplex, append(a, "session-id", "c1"), `{"model":"gpt-4o"}`)...)
	m.keyCooldowns.WithLabelValues("openai", "OPENAI_KEY_2").Inc()
	golden := filepath.Join("testdata", "metrics", "sessions.golden")
	names := []string{"switchyard_session_requests_total", "switchyard_sessions_seen_total", "switchyard_affinity_routed_total",
		"switchyard_loop_guard_refusals_total", "switchyard_key_cooldowns_total"}
	compareGolden(t, reg, golden, names)
}
