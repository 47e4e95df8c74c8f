package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// spendPrices prices the mock's models: $100 per million input tokens and
// $300 per million output tokens, so that one small answer costs whole
// micro-dollars (each token 100 or 300 of them).
const spendPrices = "prices:\n  - {model: \"mock-*\", input: 100, output: 300}\n"

func spendConfig(t testing.TB, mockURL, limits string, rls *rateLimitService) string {
	return tokensConfig(t, mockURL, limits, rls) + spendPrices
}

const costSeries = `switchyard_cost_usd_total{key="team-t",model="mock-*",provider="mock"}`

// waitMetricNear waits until series is want, give or take float rounding.
func waitMetricNear(t *testing.T, g *gateway, series string, want float64) {
	t.Helper()
	waitMetricWithin(t, g, series, want, 5*time.Second)
}

// abandonedWithin bounds the wait for an abandoned stream's charge: Envoy
// holds an observing filter's ext_proc stream open for its deferred close
// (5 s) after the client goes away, and extproc counts the answer when that
// stream ends.
const abandonedWithin = 15 * time.Second

func waitMetricWithin(t *testing.T, g *gateway, series string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, _ := metricValue(g.metrics(t), series)
		if math.Abs(v-want) < 1e-9 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v\n%s", series, v, want, grep(g.metrics(t), "switchyard_"))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestSpendAcrossReplicas: two gateways share one rate-limit service and
// one Redis; a key with usd_per_day is charged the mock's reported usage
// times the price table on whichever replica answers, and once the budget
// is spent both refuse it with 429 in the client API's shape.
func TestSpendAcrossReplicas(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	rls := startRateLimit(t, redis)
	mock := startMock(t)
	opts := gatewayOptions{extraEnv: []string{tokensKeyEnv + "=" + tokensKey}}
	a := startGateway(t, spendConfig(t, mock.URL, "{usd_per_day: 1000}", rls), opts)
	b := startGateway(t, spendConfig(t, mock.URL, "{usd_per_day: 1000}", rls), opts)

	// One answer: its cost is its reported usage at the table's prices.
	r := a.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), tokensBody)
	if r.status != 200 {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	u := reportedUsage(t, r.body)
	if u["input"] == 0 || u["output"] == 0 {
		t.Fatalf("the mock reported %v", u)
	}
	cost := (u["input"]*100 + u["output"]*300) / 1e6
	waitMetricNear(t, a, costSeries, cost)

	// A budget of 2.5 answers, 1 spent: two more pass, on either replica,
	// then both refuse.
	budget := 2.5 * cost
	for _, gw := range []*gateway{a, b} {
		reloads := gw.metricOrFail(t, `switchyard_config_reloads_total{result="success"}`)
		replaceFile(t, gw.configPath, spendConfig(t, mock.URL, fmt.Sprintf("{usd_per_day: %v}", budget), rls))
		waitMetric(t, gw, `switchyard_config_reloads_total{result="success"}`, reloads+1)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	var got []string
	spent := map[*gateway]float64{a: cost} // each replica's cost metric
	for i, gw := range []*gateway{b, a, b, a} {
		r := gw.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), tokensBody)
		got = append(got, fmt.Sprintf("%s:%d", "ba"[i%2:i%2+1], r.status))
		switch r.status {
		case 200:
			// Charged before the next request: wait for this replica's metric.
			spent[gw] += cost
			waitMetricNear(t, gw, costSeries, spent[gw])
		case 429:
			if r.header.Get("retry-after") == "" || gjson.GetBytes(r.body, "error.code").String() != "spend_limit_exceeded" ||
				!strings.Contains(gjson.GetBytes(r.body, "error.message").String(), "spend limit of $") {
				t.Errorf("429 %v %s", r.header, r.body)
			}
		}
	}
	if !time.Now().UTC().Truncate(24 * time.Hour).Equal(day) {
		t.Fatalf("the UTC day turned during the test (%v): the budget restarted", got)
	}
	if strings.Join(got, " ") != "b:200 a:200 b:429 a:429" {
		t.Fatalf("with %v of $%v spent: %v, want two more answers then 429 on both replicas", cost, budget, got)
	}
	// A Messages client gets the refusal in Anthropic's shape.
	r = b.do(t, "POST", "/v1/messages", map[string]string{"x-api-key": tokensKey},
		`{"model":"mock-claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 429 || gjson.GetBytes(r.body, "type").String() != "error" || gjson.GetBytes(r.body, "error.type").String() != "rate_limit_error" {
		t.Errorf("over the budget on the Messages API: %d %s", r.status, r.body)
	}
	for name, gw := range map[string]*gateway{"A": a, "B": b} {
		if n := gw.metricOrFail(t, `switchyard_rate_limited_total{key="team-t",limit="usd_per_day"}`); n < 1 {
			t.Errorf("replica %s refused nothing for spend", name)
		}
	}
}

// TestSpendInProcess (one replica, the embedded limiter): the answer that
// reaches usd_per_day finishes, the next request is refused on either API,
// and the refusal says which budget and its amount.
func TestSpendInProcess(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	gw := startGateway(t, spendConfig(t, mock.URL, "{usd_per_day: 1000}", nil),
		gatewayOptions{extraEnv: []string{tokensKeyEnv + "=" + tokensKey}})
	r := gw.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), tokensBody)
	if r.status != 200 {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	u := reportedUsage(t, r.body)
	cost := (u["input"]*100 + u["output"]*300) / 1e6
	waitMetricNear(t, gw, costSeries, cost)
	// A budget of 1.5 answers, 1 spent: one more passes and goes over it.
	reloads := gw.metricOrFail(t, `switchyard_config_reloads_total{result="success"}`)
	replaceFile(t, gw.configPath, spendConfig(t, mock.URL, fmt.Sprintf("{usd_per_day: %v}", 1.5*cost), nil))
	waitMetric(t, gw, `switchyard_config_reloads_total{result="success"}`, reloads+1)
	if r := gw.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), tokensBody); r.status != 200 {
		t.Fatalf("second request, half a budget left: %d %s", r.status, r.body)
	}
	waitMetricNear(t, gw, costSeries, 2*cost)
	r = gw.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), tokensBody)
	want := fmt.Sprintf("spend limit of $%v per day reached", 1.5*cost)
	if r.status != 429 || gjson.GetBytes(r.body, "error.type").String() != "rate_limit_error" ||
		!strings.Contains(gjson.GetBytes(r.body, "error.message").String(), want) {
		t.Errorf("over the budget: %d %s, want 429 saying %q", r.status, r.body, want)
	}
}

// TestAbandonedStreamsCharged: a client that goes away mid-stream is still
// charged. A Messages stream is charged the input tokens its message_start
// reported and the output so far: at least the deltas the client read, not
// the output of 1 message_start reports; a chat stream, which reports usage
// only at its end, is charged an estimate. Both count as estimated.
func TestAbandonedStreamsCharged(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	gw := startGateway(t, spendConfig(t, mock.URL, "{usd_per_day: 1000}", nil),
		gatewayOptions{extraEnv: []string{tokensKeyEnv + "=" + tokensKey}})

	// abandon opens a stream of 40 chunks 100ms apart, reads until the
	// line marker arrives, and goes away.
	abandon := func(path, body string, headers map[string]string, marker string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "POST", gw.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-mock-chunks", "40")
		req.Header.Set("x-mock-interval-ms", "100")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), marker) {
				return lines // the deferred cancel resets the stream
			}
		}
		t.Fatalf("%s: the stream ended before %q: %v", path, marker, sc.Err())
		return nil
	}

	t.Run("messages", func(t *testing.T) {
		lines := abandon("/v1/messages", `{"model":"mock-claude","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}`,
			map[string]string{"x-api-key": tokensKey}, "content_block_delta")
		var input, deltas float64
		for _, l := range lines {
			if d, ok := strings.CutPrefix(l, "data: "); ok && gjson.Get(d, "type").String() == "message_start" {
				input = gjson.Get(d, "message.usage.input_tokens").Float()
			}
			if l == "event: content_block_delta" {
				deltas++
			}
		}
		if input == 0 || deltas == 0 {
			t.Fatalf("message_start reported no input tokens, or no delta came: %v", lines)
		}
		left := time.Now()
		series := `switchyard_tokens_total{key="team-t",model="mock-claude*",provider="mock-anthropic",type="%s"}`
		waitMetricWithin(t, gw, fmt.Sprintf(series, "input"), input, abandonedWithin)
		t.Logf("charged %v after the client left", time.Since(left).Round(10*time.Millisecond))
		m := gw.metrics(t)
		// An event a token: the deltas read, and the events around them
		// that reached extproc before the stream was reset (40 at most).
		output, _ := metricValue(m, fmt.Sprintf(series, "output"))
		if output < deltas || output > 45 {
			t.Errorf("charged %v output tokens; the client read %v deltas of at most 40", output, deltas)
		}
		waitMetricNear(t, gw, `switchyard_cost_usd_total{key="team-t",model="mock-claude*",provider="mock-anthropic"}`, (input*100+output*300)/1e6)
		if v, _ := metricValue(m, `switchyard_usage_estimated_total{model="mock-claude*",provider="mock-anthropic"}`); v != 1 {
			t.Errorf("%v Messages streams estimated, want 1: its output was", v)
		}
	})

	t.Run("chat", func(t *testing.T) {
		body := `{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"tell me a long story, and take your time about it"}]}`
		abandon("/v1/chat/completions", body, bearer(tokensKey), `"content"`)
		waitMetricWithin(t, gw, `switchyard_usage_estimated_total{model="mock-*",provider="mock"}`, 1, abandonedWithin)
		m := gw.metrics(t)
		in, _ := metricValue(m, `switchyard_tokens_total{key="team-t",model="mock-*",provider="mock",type="input"}`)
		// The body sent upstream asks for usage too: a little longer than
		// the client's.
		if in < float64(len(body)/4) || in > float64(len(body)/4+20) {
			t.Errorf("estimated input %v tokens, want about %d (the body's bytes / 4)", in, len(body)/4)
		}
		if c, _ := metricValue(m, costSeries); c <= 0 {
			t.Errorf("the estimate cost nothing: %v", c)
		}
	})
}
