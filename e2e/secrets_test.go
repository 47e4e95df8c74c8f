package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestNoSecretInAnyOutput runs traffic with real-looking provider and client
// keys (successes and failures, with and without hooks that try to log
// headers), extproc at debug level, then searches everything the gateway
// emitted: extproc's logs, Envoy's output, the metrics exposition, every
// response body and header, and Envoy's admin endpoints. No key, nor a
// distinctive piece of one, may appear anywhere.
func TestNoSecretInAnyOutput(t *testing.T) {
	t.Parallel()
	for _, withHooks := range []bool{false, true} {
		name := "hook-less"
		if withHooks {
			name = "hooks logging headers"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testNoSecretInAnyOutput(t, withHooks)
		})
	}
}

func testNoSecretInAnyOutput(t *testing.T, withHooks bool) {
	openaiKey := "sk-proj-" + randomHex(t, 24)
	anthropicKey := "sk-ant-api03-" + randomHex(t, 24)
	azureKey := randomHex(t, 16)
	fileKey := "sk-file-" + randomHex(t, 20)
	clientKey := "swy-live-" + randomHex(t, 16)
	limitedKey := "swy-live-" + randomHex(t, 16)
	wrongKey := clientKey[:len(clientKey)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", clientKey[len(clientKey)-1])+1)%16])
	inlineKey := "sk-proj-" + randomHex(t, 24) // only ever written into a broken config
	poolKey1, poolKey2 := "sk-pool-"+randomHex(t, 20), "sk-pool-"+randomHex(t, 20)
	secrets := map[string]string{"first pool key": poolKey1, "second pool key": poolKey2, "openai provider key": openaiKey, "anthropic provider key": anthropicKey, "azure provider key": azureKey,
		"file provider key": fileKey, "client key": clientKey, "limited client key": limitedKey, "wrong client key": wrongKey, "inline key in a broken config": inlineKey}

	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	failing := upstreamFunc(t, "failing", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
	})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "provider.key")
	if err := os.WriteFile(keyFile, []byte(fileKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	limited := upstreamFunc(t, "limited", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.Header().Set("retry-after", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"message":"rate limited","type":"rate_limit_error"}}`)
	})
	hooks := ""
	if withHooks {
		if err := os.Mkdir(filepath.Join(dir, "hooks"), 0o700); err != nil {
			t.Fatal(err)
		}
		// A careless operator's hook: logs every header and the credentials.
		script := `function on_request(req)
  log("info", "all headers", req:headers())
  print("authorization", req:header("authorization"), "x-api-key", req:header("x-api-key"), "api-key", req:header("api-key"))
  req:tag("hooked", "yes")
end
function on_response(res)
  log("info", "response headers", res:headers())
end
`
		if err := os.WriteFile(filepath.Join(dir, "hooks", "snoop.lua"), []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		hooks = "hooks: {dir: ./hooks, timeout: 250ms}\n" // generous: a busy machine stalls hook calls
	}
	config := fmt.Sprintf(`providers:
  - name: openai
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_env: SWY_SECRET_OPENAI}
  - name: anthropic
    url: http://127.0.0.1:%d
    schema: anthropic
    auth: {type: header, header: x-api-key, key_env: SWY_SECRET_ANTHROPIC}
  - name: azure
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: header, header: api-key, key_env: SWY_SECRET_AZURE}
  - name: filed
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_file: %s}
  - name: unset
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_env: SWY_SECRET_NEVER_SET}
  - name: pooled
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, keys: [{key_env: SWY_SECRET_POOL_1}, {key_env: SWY_SECRET_POOL_2, weight: 2}, {key_env: SWY_SECRET_POOL_UNSET}]}
  - name: pooled-limited
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, keys: [{key_env: SWY_SECRET_POOL_1}, {key_env: SWY_SECRET_POOL_2}]}
routes:
  - {model: pooled-model, provider: pooled}
  - {model: limited-model, provider: pooled-limited}
  - {model: gpt-4o, provider: openai}
  - {model: "claude-*", provider: anthropic}
  - {model: azure-gpt, provider: azure}
  - {model: filed-model, provider: filed}
  - {model: needs-key, provider: unset}
client_keys:
  - {name: main, key_env: SWY_SECRET_CLIENT}
  - {name: limited, key_env: SWY_SECRET_LIMITED, models: ["gpt-4o"]}
%s`, a.port(), b.port(), a.port(), failing.port(), keyFile, a.port(), a.port(), limited.port(), hooks)
	configPath := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, "", gatewayOptions{configFile: configPath, logLevel: "debug", extraEnv: []string{
		"SWY_SECRET_OPENAI=" + openaiKey, "SWY_SECRET_ANTHROPIC=" + anthropicKey, "SWY_SECRET_AZURE=" + azureKey,
		"SWY_SECRET_CLIENT=" + clientKey, "SWY_SECRET_LIMITED=" + limitedKey,
		"SWY_SECRET_POOL_1=" + poolKey1, "SWY_SECRET_POOL_2=" + poolKey2,
	}})

	anthropicHeaders := func(key string) map[string]string {
		return map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"}
	}
	traffic := []struct {
		method, path string
		headers      map[string]string
		body         string
		want         int
	}{
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"gpt-4o","messages":[]}`, 200},
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"gpt-4o","stream":true}`, 200},
		{"POST", "/v1/messages", anthropicHeaders(clientKey), `{"model":"claude-3","max_tokens":1}`, 200},
		{"POST", "/v1/chat/completions", map[string]string{"api-key": clientKey}, `{"model":"azure-gpt"}`, 200},
		{"POST", "/v1/embeddings", bearer(limitedKey), `{"model":"gpt-4o","input":"x"}`, 200},
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"filed-model"}`, 503}, // upstream answers 503
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"needs-key"}`, 503},   // provider without a key
		{"POST", "/v1/chat/completions", bearer(wrongKey), `{"model":"gpt-4o"}`, 401},       // one byte off
		{"POST", "/v1/messages", anthropicHeaders(wrongKey), `{"model":"claude-3"}`, 401},   // one byte off
		{"POST", "/v1/chat/completions", bearer(limitedKey), `{"model":"azure-gpt"}`, 403},  // not allowed
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"nope"}`, 404},        // unknown model
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":`, 400},
		{"POST", "/v1/nothing", bearer(clientKey), `{}`, 404},
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"pooled-model","prompt_cache_key":"s1"}`, 200},
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"pooled-model"}`, 200},
		{"POST", "/v1/chat/completions", bearer(clientKey), `{"model":"limited-model"}`, 429}, // every pool key limited
		{"GET", "/v1/models", bearer(clientKey), "", 200},
		{"GET", "/v1/models", bearer(wrongKey), "", 401},
	}
	var emitted []string
	record := func(what string, r result) {
		emitted = append(emitted, fmt.Sprintf("%s body: %s", what, r.body))
		for k, v := range r.header {
			emitted = append(emitted, fmt.Sprintf("%s header %s: %s", what, k, strings.Join(v, ",")))
		}
	}
	for i, tr := range traffic {
		r := gw.do(t, tr.method, tr.path, tr.headers, tr.body)
		if r.status != tr.want {
			t.Errorf("%s %s %s: status %d, want %d: %s", tr.method, tr.path, tr.body, r.status, tr.want, r.body)
		}
		if r.status == 200 && tr.body != "" && !strings.Contains(tr.body, `"stream":true`) {
			// The provider key did travel: to the upstream, never back out
			// of the gateway except through this echoing fake upstream.
			seen := upstreamSaw(t, r)
			if !strings.Contains(fmt.Sprint(seen.Headers), "sk-") && seen.Headers["api-key"] != azureKey {
				t.Errorf("upstream did not get a provider key: %v", seen.Headers)
			}
			continue // the echo of the upstream's view is not gateway output
		}
		record(fmt.Sprintf("request %d (%s %s)", i, tr.method, tr.path), r)
	}

	// A broken config with a key written inline is refused without quoting it.
	broken := strings.Replace(config, "auth: {type: bearer, key_env: SWY_SECRET_OPENAI}", "auth: {type: bearer, key: "+inlineKey+"}", 1)
	replaceFile(t, configPath, broken)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(gw.metrics(t), "switchyard_config_last_reload_successful 0") {
		if time.Now().After(deadline) {
			t.Fatal("the broken config was not refused")
		}
		time.Sleep(25 * time.Millisecond)
	}
	if r := gw.do(t, "POST", "/v1/chat/completions", bearer(clientKey), `{"model":"gpt-4o"}`); r.status != 200 {
		t.Errorf("after the broken config: %d %s", r.status, r.body)
	}

	sources := map[string]string{
		"extproc log":     gw.extprocOut.String(),
		"extproc metrics": gw.metrics(t),
		"responses":       strings.Join(emitted, "\n"),
	}
	for _, p := range []string{"/config_dump", "/config_dump?include_eds", "/stats", "/stats/prometheus", "/clusters", "/listeners", "/server_info", "/runtime", "/certs"} {
		sources["envoy admin "+p] = gw.envoyAdmin(t, p)
	}
	sources["envoy output"] = gw.envoyOut.String() // read last: it includes anything the admin reads logged

	// Positive controls: the sources hold what they should, so an empty
	// capture cannot pass for a clean one.
	for src, want := range map[string]string{
		"extproc log":              `"msg":"routed"`,
		"extproc metrics":          "switchyard_requests_total",
		"envoy admin /stats":       "cluster.openai.upstream_rq_completed",
		"envoy admin /config_dump": "x-switchyard-cluster",
		"responses":                "invalid API key",
	} {
		if !strings.Contains(sources[src], want) {
			t.Errorf("%s lacks %q: the capture is incomplete", src, want)
		}
	}
	if !strings.Contains(sources["extproc metrics"], `switchyard_key_cooldowns_total{key="SWY_SECRET_POOL_1",provider="pooled-limited"}`) {
		t.Error("no pool key was rested: the key pool path was not exercised")
	}
	if withHooks && !strings.Contains(sources["extproc log"], "all headers") {
		t.Error("the snooping hook did not log: the hook test proves nothing")
	}

	for src, text := range sources {
		for what, secret := range secrets {
			// The whole key, and its distinctive random tail alone.
			for _, needle := range []string{secret, secret[len(secret)-16:]} {
				if i := strings.Index(text, needle); i >= 0 {
					lo, hi := max(0, i-120), min(len(text), i+len(needle)+40)
					t.Errorf("%s appears in %s: ...%s...", what, src, text[lo:hi])
					break
				}
			}
		}
	}
	t.Logf("searched %d sources (%d bytes of extproc log) for %d keys", len(sources), len(sources["extproc log"]), len(secrets))
}
