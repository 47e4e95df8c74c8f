package statuspage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/config"
	"switchyard/limits"
	"switchyard/processor"
	"switchyard/reload"
	"switchyard/routing"
)

const (
	providerSecret = "sk-provider-SECRET-4e1f"
	poolSecret     = "sk-pool-SECRET-77b0"
	clientSecret   = "swy-client-SECRET-9a2c"
)

const testConfig = `
providers:
  - {name: alpha, url: 'https://alpha.example:8443', schema: openai, auth: {type: bearer, key_env: ALPHA_KEY}}
  - name: pool
    url: http://127.0.0.1:9
    schema: anthropic
    auth: {type: header, header: x-api-key, keys: [{key_env: POOL_KEY_A}, {key_env: POOL_KEY_B}]}
routes:
  - {model: gpt-4o, provider: alpha, fallbacks: [{provider: pool, model: claude-x}]}
  - model: "claude-*"
    provider: pool
client_keys:
  - {name: team-a, key_env: CLIENT_A, limits: {requests_per_minute: 10, tokens_per_day: 1000}}
  - {name: team-b, key_env: CLIENT_B}
`

func testRouter(t *testing.T) *routing.Router {
	t.Helper()
	cfg, err := config.Decode([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ALPHA_KEY": providerSecret, "POOL_KEY_A": poolSecret, "POOL_KEY_B": poolSecret + "b",
		"CLIENT_A": clientSecret, "CLIENT_B": clientSecret + "b"}
	r, err := routing.Compile(cfg, config.Env{Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testCounters registers the counters the page reads, with a few
// series, on a registry of their own.
func testCounters(t *testing.T) (*prometheus.Registry, *prometheus.CounterVec, *prometheus.CounterVec) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: requestsMetric}, []string{"provider", "model", "status"})
	toks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: tokensMetric}, []string{"key", "provider", "model", "type"})
	falls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: fallbacksMetric}, []string{"from", "to", "reason"})
	falls.WithLabelValues("alpha", "pool", "503").Add(2)
	falls.WithLabelValues("alpha", "pool", "no_response").Add(1)
	reg.MustRegister(reqs, toks, falls)
	return reg, reqs, toks
}

func render(t *testing.T, p *Page, method string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestPage: the page shows the providers with their health and resting
// pool keys by name, the routes, each client key's budgets with what is
// spent and left, the totals of the counters, the rates between two
// renders and the reloads, and never a credential.
func TestPage(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	now := start
	reg, reqs, toks := testCounters(t)
	reqs.WithLabelValues("alpha", "gpt-4o", "routed").Add(7)
	reqs.WithLabelValues("", "", "503").Add(2)
	reqs.WithLabelValues("", "", "401").Add(1)
	reqs.WithLabelValues("", "", "estimated").Add(4) // answered, not an error
	toks.WithLabelValues("team-a", "alpha", "gpt-4o", "input").Add(100)
	toks.WithLabelValues("team-a", "alpha", "gpt-4o", "output").Add(40)
	toks.WithLabelValues("team-a", "alpha", "gpt-4o", "reasoning").Add(30) // part of output
	p := New(Sources{
		Router: func() *routing.Router { return testRouter(t) },
		Health: func() processor.HealthSnapshot {
			return processor.HealthSnapshot{
				Providers: []processor.ProviderState{{Provider: "alpha", Until: start.Add(30 * time.Second)}, {Provider: "pool", Failures: 2}},
				Keys:      []processor.RestingKey{{Provider: "pool", Key: "POOL_KEY_A", Until: start.Add(15 * time.Second)}},
			}
		},
		Spent: func(_ context.Context, key string, l limits.Limits) (limits.Usage, error) {
			if key != "team-a" || l != (limits.Limits{RequestsPerMinute: 10, TokensPerDay: 1000}) {
				t.Errorf("asked for the budgets of %q %+v", key, l)
			}
			return limits.Usage{RequestsThisMinute: 3, TokensToday: 1200}, nil
		},
		ConfigReload: func() reload.Status { return reload.Status{At: start.Add(-time.Minute), OK: false} },
		HooksReload:  func() reload.Status { return reload.Status{At: start.Add(-time.Hour), OK: true} },
		Metrics:      reg,
		Now:          func() time.Time { return now },
	})
	now = now.Add(10 * time.Second)
	reqs.WithLabelValues("alpha", "gpt-4o", "routed").Add(10)
	res, body := render(t, p, http.MethodGet)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("content-type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("content-type"))
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`id="requests-total" data-value="24"`,
		`id="errors-total" data-value="3"`,
		`id="tokens-total" data-value="140"`,
		`id="request-rate">1.00<`, // 10 requests in 10s
		`requests/s over 10s`,
		`<tr data-provider="alpha">`,
		`data-metric="failed-attempts" data-value="3"`,
		`https://alpha.example:8443`,
		`ejected until 10:00:30 UTC (in 20s)`,
		`(2 failed in a row)`,
		`POOL_KEY_A until 10:00:15 UTC`,
		`<td>gpt-4o</td><td>alpha</td><td>pool as claude-x</td>`,
		`data-key="team-a" data-budget="requests this minute"`,
		`data-spent="3"`, `data-left="7"`,
		`data-spent="1200"`, `data-left="0"`, // over the budget: nothing left, never negative
		`data-metric="tokens" data-value="140"`,
		`no budget`,
		`refused: the running config is older than the file`,
		`Budgets are counted in this process.`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, secret := range []string{providerSecret, poolSecret, clientSecret} {
		if strings.Contains(body, secret) {
			t.Errorf("the page shows a credential (%s)", secret)
		}
	}
	// No external asset and no script: nothing is fetched from anywhere.
	if m := regexp.MustCompile(`(?i)<script|src=|href=|@import|url\(`).FindString(body); m != "" {
		t.Errorf("the page loads something: %q", m)
	}
	if csp := res.Header.Get("content-security-policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("content-security-policy %q", csp)
	}
}

// TestPageReadOnly: only GET and HEAD are answered.
func TestPageReadOnly(t *testing.T) {
	t.Parallel()
	reg, _, _ := testCounters(t)
	p := New(Sources{Router: func() *routing.Router { return testRouter(t) }, Metrics: reg})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if res, _ := render(t, p, m); res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /: %d, want 405", m, res.StatusCode)
		}
	}
	if res, _ := render(t, p, http.MethodHead); res.StatusCode != 200 {
		t.Errorf("HEAD /: %d", res.StatusCode)
	}
}

// TestPageBudgetsUnread: when the budgets cannot be read (the rate-limit
// service is down) the page shows the limits, says so, and still renders.
func TestPageBudgetsUnread(t *testing.T) {
	t.Parallel()
	reg, _, _ := testCounters(t)
	p := New(Sources{Router: func() *routing.Router { return testRouter(t) }, Metrics: reg, SharedBudgets: true,
		Spent: func(context.Context, string, limits.Limits) (limits.Usage, error) {
			return limits.Usage{}, errors.New("rate-limit service unreachable")
		}})
	res, body := render(t, p, http.MethodGet)
	if res.StatusCode != 200 || !strings.Contains(body, "Some budgets could not be read") || !strings.Contains(body, "counted in the rate-limit service") || strings.Contains(body, "data-spent") {
		t.Errorf("with the budgets unreadable: %d\n%s", res.StatusCode, body)
	}
	if !strings.Contains(body, `id="request-rate">—<`) {
		t.Error("a first render at once should show no rate yet")
	}
}

// TestPageMCP: the MCP servers are listed with their address (never a
// query, which may hold a token) and their tool calls and refusals.
func TestPageMCP(t *testing.T) {
	t.Parallel()
	cfg, err := config.Decode([]byte(`
providers: [{name: p, url: 'http://127.0.0.1:9', schema: openai}]
routes: [{model: "*", provider: p}]
mcp_servers:
  - {name: github, url: 'https://mcp.example:8443/mcp?token=SECRET-in-query'}
  - {name: db, url: 'http://127.0.0.1:9/mcp'}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.Compile(cfg, config.Env{Getenv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mcpCallsMetric}, []string{"server", "tool", "key", "outcome"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mcpRefusedMetric}, []string{"server", "reason"})
	reg.MustRegister(calls, refused)
	calls.WithLabelValues("github", "search", "a", "ok").Add(5)
	calls.WithLabelValues("github", "", "a", "refused").Add(2)
	refused.WithLabelValues("github", "tool_not_allowed").Add(2)
	_, body := render(t, New(Sources{Router: func() *routing.Router { return r }, Metrics: reg}), http.MethodGet)
	for _, want := range []string{
		`<tr data-mcp="github"><td>github</td><td>https://mcp.example:8443/mcp</td>`,
		`data-metric="calls" data-value="7"`, `data-metric="refused" data-value="2"`,
		`<tr data-mcp="db"><td>db</td><td>http://127.0.0.1:9/mcp</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "SECRET-in-query") {
		t.Error("the page shows the server's query")
	}
}
