package processor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"switchyard/envoy"
	"switchyard/internal/testkit"
	"switchyard/luahooks"
	"switchyard/routing"
)

func TestSessionKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		headers     sessionHeaders
		body        string
		key, source string
	}{
		{"none", sessionHeaders{}, `{"model":"m"}`, "", ""},
		{"explicit header first", sessionHeaders{explicit: "s1", claude: "c1", codex: "x1"}, `{"model":"m","metadata":{"user_id":"u"}}`, "s1", sessionFromHeader},
		{"claude code header", sessionHeaders{claude: "c1", codex: "x1"}, `{"model":"m","metadata":{"user_id":"u"}}`, "c1", sessionFromClaude},
		{"metadata.user_id before the codex header", sessionHeaders{codex: "x1"}, `{"model":"m","metadata":{"user_id":"user_1_account__session_2"}}`, "user_1_account__session_2", sessionFromClaude},
		{"codex header", sessionHeaders{codex: "x1"}, `{"model":"m","prompt_cache_key":"p"}`, "x1", sessionFromCodex},
		{"prompt_cache_key", sessionHeaders{}, `{"model":"m","prompt_cache_key":"p\u00e9"}`, "pé", sessionFromCodex},
		{"user_id not a string", sessionHeaders{}, `{"model":"m","metadata":{"user_id":7}}`, "", ""},
		{"metadata not an object", sessionHeaders{}, `{"model":"m","metadata":"user_id"}`, "", ""},
		{"empty prompt_cache_key", sessionHeaders{}, `{"model":"m","prompt_cache_key":""}`, "", ""},
		{"nested prompt_cache_key is not read", sessionHeaders{}, `{"model":"m","x":{"prompt_cache_key":"p"}}`, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := readBody([]byte(tc.body))
			if err != nil {
				t.Fatalf("readBody: %+v", err)
			}
			key, source := sessionKey(tc.headers, &f)
			if key != tc.key || source != tc.source {
				t.Errorf("sessionKey = %q from %q, want %q from %q", key, source, tc.key, tc.source)
			}
		})
	}
}

// FuzzSessionKey checks the derivation's order on any headers and body: it
// never panics, a header wins over the body, and a key from the body is a
// string the body holds.
func FuzzSessionKey(f *testing.F) {
	f.Add("", "", "", `{"model":"m","metadata":{"user_id":"u"}}`)
	f.Add("s", "", "", `{"model":"m"}`)
	f.Add("", "c", "x", `{"model":"m","prompt_cache_key":"p"}`)
	f.Add("", "", "x", `{"model":"m","metadata":{"user_id":"\ud83d\ude00"},"prompt_cache_key":1}`)
	f.Fuzz(func(t *testing.T, explicit, claude, codex, body string) {
		fields, err := readBody([]byte(body))
		if err != nil {
			return
		}
		h := sessionHeaders{explicit: explicit, claude: claude, codex: codex}
		key, source := sessionKey(h, &fields)
		switch {
		case explicit != "":
			if key != explicit || source != sessionFromHeader {
				t.Fatalf("with x-session-id %q got %q from %q", explicit, key, source)
			}
		case claude != "":
			if key != claude || source != sessionFromClaude {
				t.Fatalf("with the Claude Code header %q got %q from %q", claude, key, source)
			}
		case key == "":
			if source != "" {
				t.Fatalf("no key but source %q", source)
			}
			if codex != "" {
				t.Fatalf("the Codex header %q was not used", codex)
			}
		case key == codex:
		default:
			if !utf8.ValidString(key) {
				t.Fatalf("key %q from the body is not UTF-8", key)
			}
			if source != sessionFromClaude && source != sessionFromCodex {
				t.Fatalf("key %q from the body has source %q", key, source)
			}
		}
		if (key == "") != (source == "") {
			t.Fatalf("key %q with source %q", key, source)
		}
	})
}

const sessionConfigYAML = `
providers:
  - {name: big, url: "http://big.example", schema: openai}
  - {name: small, url: "http://small.example", schema: openai}
  - {name: claude, url: "http://claude.example", schema: anthropic}
routes:
  - model: fast
    targets:
      - {provider: big, weight: 3}
      - {provider: small, weight: 1}
  - model: claude-x
    provider: claude
`

// clusterOf returns the routing header the processor set, or "" when it
// answered with an error.
func clusterOf(t testing.TB, out []*extprocv3.ProcessingResponse) string {
	t.Helper()
	for _, r := range out {
		if ir := r.GetImmediateResponse(); ir != nil {
			t.Fatalf("answered %d: %s", ir.GetStatus().GetCode(), ir.GetBody())
		}
		var common *extprocv3.CommonResponse
		if h := r.GetRequestHeaders(); h != nil {
			common = h.GetResponse()
		} else if b := r.GetRequestBody(); b != nil {
			common = b.GetResponse()
		}
		for _, h := range common.GetHeaderMutation().GetSetHeaders() {
			if h.GetHeader().GetKey() == routing.ClusterHeader {
				return string(h.GetHeader().GetRawValue())
			}
		}
	}
	return ""
}

// TestSessionAffinityThroughProcessor sends 200 requests of one session
// over a 3:1 alias with only the headers Envoy forwards: all go to one
// target, and the metrics count them; requests without a session still
// spread by weight.
func TestSessionAffinityThroughProcessor(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := compileRouter(t, sessionConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: m})
	send := func(headers []string, body string) string {
		hs := only(append(post("/v1/chat/completions"), headers...), envoy.ForwardedHeaders)
		return clusterOf(t, run(t, s, script(fullDuplex, hs, body)...))
	}
	for _, tc := range []struct {
		name    string
		headers []string
		body    string
	}{
		{"x-session-id", []string{"x-session-id", "sess-7", "user-agent", "curl"}, `{"model":"fast"}`},
		{"codex session-id", []string{"session-id", "0194e0b2-7a53-7c1d-9d61-4b1f0c2d9e77"}, `{"model":"fast"}`},
		{"prompt_cache_key", nil, `{"model":"fast","prompt_cache_key":"pck-1"}`},
	} {
		first := send(tc.headers, tc.body)
		for range 199 {
			if got := send(tc.headers, tc.body); got != first {
				t.Fatalf("%s: a request of the session went to %s, the first to %s", tc.name, got, first)
			}
		}
	}
	seen := map[string]int{}
	for range 200 {
		seen[send(nil, `{"model":"fast"}`)]++
	}
	if seen["big"] == 0 || seen["small"] == 0 {
		t.Errorf("200 requests without a session went to %v, want both targets", seen)
	}
	for src, want := range map[string]float64{sessionFromHeader: 200, sessionFromCodex: 400, sessionFromClaude: 0} {
		if got := testutil.ToFloat64(m.sessions[src]); got != want {
			t.Errorf("session requests from %s = %v, want %v", src, got, want)
		}
	}
	if got := testutil.ToFloat64(m.affinity); got != 600 {
		t.Errorf("affinity-routed requests = %v, want 600", got)
	}
	if got := testutil.ToFloat64(m.sessionsSeen); got != 3 {
		t.Errorf("sessions seen = %v after 600 requests of 3 sessions, want 3", got)
	}
	// A session on a route with one target is counted, but not as affinity.
	send2 := func() {
		hs := only(post("/v1/messages", "x-claude-code-session-id", "cc-1"), envoy.ForwardedHeaders)
		if got := clusterOf(t, run(t, s, script(fullDuplex, hs, `{"model":"claude-x"}`)...)); got != "claude" {
			t.Fatalf("claude-x went to %q", got)
		}
	}
	send2()
	if got := testutil.ToFloat64(m.sessions[sessionFromClaude]); got != 1 {
		t.Errorf("session requests from claude_code = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.affinity); got != 600 {
		t.Errorf("affinity-routed requests = %v after a one-target route, want 600", got)
	}
}

// TestSessionSplitThroughProcessor: 1,000 sessions over a 3:1 alias split
// close to 3:1.
func TestSessionSplitThroughProcessor(t *testing.T) {
	t.Parallel()
	r := compileRouter(t, sessionConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }})
	seen := map[string]int{}
	for i := range 1000 {
		hs := post("/v1/chat/completions", "x-session-id", fmt.Sprintf("session-%d", i))
		seen[clusterOf(t, run(t, s, script(fullDuplex, hs, `{"model":"fast"}`)...))]++
	}
	if seen["big"] < 690 || seen["big"] > 810 || seen["big"]+seen["small"] != 1000 {
		t.Errorf("1000 sessions split %v, want close to big:750 small:250", seen)
	}
}

func TestSessionLogIDHidesTheKey(t *testing.T) {
	t.Parallel()
	const key = "user_abc123_account_secretish__session_0194e0b2"
	id := sessionLogID(key)
	if len(id) != 16 || strings.Contains(key, id) || strings.Contains(id, "abc123") {
		t.Errorf("sessionLogID(%q) = %q, want 16 hex digits unrelated to the key", key, id)
	}
	if id != sessionLogID(key) || sessionLogID("") != "" {
		t.Error("sessionLogID is not stable, or names an empty session")
	}
}

// BenchmarkAffinity is the processor's CPU cost of one request to a 3:1
// alias without a session (the weighted random pick), and with one named
// by a header or by the body; the difference is what affinity adds:
//
//	go test -run '^$' -bench BenchmarkAffinity -benchmem ./processor
func BenchmarkAffinity(b *testing.B) {
	r := compileRouter(b, sessionConfigYAML)
	srv := New(Options{Router: func() *routing.Router { return r }})
	hdrs := func(extra ...string) []string {
		return append(post("/v1/chat/completions", "content-length", "300", "user-agent", "openai-python/1.50.0",
			"x-request-id", "0f6c1c0e-6b5e-4d7a-9c55-0d7c3e1b9a11", "accept", "text/event-stream"), extra...)
	}
	body := benchChat("fast")
	withKey := strings.Replace(body, `"user":"bench-user-0001"`, `"prompt_cache_key":"0194e0b2-7a53"`, 1)
	for _, bc := range []benchCase{
		{"no_session", hdrs(), body},
		{"session_header", hdrs("x-session-id", "0194e0b2-7a53-7c1d-9d61-4b1f0c2d9e77"), body},
		{"session_body", hdrs(), withKey},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st := decisionStream(fullDuplex, bc)
			b.ReportAllocs()
			for b.Loop() {
				runDecision(b, srv, st)
			}
		})
	}
}

// TestSessionInLogLine: the request's log line names the session by its
// hash, never by the key itself; so does a refusal's.
func TestSessionInLogLine(t *testing.T) {
	t.Parallel()
	var buf testkit.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := compileRouter(t, sessionConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }, Logger: log})
	const session = "user_7f3a_account__session_c0ffee"
	clusterOf(t, run(t, s, script(fullDuplex, post("/v1/chat/completions", "x-session-id", session), `{"model":"fast"}`)...))
	run(t, s, script(fullDuplex, post("/v1/chat/completions", "x-session-id", session), `{"model":"nope"}`)...)
	out := buf.String()
	if strings.Contains(out, session) {
		t.Errorf("the log holds the session key:\n%s", out)
	}
	if n := strings.Count(out, `"session":"`+sessionLogID(session)+`"`); n != 2 {
		t.Errorf("the session's hash appears %d times in the log, want 2 (routed, refused):\n%s", n, out)
	}
}

// TestHookSetsSession: a hook reads the derived session and replaces it;
// routing follows the hook's session, and one it drops leaves the request
// without affinity.
func TestHookSetsSession(t *testing.T) {
	t.Parallel()
	set, err := luahooks.NewSet([]luahooks.Source{{Name: "s.lua", Code: []byte(`
function on_request(req)
  local team = req:header("x-team")
  if team == "drop" then req:set_session("") elseif team then req:set_session("team:" .. team .. ":" .. req.session) end
end`)}}, luahooks.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := compileRouter(t, sessionConfigYAML)
	ctx := context.Background()
	plan := func(headers map[string]string) Plan {
		p, err := DryRun(ctx, r, set, Request{Method: "POST", Path: "/v1/chat/completions", Headers: headers, Body: []byte(`{"model":"fast"}`)}, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := plan(map[string]string{"x-session-id": "s1", "x-team": "ads"})
	if p.Session != "team:ads:s1" || p.SessionSource != sessionFromHook || !p.Attempts[0].Affinity {
		t.Errorf("hook session: %q from %q (affinity %t), want team:ads:s1 from hook", p.Session, p.SessionSource, p.Attempts[0].Affinity)
	}
	d, _ := r.Decide(ctx, &routing.Request{API: "openai", Model: "fast", Session: "team:ads:s1"})
	if p.Attempts[0].Provider != d.Provider {
		t.Errorf("hook session routed to %s, routing picks %s for it", p.Attempts[0].Provider, d.Provider)
	}
	p = plan(map[string]string{"x-session-id": "s1", "x-team": "drop"})
	if p.Session != "" || p.SessionSource != "" || p.Attempts[0].Affinity {
		t.Errorf("dropped session: %q from %q (affinity %t), want none", p.Session, p.SessionSource, p.Attempts[0].Affinity)
	}
	p = plan(map[string]string{"session-id": "codex-1"})
	if p.Session != "codex-1" || p.SessionSource != sessionFromCodex {
		t.Errorf("untouched session: %q from %q, want codex-1 from codex", p.Session, p.SessionSource)
	}
}

func TestSessionSetCountsEachOnce(t *testing.T) {
	t.Parallel()
	s := newSessionSet()
	t0 := time.Unix(1_700_000_000, 0)
	if !s.seen("a", t0) || s.seen("a", t0.Add(time.Minute)) || !s.seen("b", t0) {
		t.Fatal("a new session is not new, or a known one is")
	}
	// Idle for an hour since its last request: new again.
	if s.seen("a", t0.Add(time.Minute+sessionIdle-time.Second)) || !s.seen("a", t0.Add(time.Minute+2*sessionIdle)) {
		t.Error("a session's idle hour is not counted from its last request")
	}
	// Memory stays bounded: past the cap new sessions are counted but not
	// remembered; once old ones expire they make room.
	for i := range maxSessions + 1000 {
		if !s.seen(fmt.Sprint("fill-", i), t0) {
			t.Fatalf("session fill-%d not new", i)
		}
	}
	total := 0
	for i := range s.shards {
		total += len(s.shards[i].lastSeen)
	}
	if total > maxSessions {
		t.Errorf("%d sessions remembered, cap %d", total, maxSessions)
	}
	later := t0.Add(3 * sessionIdle)
	for i := range 100 {
		s.seen(fmt.Sprint("late-", i), later)
	}
	if s.seen("late-7", later) {
		t.Error("after the old sessions expired a new one was not remembered")
	}
}

// BenchmarkAffinityWork is the work affinity adds to a request, alone:
// deriving the session key, the rendezvous pick instead of the weighted
// random one, and the session metrics. Under a loaded machine it is a
// steadier measure than the difference of two whole-request figures:
//
//	go test -run '^$' -bench BenchmarkAffinityWork -benchmem ./processor
func BenchmarkAffinityWork(b *testing.B) {
	r := compileRouter(b, sessionConfigYAML)
	m := NewMetrics(nil)
	sessions := newSessionSet()
	fields, aerr := readBody([]byte(benchChat("fast")))
	if aerr != nil {
		b.Fatal(aerr)
	}
	h := sessionHeaders{explicit: "0194e0b2-7a53-7c1d-9d61-4b1f0c2d9e77"}
	ctx := context.Background()
	b.Run("without_session", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			key, _ := sessionKey(sessionHeaders{}, &fields)
			if _, err := r.Decide(ctx, &routing.Request{API: "openai", Model: "fast", Session: key}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("with_session", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			key, src := sessionKey(h, &fields)
			d, err := r.Decide(ctx, &routing.Request{API: "openai", Model: "fast", Session: key})
			if err != nil {
				b.Fatal(err)
			}
			m.sessions[src].Inc()
			if sessions.seen(key, time.Now()) {
				m.sessionsSeen.Inc()
			}
			if d.Affinity {
				m.affinity.Inc()
			}
		}
	})
}

// TestSessionKeyOwnsItsBytes: a session key read from the body survives the
// body's reuse, so the session set never pins a request body.
func TestSessionKeyOwnsItsBytes(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"model":"m","metadata":{"user_id":"user-abc"},"messages":[]}`,
		`{"model":"m","prompt_cache_key":"user-abc","input":"x"}`,
	} {
		b := []byte(body)
		f, err := readBody(b)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := sessionKey(sessionHeaders{}, &f)
		clear(b)
		if key != "user-abc" {
			t.Errorf("session key %q after the body was cleared, want user-abc", key)
		}
	}
}
