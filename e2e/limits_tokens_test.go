package e2e

import (
	"fmt"
	"testing"
	"time"
)

// tokensKeyEnv holds the key of the token-budget tests' client.
const tokensKeyEnv = "SWY_TEST_TOKENS_KEY"

const tokensKey = "sk-switchyard-tokens-test"

// tokensConfig is the example config with one client key, team-t, whose
// budgets are limits, and the rate-limit service when rls is not nil.
func tokensConfig(t testing.TB, mockURL, limits string, rls *rateLimitService) string {
	c := exampleConfig(t, mockURL) + "\nclient_keys:\n  - name: team-t\n    key_env: " + tokensKeyEnv + "\n    limits: " + limits + "\n"
	if rls != nil {
		c += "rate_limit_service: {address: '" + rls.address + "', failure_mode: deny, timeout: 200ms}\n"
	}
	return c
}

const tokensBody = `{"model":"mock-gpt","messages":[{"role":"user","content":"spend my tokens"}]}`

// spend sends one request of team-t through gw; when it is answered 200,
// it waits until the gateway has charged the tokens the answer reported
// (counting happens beside the answer, not before it) and returns them.
func spend(t *testing.T, gw *gateway) (status int, tokens float64) {
	t.Helper()
	series := `switchyard_tokens_total{key="team-t",model="mock-*",provider="mock",type="%s"}`
	before := map[string]float64{}
	m := gw.metrics(t)
	for _, typ := range []string{"input", "output"} {
		before[typ], _ = metricValue(m, fmt.Sprintf(series, typ))
	}
	r := gw.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), tokensBody)
	if r.status != 200 {
		return r.status, 0
	}
	u := reportedUsage(t, r.body)
	for _, typ := range []string{"input", "output"} {
		waitMetric(t, gw, fmt.Sprintf(series, typ), before[typ]+u[typ])
	}
	return 200, u["input"] + u["output"]
}

// TestTokensPerMinute (one replica, the embedded limiter): a key's token
// budget admits requests while tokens are left and is charged each
// answer's real usage; once spent, requests get 429 in the API's shape with
// the x-ratelimit-*-tokens headers. A reload changes the budget at once.
func TestTokensPerMinute(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	gw := startGateway(t, tokensConfig(t, mock.URL, "{tokens_per_minute: 1000000}", nil),
		gatewayOptions{extraEnv: []string{tokensKeyEnv + "=" + tokensKey}})
	waitMinuteHead(40)
	minute := time.Now().Truncate(time.Minute)
	status, per := spend(t, gw)
	if status != 200 || per == 0 {
		t.Fatalf("first request: status %d, %v tokens", status, per)
	}
	// Every answer to this body reports the same usage: a budget of three
	// answers leaves room for two more.
	budget := int(3 * per)
	reloads := gw.metricOrFail(t, `switchyard_config_reloads_total{result="success"}`)
	replaceFile(t, gw.configPath, tokensConfig(t, mock.URL, fmt.Sprintf("{tokens_per_minute: %d}", budget), nil))
	waitMetric(t, gw, `switchyard_config_reloads_total{result="success"}`, reloads+1)
	var got []int
	for i := 0; i < 3; i++ {
		s, _ := spend(t, gw)
		got = append(got, s)
	}
	if time.Now().Truncate(time.Minute) != minute {
		t.Fatalf("the minute turned during the test (%v): the budget restarted", got)
	}
	if fmtInts(got) != "[200 200 429]" {
		t.Fatalf("after lowering the budget to %d tokens (%v a request): %v, want two more then 429", budget, per, got)
	}
	r := gw.do(t, "POST", "/v1/messages", map[string]string{"x-api-key": tokensKey},
		`{"model":"mock-claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 429 || r.header.Get("x-ratelimit-limit-tokens") != fmt.Sprint(budget) || r.header.Get("x-ratelimit-remaining-tokens") != "0" ||
		r.header.Get("retry-after") == "" || r.json(t)["type"] != "error" {
		t.Errorf("over the budget on the Messages API: %d %v %s", r.status, r.header, r.body)
	}
}

// TestTokensAcrossReplicas: two gateways share one rate-limit service and
// one Redis; a token budget spent through replica A blocks the key on
// replica B.
func TestTokensAcrossReplicas(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	rls := startRateLimit(t, redis)
	mock := startMock(t)
	cfg := tokensConfig(t, mock.URL, "{tokens_per_day: 1}", rls)
	opts := gatewayOptions{extraEnv: []string{tokensKeyEnv + "=" + tokensKey}}
	a, b := startGateway(t, cfg, opts), startGateway(t, cfg, opts)
	if status, tokens := spend(t, a); status != 200 || tokens < 2 {
		t.Fatalf("first request on replica A: status %d, %v tokens", status, tokens)
	}
	for name, gw := range map[string]*gateway{"B": b, "A": a} {
		r := gw.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), tokensBody)
		if r.status != 429 || r.header.Get("x-ratelimit-limit-tokens") != "1" {
			t.Errorf("replica %s after the budget was spent on A: %d %v %s", name, r.status, r.header, r.body)
		}
	}
	if n := b.metricOrFail(t, `switchyard_rate_limited_total{key="team-t",limit="tokens_per_day"}`); n != 1 {
		t.Errorf("replica B refused %v requests for tokens, want 1", n)
	}
}
