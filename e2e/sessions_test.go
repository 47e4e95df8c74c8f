package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// affinityConfig is a 3:1 alias over two providers, with a third target
// when withC (removed by reload in the test).
func affinityConfig(a, b, c *fakeUpstream, withC bool) string {
	third := ""
	if withC {
		third = "      - {provider: c, weight: 2}\n"
	}
	return fmt.Sprintf(`providers:
  - {name: a, url: 'http://127.0.0.1:%d', schema: openai}
  - {name: b, url: 'http://127.0.0.1:%d', schema: openai}
  - {name: c, url: 'http://127.0.0.1:%d', schema: openai}
  - {name: claude, url: 'http://127.0.0.1:%d', schema: anthropic}
routes:
  - model: fast
    targets:
      - {provider: a, weight: 3}
      - {provider: b, weight: 1}
%s  - model: claude-x
    targets:
      - {provider: claude}
      - {provider: claude, model: claude-y}
`, a.port(), b.port(), c.port(), a.port(), third)
}

// TestSessionAffinity: through Envoy, every request of a session reaches
// one target of a weighted alias, whichever header or body field names the
// session; many sessions follow the weights; a reload that removes a
// target moves only that target's sessions.
func TestSessionAffinity(t *testing.T) {
	t.Parallel()
	a, b, c := startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")
	gw := startGateway(t, affinityConfig(a, b, c, true), gatewayOptions{})
	chat := func(headers map[string]string, body string) string {
		return upstreamSaw(t, gw.do(t, "POST", "/v1/chat/completions", headers, body)).Upstream
	}
	sessions := []struct {
		name    string
		path    string
		headers map[string]string
		body    string
	}{
		{"x-session-id", "/v1/chat/completions", map[string]string{"x-session-id": "sess-one"}, `{"model":"fast","messages":[]}`},
		{"Codex session-id", "/v1/responses", map[string]string{"session-id": "0194e0b2-7a53-7c1d-9d61-4b1f0c2d9e77"}, `{"model":"fast","input":"hi"}`},
		{"prompt_cache_key", "/v1/chat/completions", nil, `{"model":"fast","prompt_cache_key":"pck-42"}`},
		{"Claude Code header", "/v1/messages", map[string]string{"x-claude-code-session-id": "cc-1", "anthropic-version": "2023-06-01"}, `{"model":"claude-x","max_tokens":5,"messages":[]}`},
		{"metadata.user_id", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"}, `{"model":"claude-x","max_tokens":5,"metadata":{"user_id":"user_1_account__session_9"}}`},
	}
	for _, s := range sessions {
		first := ""
		for i := range 200 {
			got := upstreamSaw(t, gw.do(t, "POST", s.path, s.headers, s.body))
			where := got.Upstream + "/" + got.Model
			if i == 0 {
				first = where
			} else if where != first {
				t.Fatalf("%s: request %d went to %s, the first to %s", s.name, i, where, first)
			}
		}
	}

	// 300 sessions over a:3 b:1 c:2.
	const n = 300
	before := make([]string, n)
	count := map[string]int{}
	for i := range before {
		before[i] = chat(map[string]string{"x-session-id": fmt.Sprintf("session-%d", i)}, `{"model":"fast"}`)
		count[before[i]]++
	}
	if count["a"] < 115 || count["a"] > 185 || count["b"] < 25 || count["c"] < 70 {
		t.Errorf("300 sessions over a:3 b:1 c:2 split %v, want close to a:150 b:50 c:100", count)
	}

	reloads := gw.metricOrFail(t, `switchyard_config_reloads_total{result="success"}`)
	writeFile(t, gw.configPath, affinityConfig(a, b, c, false))
	waitMetric(t, gw, `switchyard_config_reloads_total{result="success"}`, reloads+1)
	moved := 0
	for i, was := range before {
		now := chat(map[string]string{"x-session-id": fmt.Sprintf("session-%d", i)}, `{"model":"fast"}`)
		switch {
		case was == "c" && now == "c":
			t.Fatalf("session %d still reaches the removed target", i)
		case was != "c" && now != was:
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("removing target c moved %d sessions that were on a or b, want 0", moved)
	}
	if v, _ := metricValue(gw.metrics(t), "switchyard_sessions_seen_total"); v != float64(n+len(sessions)) {
		t.Errorf("switchyard_sessions_seen_total = %v, want %d", v, n+len(sessions))
	}
	metrics := gw.metrics(t)
	for _, series := range []string{
		`switchyard_session_requests_total{source="x-session-id"}`,
		`switchyard_session_requests_total{source="codex"}`,
		`switchyard_session_requests_total{source="claude_code"}`,
		`switchyard_affinity_routed_total{kind="target"}`,
		`switchyard_sessions_seen_total`, // 5 sessions of 200 requests, 300 of 2
	} {
		if v, ok := metricValue(metrics, series); !ok || v < 200 {
			t.Errorf("%s = %v, want at least 200\n%s", series, v, grep(metrics, "session"))
		}
	}
}

// poolKeys are a pool's keys by the variable that holds them.
var poolKeys = map[string]string{
	"SWY_POOL_K1": "sk-pool-one-SECRET-a1b2",
	"SWY_POOL_K2": "sk-pool-two-SECRET-c3d4",
	"SWY_POOL_K3": "sk-pool-three-SECRET-e5f6",
}

// poolProvider is a fake provider that answers 429 (with Retry-After) for
// the keys told to, and records which key each attempt of each request
// carried.
type poolProvider struct {
	*fakeUpstream
	mu       sync.Mutex
	limited  map[string]int      // key → Retry-After seconds
	attempts map[string][]string // x-request-id → keys in order
	log      []string            // every key, in order
}

func startPoolProvider(t *testing.T) *poolProvider {
	p := &poolProvider{limited: map[string]int{}, attempts: map[string][]string{}}
	p.fakeUpstream = upstreamFunc(t, "pool", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("authorization"), "Bearer ")
		p.mu.Lock()
		id := r.Header.Get("x-request-id")
		p.attempts[id] = append(p.attempts[id], key)
		p.log = append(p.log, key)
		retryAfter, limited := p.limited[key]
		p.mu.Unlock()
		if limited {
			w.Header().Set("retry-after", fmt.Sprint(retryAfter))
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"message":"rate limited","type":"rate_limit_error","code":"rate_limit"}}`)
			return
		}
		p.fakeUpstream.serve(w, r)
	})
	p.fakeUpstream.name = "pool"
	return p
}

func (p *poolProvider) limit(key string, retryAfter int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if retryAfter < 0 {
		delete(p.limited, key)
	} else {
		p.limited[key] = retryAfter
	}
}

// keysSince lists the keys of the attempts after the first n.
func (p *poolProvider) keysSince(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log[n:]...)
}

func (p *poolProvider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.log)
}

// TestKeyPool: requests spread over a provider's keys, a session keeps its
// key, a key answered 429 rests for its Retry-After while the others carry
// on, then comes back; no request shows the provider a key twice. In both
// body modes.
func TestKeyPool(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"FULL_DUPLEX_STREAMED", "BUFFERED"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testKeyPool(t, mode)
		})
	}
}

func testKeyPool(t *testing.T, mode string) {
	p := startPoolProvider(t)
	config := fmt.Sprintf(`providers:
  - name: pool
    url: 'http://127.0.0.1:%d'
    schema: openai
    auth:
      type: bearer
      keys:
        - {key_env: SWY_POOL_K1}
        - {key_env: SWY_POOL_K2}
        - {key_env: SWY_POOL_K3}
routes:
  - {model: pooled, provider: pool}
`, p.port())
	var env []string
	for name, key := range poolKeys {
		env = append(env, name+"="+key)
	}
	gw := startGateway(t, config, gatewayOptions{extraEnv: env, logLevel: "debug", bodyMode: mode})
	send := func(session string) result {
		h := map[string]string{}
		if session != "" {
			h["x-session-id"] = session
		}
		return gw.do(t, "POST", "/v1/chat/completions", h, `{"model":"pooled","messages":[{"role":"user","content":"hi"}]}`)
	}

	// Without a session requests spread over every key.
	start := p.count()
	for range 60 {
		upstreamSaw(t, send(""))
	}
	spread := map[string]int{}
	for _, k := range p.keysSince(start) {
		spread[k]++
	}
	if len(spread) != 3 {
		t.Fatalf("60 requests without a session used keys %v, want all three", spread)
	}

	// A session keeps its key.
	start = p.count()
	for range 20 {
		upstreamSaw(t, send("sess-pool"))
	}
	used := p.keysSince(start)
	sticky := used[0]
	for _, k := range used {
		if k != sticky {
			t.Fatalf("a session's requests used keys %v, want one", used)
		}
	}

	// Its key gets 429 with Retry-After: the request moves to another key,
	// and later requests leave the resting key alone.
	const retryAfter = 2
	p.limit(sticky, retryAfter)
	limitedAt := time.Now()
	start = p.count()
	if r := send("sess-pool"); r.status != 200 {
		t.Fatalf("with one key limited: status %d: %s", r.status, r.body)
	}
	if got := p.keysSince(start); len(got) != 2 || got[0] != sticky || got[1] == sticky {
		t.Fatalf("attempts after the 429: %v, want the session's key then another", got)
	}
	// Requests sent well inside the Retry-After (the rest began after
	// limitedAt) must leave the key alone.
	start = p.count()
	sent := 0
	for ; sent < 30 && time.Since(limitedAt) < retryAfter*time.Second*3/4; sent++ {
		if r := send("sess-pool"); r.status != 200 {
			t.Fatalf("status %d while a key rests: %s", r.status, r.body)
		}
		upstreamSaw(t, send(""))
	}
	if sent < 5 {
		t.Fatalf("only %d request pairs fitted in the Retry-After: the check proves nothing", sent)
	}
	for _, k := range p.keysSince(start) {
		if k == sticky {
			t.Fatalf("the resting key was used before its Retry-After had passed")
		}
	}
	waitMetric(t, gw, `switchyard_key_cooldowns_total{key="`+keyName(sticky)+`",provider="pool"}`, 1)

	// Once its Retry-After has passed the key comes back, and the session
	// returns to it.
	p.limit(sticky, -1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		start = p.count()
		upstreamSaw(t, send("sess-pool"))
		if got := p.keysSince(start); len(got) == 1 && got[0] == sticky {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rested key never came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if since := time.Since(limitedAt); since < retryAfter*time.Second {
		t.Errorf("the key came back after %v, before its Retry-After of %ds", since, retryAfter)
	}

	// Every key limited: the client gets the last 429, each key tried once.
	for k := range poolKeys {
		p.limit(poolKeys[k], 1)
	}
	start = p.count()
	if r := send("sess-pool"); r.status != 429 {
		t.Errorf("every key limited: status %d, want 429", r.status)
	}
	if got := p.keysSince(start); len(got) != 3 {
		t.Errorf("every key limited: attempts %v, want each key once", got)
	}

	p.mu.Lock()
	for id, keys := range p.attempts {
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Errorf("request %s showed the provider a key twice: %v", id, keys)
			}
			seen[k] = true
		}
	}
	p.mu.Unlock()
	out := gw.extprocOut.String() + gw.envoyOut.String() + gw.metrics(t)
	for _, key := range poolKeys {
		if strings.Contains(out, key) {
			t.Errorf("a pool key appears in the logs or metrics")
		}
	}
}

func keyName(key string) string {
	for name, k := range poolKeys {
		if k == key {
			return name
		}
	}
	return ""
}

// TestLoopGuard: through Envoy, the request after max_repeats identical
// ones is refused with 429 in the called API's shape; another last message
// is not; the refusal is counted.
func TestLoopGuard(t *testing.T) {
	t.Parallel()
	a := startUpstream(t, "a")
	gw := startGateway(t, fmt.Sprintf(`providers:
  - {name: a, url: 'http://127.0.0.1:%d', schema: openai}
  - {name: claude, url: 'http://127.0.0.1:%d', schema: anthropic}
routes:
  - {model: gpt-x, provider: a}
  - {model: claude-x, provider: claude}
loop_guard: {max_repeats: 3, window: 60s}
`, a.port(), a.port()), gatewayOptions{})
	body := `{"model":"gpt-x","messages":[{"role":"user","content":"fix it"},{"role":"tool","tool_call_id":"c1","content":"FAIL"}]}`
	h := map[string]string{"x-session-id": "loop-1"}
	for i := range 3 {
		if r := gw.do(t, "POST", "/v1/chat/completions", h, body); r.status != 200 {
			t.Fatalf("identical request %d: status %d", i+1, r.status)
		}
	}
	r := gw.do(t, "POST", "/v1/chat/completions", h, body)
	e, _ := r.json(t)["error"].(map[string]any)
	if r.status != 429 || e["type"] != "rate_limit_error" || e["code"] != "loop_detected" ||
		!strings.Contains(fmt.Sprint(e["message"]), "repeated 3 times within 60s") {
		t.Errorf("fourth identical request: %d %s, want 429 loop_detected in the OpenAI shape", r.status, r.body)
	}
	other := strings.Replace(body, "FAIL", "PASS", 1)
	if r := gw.do(t, "POST", "/v1/chat/completions", h, other); r.status != 200 {
		t.Errorf("another last message: status %d, want 200", r.status)
	}
	msgs := `{"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":"go"}]}`
	ah := map[string]string{"anthropic-version": "2023-06-01"}
	for range 3 {
		gw.do(t, "POST", "/v1/messages", ah, msgs)
	}
	r = gw.do(t, "POST", "/v1/messages", ah, msgs)
	if m := r.json(t); r.status != 429 || m["type"] != "error" || m["error"].(map[string]any)["type"] != "rate_limit_error" {
		t.Errorf("fourth identical Messages request: %d %s, want 429 in the Anthropic shape", r.status, r.body)
	}
	waitMetric(t, gw, `switchyard_loop_guard_refusals_total{key_name=""}`, 2)
}
