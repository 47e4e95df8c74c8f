package processor

import (
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/metadata"

	"switchyard/config"
	"switchyard/envoy"
	"switchyard/internal/testkit"
	"switchyard/limits"
	"switchyard/routing"
)

// spendRun sends one counted chat request of model and then its answer's
// body chunks to the response stream; eos ends the answer, else the stream
// is cut after the chunks (the client went away). It returns the request
// log line and the body sent upstream.
func spendRun(t *testing.T, s *Server, logs *testkit.SyncBuffer, model string, eos bool, chunks ...string) (map[string]any, string) {
	t.Helper()
	body := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hello there"}]}`
	sent := run(t, s, script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamB)...), body)...)
	upstream := string(sent[1].GetRequestBody().GetResponse().GetBodyMutation().GetStreamedResponse().GetBody())
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
	msgs := []*extprocv3.ProcessingRequest{{ObservabilityMode: true, MetadataContext: flightMetadata(sentFlight(sent)),
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("text/event-stream")}}}}}}}
	for i, c := range chunks {
		msgs = append(msgs, &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(c), EndOfStream: eos && i == len(chunks)-1}}})
	}
	if err := s.Process(newFakeStream(ctx, msgs...)); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err == nil && rec["msg"] == "routed" && rec["upstream_model"] != nil {
			return rec, upstream
		}
	}
	t.Fatalf("no request log line in:\n%s", logs.String())
	return nil, ""
}

func spendServer(t *testing.T, extra string) (*Server, *Metrics, *testkit.SyncBuffer) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	r := compileRouter(t, testConfigYAML+"usage: {enabled: true}\n"+extra)
	logs := &testkit.SyncBuffer{}
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: m,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return s, m, logs
}

const chatUsage = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n" +
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":300,\"prompt_tokens_details\":{\"cached_tokens\":1000}}}\n\ndata: [DONE]\n\n"

func TestCostOfACountedAnswer(t *testing.T) {
	t.Parallel()
	// The tier the answer says it was served at, in its usage chunk.
	atTier := func(tier string) string {
		return strings.Replace(chatUsage, `"choices":[],"usage"`, `"service_tier":"`+tier+`","choices":[],"usage"`, 1)
	}
	for _, tc := range []struct {
		name, prices, tier string
		want               float64
	}{
		// gpt-4o's shipped price: $2.50 input, $1.25 cached input, $10
		// output per million tokens. 200 input, 1000 cache read, 300 output.
		{name: "shipped", want: (200*2.5 + 1000*1.25 + 300*10) / 1e6},
		{name: "shipped, default tier", tier: "default", want: (200*2.5 + 1000*1.25 + 300*10) / 1e6},
		// At priority: $4.25, $2.125, $17.
		{name: "shipped, priority", tier: "priority", want: (200*4.25 + 1000*2.125 + 300*17) / 1e6},
		// The config's price replaces it; cache_read defaults to input.
		{name: "override", prices: "prices:\n  - {model: \"gpt-4*\", input: 1, output: 2}\n", want: (200*1 + 1000*1 + 300*2) / 1e6},
		// Priority defaults to twice the price, flex to the price.
		{name: "override, priority", prices: "prices:\n  - {model: \"gpt-4*\", input: 1, output: 2}\n", tier: "priority", want: 2 * (200*1 + 1000*1 + 300*2) / 1e6},
		{name: "override, flex", prices: "prices:\n  - {model: \"gpt-4*\", input: 1, output: 2}\n", tier: "flex", want: (200*1 + 1000*1 + 300*2) / 1e6},
		{name: "override with flex", prices: "prices:\n  - {model: \"gpt-4*\", input: 1, output: 2, flex: 0.5}\n", tier: "flex", want: 0.5 * (200*1 + 1000*1 + 300*2) / 1e6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, m, logs := spendServer(t, tc.prices)
			answer := chatUsage
			if tc.tier != "" {
				answer = atTier(tc.tier)
			}
			rec, _ := spendRun(t, s, logs, "gpt-4o", true, answer)
			got := testutil.ToFloat64(m.usage.cost.WithLabelValues("team-b", "openai", "gpt-4o"))
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("switchyard_cost_usd_total = %v, want %v", got, tc.want)
			}
			if c, _ := rec["cost_usd"].(float64); math.Abs(c-tc.want) > 1e-12 || rec["unpriced"] != nil || rec["usage_estimated"] != nil {
				t.Errorf("log line cost_usd %v unpriced %v estimated %v, want %v", rec["cost_usd"], rec["unpriced"], rec["usage_estimated"], tc.want)
			}
			if tier, _ := rec["service_tier"].(string); tier != tc.tier {
				t.Errorf("log line service_tier %q, want %q", tier, tc.tier)
			}
		})
	}
}

func TestUnpricedModelCostsNothing(t *testing.T) {
	t.Parallel()
	s, m, logs := spendServer(t, "")
	rec, _ := spendRun(t, s, logs, "fast", true, chatUsage) // llama3.2: no price
	if got := testutil.ToFloat64(m.usage.unpriced.WithLabelValues("ollama", "fast")); got != 1 {
		t.Errorf("unpriced = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.usage.cost); n != 0 {
		t.Errorf("%d cost series for an unpriced model", n)
	}
	if rec["unpriced"] != true || rec["cost_usd"] != nil {
		t.Errorf("log line unpriced %v cost_usd %v", rec["unpriced"], rec["cost_usd"])
	}
}

// A chat stream cut before its usage chunk: the input is estimated from the
// body sent, the output from the events received.
func TestAbandonedStreamWithoutUsageIsEstimated(t *testing.T) {
	t.Parallel()
	s, m, logs := spendServer(t, "")
	chunk := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n"
	rec, upstream := spendRun(t, s, logs, "gpt-4o", false, chunk+chunk, chunk+"data: {\"cho")
	in := float64((len(upstream) + 3) / 4)
	for typ, want := range map[string]float64{"input": in, "output": 4} { // 3 events and the cut one
		if got := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "openai", "gpt-4o", typ)); got != want {
			t.Errorf("%s tokens = %v, want %v", typ, got, want)
		}
	}
	if got := testutil.ToFloat64(m.usage.estimated.WithLabelValues("openai", "gpt-4o")); got != 1 {
		t.Errorf("estimated = %v, want 1", got)
	}
	if want := (in*2.5 + 4*10) / 1e6; math.Abs(testutil.ToFloat64(m.usage.cost.WithLabelValues("team-b", "openai", "gpt-4o"))-want) > 1e-12 {
		t.Errorf("cost, want %v", want)
	}
	if rec["usage_estimated"] != true {
		t.Errorf("log line without usage_estimated: %v", rec)
	}
}

// A stream cut after the provider reported some usage is charged what it
// reported, nothing estimated.
func TestAbandonedStreamKeepsReportedUsage(t *testing.T) {
	t.Parallel()
	s, m, logs := spendServer(t, "")
	start := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":2000,\"output_tokens\":1}}}\n\n"
	// An OpenAI-shaped request to an Anthropic model is translated; the
	// answer's usage is read from Anthropic's events all the same.
	_, _ = spendRun(t, s, logs, "claude-sonnet", false, start)
	if got := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "anthropic", "claude-sonnet", "input")); got != 2000 {
		t.Errorf("input tokens = %v, want 2000", got)
	}
	if n := testutil.CollectAndCount(m.usage.estimated); n != 0 {
		t.Errorf("%d estimated series; the provider had reported", n)
	}
	// claude-sonnet-4-5: $3 input, $15 output per million tokens.
	if got, want := testutil.ToFloat64(m.usage.cost.WithLabelValues("team-b", "anthropic", "claude-sonnet")), (2000*3+1*15)/1e6; math.Abs(got-want) > 1e-12 {
		t.Errorf("cost %v, want %v", got, want)
	}
}

// Anthropic's writes to its 1-hour cache are counted apart and charged
// twice the input price, those to its 5-minute cache 1.25 times; both
// count as cache_creation tokens for token budgets.
func TestOneHourCacheWritesCharged(t *testing.T) {
	t.Parallel()
	s, m, logs := spendServer(t, "")
	answer := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\"," +
		"\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":100300,\"cache_read_input_tokens\":0," +
		"\"cache_creation\":{\"ephemeral_5m_input_tokens\":300,\"ephemeral_1h_input_tokens\":100000},\"output_tokens\":1}}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":5}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	rec, _ := spendRun(t, s, logs, "claude-sonnet", true, answer)
	// claude-sonnet-4-5: $3 input, $15 output, $3.75 and $6 cache writes.
	want := (10*3 + 5*15 + 300*3.75 + 100000*6) / 1e6
	if got := testutil.ToFloat64(m.usage.cost.WithLabelValues("team-b", "anthropic", "claude-sonnet")); math.Abs(got-want) > 1e-12 {
		t.Errorf("cost %v, want %v", got, want)
	}
	for typ, want := range map[string]float64{"cache_creation": 100300, "cache_creation_1h": 100000} {
		if got := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "anthropic", "claude-sonnet", typ)); got != want {
			t.Errorf("%s tokens = %v, want %v", typ, got, want)
		}
	}
	if rec["cache_creation_tokens"] != 100300.0 || rec["cache_creation_1h_tokens"] != 100000.0 {
		t.Errorf("log line cache_creation_tokens %v cache_creation_1h_tokens %v", rec["cache_creation_tokens"], rec["cache_creation_1h_tokens"])
	}
}

// A money budget's refusal: 429 in the client API's shape, Retry-After.
func TestSpendRefusal(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil)
	r := compileRouter(t, testConfigYAML)
	lim := &scriptedLimiter{d: limits.Decision{Which: limits.USDPerDay, Limit: 2_500_000, Reset: 90 * time.Minute}}
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: m, Limiter: lim})
	e := s.checkRequestLimit(t.Context(), routing.Principal{Name: "team-a", Limits: config.LimitsConfig{USDPerDay: 2.5}})
	if e == nil || e.status != 429 {
		t.Fatalf("answer %v, want 429", e)
	}
	if diff := cmp.Diff(map[string]string{"retry-after": "5400"}, headerMap(e.headers)); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	want := `{"error":{"message":"spend limit of $2.5 per day reached for key \"team-a\"; retry in 5400s","type":"rate_limit_error","param":null,"code":"spend_limit_exceeded"}}`
	if got := string(e.body("openai")); got != want {
		t.Errorf("openai body\n got %s\nwant %s", got, want)
	}
	if got := testutil.ToFloat64(m.limited.WithLabelValues("team-a", limits.USDPerDay)); got != 1 {
		t.Errorf("limited = %v, want 1", got)
	}
}

// TestAbandonedMessagesStreamOutputSoFar: a Messages stream the client
// leaves after its text, before message_delta, is charged the output so
// far (an event a token), not the 1 output token message_start reported.
func TestAbandonedMessagesStreamOutputSoFar(t *testing.T) {
	t.Parallel()
	s, m, logs := spendServer(t, "")
	var b strings.Builder
	b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n")
	for range 500 {
		b.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" word\"}}\n\n")
	}
	spendRun(t, s, logs, "claude-sonnet", false, b.String())
	in := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "anthropic", "claude-sonnet", "input"))
	out := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "anthropic", "claude-sonnet", "output"))
	if in != 20 || out < 500 {
		t.Errorf("an abandoned stream of 500 text deltas charged %v in and %v out, want the reported 20 in and at least 500 out", in, out)
	}
}

// TestBigJSONAnswerCharged: a counted JSON answer past usage.MaxJSONBody
// (an answer with logprobs) is charged the usage at its end.
func TestBigJSONAnswerCharged(t *testing.T) {
	t.Parallel()
	s, m, _ := spendServer(t, "")
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":20}`
	sent := run(t, s, script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamB)...), body)...)
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
	bodyMsg := func(b string, end bool) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: end}}}
	}
	msgs := []*extprocv3.ProcessingRequest{{ObservabilityMode: true, MetadataContext: flightMetadata(sentFlight(sent)),
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")}}}}}},
		bodyMsg(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"..."},"logprobs":{"content":[`, false)}
	chunk := strings.Repeat(`{"token":" word","logprob":-0.01,"bytes":[32,119,111,114,100],"top_logprobs":[]},`, 1000)
	for range 60 {
		msgs = append(msgs, bodyMsg(chunk, false))
	}
	msgs = append(msgs, bodyMsg(`{"token":"x","logprob":0,"bytes":[120],"top_logprobs":[]}]},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":100000,"completion_tokens":60000,"total_tokens":160000},"system_fingerprint":"fp"}`, true))
	if err := s.Process(newFakeStream(ctx, msgs...)); err != nil {
		t.Fatal(err)
	}
	in := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "openai", "gpt-4o", "input"))
	out := testutil.ToFloat64(m.usage.tokens.WithLabelValues("team-b", "openai", "gpt-4o", "output"))
	if in != 100000 || out != 60000 {
		t.Errorf("a %d-byte JSON answer was charged %v in and %v out, want 100000 and 60000", 60*len(chunk), in, out)
	}
}

// TestMoneyBudgetNeedsPrices: a key with a money budget may not run a model
// without a price, which would spend nothing against it; a key without one
// may, and a priced model passes.
func TestMoneyBudgetNeedsPrices(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(testConfigYAML, "  - name: team-b\n    key_env: KEY_TEAM_B\n", "  - name: team-b\n    key_env: KEY_TEAM_B\n    limits: {usd_per_day: 10}\n", 1)
	r := compileRouter(t, cfg)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(prometheus.NewRegistry())})
	for _, tc := range []struct {
		key, model string
		refused    bool
	}{
		{keyTeamB, "fast", true}, // llama3.2 on ollama: no price
		{keyTeamB, "gpt-4o", false},
		{keyTeamA, "fast", false}, // no money budget
	} {
		sent := run(t, s, script(fullDuplex, post("/v1/chat/completions", bearer(tc.key)...), `{"model":"`+tc.model+`","messages":[]}`)...)
		ir := sent[len(sent)-1].GetImmediateResponse()
		refused := ir != nil && ir.GetStatus().GetCode() == 403 && strings.Contains(string(ir.GetBody()), `"model_not_priced"`)
		if refused != tc.refused || (!tc.refused && ir != nil) {
			t.Errorf("%s with a key of budget %v: %v, want refused %v", tc.model, tc.key == keyTeamB, sent[len(sent)-1], tc.refused)
		}
	}
}

// TestBackgroundNeedsNoBudget: a Responses request run in the background,
// whose tokens no counted answer carries, is refused for a key with a
// budget (the summarized path too); a key without one, a foreground
// request and another API's "background" pass.
func TestBackgroundNeedsNoBudget(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(testConfigYAML, "  - name: team-b\n    key_env: KEY_TEAM_B\n", "  - name: team-b\n    key_env: KEY_TEAM_B\n    limits: {tokens_per_day: 1000}\n", 1)
	r := compileRouter(t, cfg)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(prometheus.NewRegistry())})
	for _, tc := range []struct {
		key, path, body string
		refused         bool
	}{
		{keyTeamB, "/v1/responses", `{"model":"gpt-4o","input":"hi","background":true}`, true},
		{keyTeamB, "/v1/responses", `{"model":"gpt-4o","input":"hi","background":false}`, false},
		{keyTeamB, "/v1/chat/completions", `{"model":"gpt-4o","messages":[],"background":true}`, false},
		{keyTeamA, "/v1/responses", `{"model":"gpt-4o","input":"hi","background":true}`, false},
	} {
		whole := script(fullDuplex, post(tc.path, bearer(tc.key)...), tc.body)
		for _, msgs := range [][]*extprocv3.ProcessingRequest{whole, summarized(t, whole)} {
			sent := run(t, s, msgs...)
			ir := sent[len(sent)-1].GetImmediateResponse()
			refused := ir != nil && ir.GetStatus().GetCode() == 400 && strings.Contains(string(ir.GetBody()), `"background_not_charged"`)
			if refused != tc.refused || (!tc.refused && ir != nil) {
				t.Errorf("%s %s with a budget %v: %v, want refused %v", tc.path, tc.body, tc.key == keyTeamB, sent[len(sent)-1], tc.refused)
			}
		}
	}
}
