package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRequestsPerMinute: a key limited to N requests per minute gets
// exactly N through, then 429 in the API's shape with Retry-After; a reload
// raising the limit applies at once.
func TestRequestsPerMinute(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	base := standardConfig(a, b, "")
	limited := strings.Replace(base, "  - name: team-a\n    key_env: SWY_TEST_CLIENT_A\n",
		"  - name: team-a\n    key_env: SWY_TEST_CLIENT_A\n    limits: {requests_per_minute: 5}\n", 1)
	if limited == base {
		t.Fatal("the standard config changed: team-a not found")
	}
	gw := startGateway(t, limited, gatewayOptions{extraEnv: testEnv})
	// The limit counts per calendar minute: start with most of one left.
	for time.Now().Second() > 40 {
		time.Sleep(200 * time.Millisecond)
	}
	minute := time.Now().Truncate(time.Minute)
	statuses := func(n int, path, body string, headers map[string]string) []int {
		var out []int
		for i := 0; i < n; i++ {
			r := gw.do(t, "POST", path, headers, body)
			out = append(out, r.status)
			if r.status == 429 {
				ra, err := strconv.Atoi(r.header.Get("retry-after"))
				if err != nil || ra < 1 || ra > 60 || r.header.Get("x-ratelimit-limit-requests") == "" {
					t.Errorf("429 headers: retry-after %q, limit %q", r.header.Get("retry-after"), r.header.Get("x-ratelimit-limit-requests"))
				}
				if !strings.Contains(string(r.body), "rate_limit") {
					t.Errorf("429 body %s", r.body)
				}
			}
		}
		return out
	}
	got := statuses(7, "/v1/chat/completions", goodBody, bearer(clientKeyA))
	if fmtInts(got) != "[200 200 200 200 200 429 429]" {
		t.Errorf("statuses %v, want five admitted then 429", got)
	}
	anth := statuses(1, "/v1/messages", `{"model":"claude-3","max_tokens":5,"messages":[]}`, map[string]string{"x-api-key": clientKeyA})
	if anth[0] != 429 {
		t.Errorf("anthropic request over the limit: %v", anth)
	}
	if other := gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyB), goodBody); other.status != 200 {
		t.Errorf("another key is limited too: %d", other.status)
	}

	reloads := gw.metricOrFail(t, `switchyard_config_reloads_total{result="success"}`)
	raised := strings.Replace(limited, "requests_per_minute: 5", "requests_per_minute: 8", 1)
	replaceFile(t, gw.configPath, raised)
	waitMetric(t, gw, `switchyard_config_reloads_total{result="success"}`, reloads+1)
	got = statuses(4, "/v1/chat/completions", goodBody, bearer(clientKeyA))
	if time.Now().Truncate(time.Minute) != minute {
		t.Fatalf("the test took over 20 s, so the minute turned and the counts restarted (%v)", got)
	}
	if fmtInts(got) != "[200 200 200 429]" {
		t.Errorf("after raising the limit to 8: %v, want three more then 429", got)
	}
}

func fmtInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(s, " ") + "]"
}
