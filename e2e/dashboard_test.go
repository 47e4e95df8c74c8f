package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"switchyard/internal/testkit"
)

// The observed gateway's client keys.
const (
	observedKey      = "swy-client-observed-3c1d"
	observedTightKey = "swy-client-observed-tight-77e0"
)

// observed is a gateway that has served a bit of everything the dashboard
// and the status page show.
type observed struct {
	gw            *gateway
	flaky, broken *scripted
}

// startObserved starts a gateway with counted usage, a route whose pool
// provider answers 429 (a pool key rested) and falls back to a provider
// answering 503 (ejected) and then to the mock, a hook that fails on request, a key limited to one
// request a minute, and sends it: a plain and a streamed chat, a fallback,
// a request the hook fails on, one over the limit, and one for an unknown
// model. It returns once the answers' tokens are counted.
func startObserved(t *testing.T) observed {
	t.Helper()
	mock := startMock(t)
	o := observed{flaky: startScripted(t, "flaky"), broken: startScripted(t, "broken")}
	o.flaky.set("429 30")
	o.broken.set("503")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-crash.lua"), `
function on_request(req)
  if req:header("x-crash") then error("deliberate failure") end
end
`)
	// mock-gpt is priced so that the counted answers add to
	// switchyard_cost_usd_total, which the spend panels chart.
	config := fmt.Sprintf(`usage: {enabled: true}
providers:
  - {name: mock, url: '%s', schema: openai}
  - {name: flaky, url: 'http://127.0.0.1:%d', schema: openai, auth: {type: bearer, keys: [{key_env: SWY_OBS_POOL_1}, {key_env: SWY_OBS_POOL_2}]}}
  - {name: broken, url: 'http://127.0.0.1:%d', schema: openai}
routes:
  - model: mock-fallback
    provider: flaky
    fallbacks: [{provider: broken}, {provider: mock, model: mock-gpt}]
  - model: "mock-*"
    provider: mock
prices: [{model: "mock-*", input: 3, output: 15}]
ejection: {consecutive_failures: 1, duration: 60s}
hooks: {dir: '%s', timeout: 250ms, failure_policy: fail_open}
client_keys:
  - {name: team-obs, key_env: SWY_OBS_CLIENT, limits: {requests_per_minute: 1000, tokens_per_day: 10000000, usd_per_day: 100}}
  - {name: team-tight, key_env: SWY_OBS_TIGHT, limits: {requests_per_minute: 1}}
`, mock.URL, o.flaky.port(), o.broken.port(), dir)
	o.gw = startGateway(t, config, gatewayOptions{extraEnv: []string{
		"SWY_OBS_POOL_1=sk-obs-pool-SECRET-1", "SWY_OBS_POOL_2=sk-obs-pool-SECRET-2",
		"SWY_OBS_CLIENT=" + observedKey, "SWY_OBS_TIGHT=" + observedTightKey,
	}})

	chat := `{"model":"%s","messages":[{"role":"user","content":"hello"}]%s}`
	for _, tc := range []struct {
		name    string
		key     string
		headers map[string]string
		body    string
		want    int
	}{
		{"plain", observedKey, nil, fmt.Sprintf(chat, "mock-gpt", ""), 200},
		{"streamed", observedKey, nil, fmt.Sprintf(chat, "mock-gpt", `,"stream":true,"stream_options":{"include_usage":true}`), 200},
		{"fallback", observedKey, nil, fmt.Sprintf(chat, "mock-fallback", ""), 200},
		{"failing hook (fail_open)", observedKey, map[string]string{"x-crash": "1"}, fmt.Sprintf(chat, "mock-gpt", ""), 200},
		{"tight key, first", observedTightKey, nil, fmt.Sprintf(chat, "mock-gpt", ""), 200},
		{"tight key, over its limit", observedTightKey, nil, fmt.Sprintf(chat, "mock-gpt", ""), 429},
		{"unknown model", observedKey, nil, fmt.Sprintf(chat, "nothing-routes-this", ""), 404},
	} {
		h := bearer(tc.key)
		for k, v := range tc.headers {
			h[k] = v
		}
		if r := o.gw.do(t, http.MethodPost, "/v1/chat/completions", h, tc.body); r.status != tc.want {
			t.Fatalf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.want)
		}
	}
	if o.flaky.hits() == 0 || o.broken.hits() == 0 {
		t.Fatalf("the fallback route reached flaky %d and broken %d times, want both", o.flaky.hits(), o.broken.hits())
	}
	// Five answers are counted (the refused and the unknown are not):
	// each has input and output tokens.
	waitFor(t, "every answer's tokens counted", func() bool {
		m := o.gw.metrics(t)
		return metricSum(m, "switchyard_request_duration_seconds_count") == 5 &&
			metricSum(m, "switchyard_tokens_total", `type="output"`) > 0
	})
	return o
}

// TestDashboardMetricsExist: every series the Grafana dashboard
// (deploy/grafana/dashboards/switchyard.json) queries is in a live
// /metrics of extproc behind the real Envoy, once it has served a bit of
// everything: a query on a missing series draws an empty panel without an
// error, so only this check notices a renamed metric.
func TestDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	d, err := testkit.ReadDashboard(filepath.Join(repoRoot(t), "deploy/grafana/dashboards/switchyard.json"))
	if err != nil {
		t.Fatal(err)
	}
	o := startObserved(t)
	exposition := o.gw.metrics(t)
	checked := map[string]bool{}
	for _, expr := range d.Exprs() {
		for _, name := range testkit.MetricNames(expr) {
			if checked[name] {
				continue
			}
			checked[name] = true
			if !hasSeries(exposition, name) {
				t.Errorf("the dashboard queries %s (in %q); /metrics has no such series", name, expr)
			}
		}
	}
	// Each answer once, an attempt of the fallback chain like a whole
	// answer: flaky's 429 from each of its two pool keys, broken's 503,
	// the mock's five 200s.
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{`provider="flaky"`, `status="429"`}, 2},
		{[]string{`provider="broken"`, `status="503"`}, 1},
		{[]string{`provider="mock"`, `status="200"`}, 5},
	} {
		if got := metricSum(exposition, "switchyard_upstream_answers_total", c.labels...); got != c.want {
			t.Errorf("switchyard_upstream_answers_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if len(checked) < 15 {
		t.Errorf("only %d metrics found in the dashboard's queries: %v", len(checked), checked)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grep(exposition, "switchyard_"))
	}
}

// hasSeries reports whether a text exposition has a sample of name.
func hasSeries(exposition, name string) bool {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			return true
		}
	}
	return false
}
