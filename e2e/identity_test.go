package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// identityKeys are the client keys of the request identity tests, by name.
var identityKeys = map[string]string{"k1": "sk-identity-one", "k2": "sk-identity-two", "k3": "sk-identity-three"}

func identityKeysConfig() (yaml string, env []string) {
	yaml = "client_keys:\n"
	for _, name := range []string{"k1", "k2", "k3"} {
		v := "SWY_TEST_IDENTITY_" + strings.ToUpper(name)
		yaml += fmt.Sprintf("  - {name: %s, key_env: %s}\n", name, v)
		env = append(env, v+"="+identityKeys[name])
	}
	return yaml, env
}

// identityConfig: translated (to-anthropic for chat clients), counted
// (usage on), and fallback routes whose first provider answers 529.
func identityConfig(mockURL, downAddr string) (string, []string) {
	keys, env := identityKeysConfig()
	return fmt.Sprintf(`providers:
  - {name: mock, url: %[1]q, schema: openai}
  - {name: mock-anthropic, url: %[1]q, schema: anthropic, cluster: mock_anthropic}
  - {name: down, url: "http://%[2]s", schema: anthropic}
routes:
  - {model: to-anthropic, provider: mock-anthropic}
  - {model: native-gpt, provider: mock}
  - {model: native-claude, provider: mock-anthropic}
  - model: fb
    provider: down
    fallbacks: [{provider: mock-anthropic, model: mock-claude}]
usage: {enabled: true}
`, mockURL, downAddr) + keys, env
}

// identityCall is one client request of TestSharedRequestID and what its
// client must get back.
type identityCall struct {
	key, path, body string
	anthropic       bool // the client speaks the Messages API
	stream          bool
}

func (c identityCall) shapeOK(body string) bool {
	switch {
	case c.anthropic && c.stream:
		return strings.HasPrefix(body, "event: message_start") && !strings.Contains(body, "chat.completion")
	case c.anthropic:
		return gjson.Get(body, "type").String() == "message" && !gjson.Get(body, "choices").Exists()
	case c.stream:
		return strings.Contains(body, `"object":"chat.completion.chunk"`) && strings.HasSuffix(body, "data: [DONE]\n\n") &&
			!strings.Contains(body, "message_start")
	}
	return gjson.Get(body, "object").String() == "chat.completion" && !gjson.Get(body, "content").Exists()
}

// TestSharedRequestID: concurrent requests that all send the same
// x-request-id — translated, counted, with fallbacks, and mixed — each get
// their own answer in their own API's shape, and each key is charged
// exactly the tokens its own answers reported. The client's id links
// nothing inside the gateway.
func TestSharedRequestID(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	down := upstreamFunc(t, "down", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(529)
		fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	})
	cfg, env := identityConfig(mock.URL, down.addr)
	gw := startGateway(t, cfg, gatewayOptions{extraEnv: env})

	var calls []identityCall
	for i := range 36 {
		key := []string{"k1", "k2", "k3"}[i%3]
		model := []string{"to-anthropic", "native-gpt", "fb", "native-claude", "fb", "to-anthropic"}[i%6]
		anthropic := i%6 == 3 || i%6 == 4
		stream := i%4 < 2
		// A prompt of its own length: each answer reports its own tokens.
		prompt := strings.Repeat("w", 1+i*37)
		c := identityCall{key: key, anthropic: anthropic, stream: stream, path: "/v1/chat/completions",
			body: fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":%q}]}`, model, stream, prompt)}
		if anthropic {
			c.path = "/v1/messages"
			c.body = fmt.Sprintf(`{"model":%q,"max_tokens":64,"stream":%t,"messages":[{"role":"user","content":%q}]}`, model, stream, prompt)
		}
		calls = append(calls, c)
	}

	charged := map[string]float64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range calls {
		wg.Go(func() {
			<-start
			h := bearer(identityKeys[c.key])
			h["x-request-id"] = "one-id-for-all"
			h["anthropic-version"] = "2023-06-01"
			// Held a while at the provider, so that they overlap.
			h["x-mock-latency-ms"] = "150"
			r := gw.do(t, "POST", c.path, h, c.body)
			if r.status != 200 || !c.shapeOK(string(r.body)) {
				t.Errorf("%s %s: %d, not its own API's answer: %.300s", c.path, c.body[:40], r.status, r.body)
				return
			}
			u := reportedUsage(t, r.body)
			if u["input"] == 0 || u["output"] == 0 {
				t.Errorf("%s %.40s: no usage in the answer: %.300s", c.path, c.body, r.body)
			}
			mu.Lock()
			charged[c.key] += u["input"] + u["output"]
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for key, want := range charged {
		waitFor(t, fmt.Sprintf("key %s charged %v tokens", key, want), func() bool {
			return keyTokens(gw.metrics(t), key) == want
		})
		if got := keyTokens(gw.metrics(t), key); got != want {
			t.Errorf("key %s charged %v tokens, its answers reported %v", key, got, want)
		}
	}
}

// keyTokens sums a key's input and output tokens over every provider and
// model in an exposition.
func keyTokens(exposition, key string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, `switchyard_tokens_total{key="`+key+`",`) ||
			!(strings.Contains(line, `type="input"`) || strings.Contains(line, `type="output"`)) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			sum += v
		}
	}
	return sum
}

// identityHook forges the header named in x-try-set, and turns a request
// into a stream when x-make-stream is set.
const identityHook = `
function on_request(req)
  local name = req:header("x-try-set")
  if name then req:set_header(name, "forged") end
  if req:header("x-make-stream") then req.body:set("stream", true) end
end
`

// TestHookProtectedHeaders: a hook that sets x-request-id or any other
// protected header fails the request with a hook error (fail_closed), and
// nothing forged reaches a provider; a hook that turns a request into a
// stream gets it counted.
func TestHookProtectedHeaders(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "forge.lua"), identityHook)
	cfg, env := identityConfig(mock.URL, closedUpstream(t).addr)
	cfg += fmt.Sprintf("hooks: {dir: %s, timeout: 250ms, failure_policy: fail_closed}\n", dir)
	gw := startGateway(t, cfg, gatewayOptions{extraEnv: env, logLevel: "info"})

	body := `{"model":"to-anthropic","messages":[{"role":"user","content":"hi"}]}`
	for _, name := range []string{"x-request-id", "x-switchyard-cluster", "x-switchyard-retry", "x-envoy-max-retries", "authorization", "x-api-key"} {
		h := bearer(identityKeys["k1"])
		h["x-try-set"] = name
		r := gw.do(t, "POST", "/v1/chat/completions", h, body)
		e, _ := r.json(t)["error"].(map[string]any)
		if r.status != 500 || e["code"] != "hook_failed" {
			t.Errorf("hook set %s: %d %s, want 500 hook_failed", name, r.status, r.body)
		}
	}
	waitFor(t, "the hook error logged", func() bool {
		return strings.Contains(gw.extprocOut.String(), `is protected: hooks may not set or remove it`)
	})
	for _, req := range mock.take() {
		for k, v := range req.Header {
			if strings.Join(v, "") == "forged" {
				t.Errorf("a forged %s reached the provider", k)
			}
		}
	}
	// The same hook, harmless: a translated answer comes back translated.
	r := gw.do(t, "POST", "/v1/chat/completions", bearer(identityKeys["k1"]), body)
	if r.status != 200 || gjson.GetBytes(r.body, "object").String() != "chat.completion" {
		t.Errorf("translated request after the refusals: %d %s", r.status, r.body)
	}

	// A hook turns a non-streamed chat request into a stream: the gateway
	// asks for its usage, and the tokens are counted.
	before := keyTokens(gw.metrics(t), "k2")
	h := bearer(identityKeys["k2"])
	h["x-make-stream"] = "1"
	r = gw.do(t, "POST", "/v1/chat/completions", h, `{"model":"native-gpt","messages":[{"role":"user","content":"stream me"}]}`)
	u := reportedUsage(t, r.body)
	if r.status != 200 || !strings.HasPrefix(string(r.body), "data: ") || u["input"] == 0 {
		t.Fatalf("hooked stream: %d, usage %v: %.300s", r.status, u, r.body)
	}
	want := before + u["input"] + u["output"]
	waitFor(t, "the hooked stream counted", func() bool { return keyTokens(gw.metrics(t), "k2") == want })
}

// TestReloadBetweenAttempts: a config reload between the first and the
// second attempt of a fallback chain does not reach the second attempt:
// it uses the snapshot the request was planned with (here: the fallback
// provider's old key); the next request uses the new one.
func TestReloadBetweenAttempts(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}, 4), make(chan struct{})
	first := upstreamFunc(t, "first", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(503)
	})
	var mu sync.Mutex
	var keys []string
	second := upstreamFunc(t, "second", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("authorization"))
		mu.Unlock()
		w.Header().Set("content-type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "old"), "key-old")
	writeFile(t, filepath.Join(dir, "new"), "key-new")
	cfg := func(keyFile string) string {
		return fmt.Sprintf(`providers:
  - {name: first, url: "http://%s", schema: openai}
  - {name: second, url: "http://%s", schema: openai, auth: {type: bearer, key_file: %s}}
routes:
  - model: fb
    provider: first
    fallbacks: [{provider: second}]
`, first.addr, second.addr, filepath.Join(dir, keyFile))
	}
	gw := startGateway(t, cfg("old"), gatewayOptions{})
	reloads := gw.metricOrFail(t, `switchyard_config_reloads_total{result="success"}`)

	body := `{"model":"fb","messages":[{"role":"user","content":"hi"}]}`
	done := make(chan result, 1)
	go func() { done <- gw.do(t, "POST", "/v1/chat/completions", nil, body) }()
	<-arrived // the first attempt is at its provider
	replaceFile(t, gw.configPath, cfg("new"))
	waitMetric(t, gw, `switchyard_config_reloads_total{result="success"}`, reloads+1)
	close(release)
	if r := <-done; r.status != 200 {
		t.Fatalf("request across the reload: %d %s", r.status, r.body)
	}
	if r := gw.do(t, "POST", "/v1/chat/completions", nil, body); r.status != 200 {
		t.Fatalf("request after the reload: %d %s", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] != "Bearer key-old" || keys[1] != "Bearer key-new" {
		t.Errorf("the second attempts carried %q, want the old key then the new one", keys)
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
