package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/loadtest/mockllm"
)

// tokenCounts are the tokens a client saw reported, by metric type.
type tokenCounts map[string]float64

// reportedUsage reads the usage a response carries, as the client got it:
// a JSON body's usage, or a stream's usage events, in either API.
func reportedUsage(t *testing.T, body []byte) tokenCounts {
	t.Helper()
	got := tokenCounts{}
	add := func(u gjson.Result) {
		for field, typ := range map[string]string{
			"prompt_tokens": "input", "completion_tokens": "output", "input_tokens": "input", "output_tokens": "output",
			"cache_read_input_tokens": "cache_read", "cache_creation_input_tokens": "cache_creation",
		} {
			if v := u.Get(field); v.Exists() {
				got[typ] = v.Float() // later events carry the running total
			}
		}
	}
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("event:")) && !bytes.HasPrefix(bytes.TrimSpace(body), []byte("data:")) {
		add(gjson.GetBytes(body, "usage"))
		return got
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		for _, path := range []string{"usage", "message.usage", "response.usage"} {
			if u := gjson.Get(data, path); u.IsObject() {
				add(u)
			}
		}
	}
	return got
}

// TestUsageCounted: with usage on, switchyard_tokens_total grows by exactly
// what the provider reported, for JSON and streamed answers of the chat,
// Responses and Messages APIs; the client still gets every byte.
func TestUsageCounted(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	gw := startGateway(t, exampleConfig(t, mock.URL)+"\nusage: {enabled: true}\n", gatewayOptions{})
	chat := `{"model":"mock-gpt","messages":[{"role":"user","content":"count my tokens please"}]%s}`
	resp := `{"model":"mock-gpt","input":"count my tokens please"%s}`
	msgs := `{"model":"mock-claude","max_tokens":50,"messages":[{"role":"user","content":"count my tokens please"}]%s}`
	tests := []struct {
		name, path, body, provider, model string
	}{
		{"chat", "/v1/chat/completions", fmt.Sprintf(chat, ""), "mock", "mock-*"},
		{"chat stream", "/v1/chat/completions", fmt.Sprintf(chat, `,"stream":true`), "mock", "mock-*"},
		{"chat stream with usage asked", "/v1/chat/completions", fmt.Sprintf(chat, `,"stream":true,"stream_options":{"include_usage":true}`), "mock", "mock-*"},
		{"responses", "/v1/responses", fmt.Sprintf(resp, ""), "mock", "mock-*"},
		{"responses stream", "/v1/responses", fmt.Sprintf(resp, `,"stream":true`), "mock", "mock-*"},
		{"messages", "/v1/messages", fmt.Sprintf(msgs, ""), "mock-anthropic", "mock-claude*"},
		{"messages stream", "/v1/messages", fmt.Sprintf(msgs, `,"stream":true`), "mock-anthropic", "mock-claude*"},
	}
	for _, tt := range tests { // one at a time: they share the series
		series := func(typ string) string {
			return fmt.Sprintf(`switchyard_tokens_total{key="",model=%q,provider=%q,type=%q}`, tt.model, tt.provider, typ)
		}
		before := map[string]float64{}
		m := gw.metrics(t)
		for _, typ := range []string{"input", "output"} {
			before[typ], _ = metricValue(m, series(typ))
		}
		r := gw.do(t, "POST", tt.path, nil, tt.body)
		if r.status != 200 {
			t.Fatalf("%s: status %d: %s", tt.name, r.status, r.body)
		}
		want := reportedUsage(t, r.body)
		if want["input"] == 0 || want["output"] == 0 {
			t.Fatalf("%s: the client saw no usage in %s", tt.name, r.body)
		}
		for _, typ := range []string{"input", "output"} {
			waitMetric(t, gw, series(typ), before[typ]+want[typ])
			if got, _ := metricValue(gw.metrics(t), series(typ)); got != before[typ]+want[typ] {
				t.Errorf("%s: %s = %v, want %v", tt.name, series(typ), got, before[typ]+want[typ])
			}
		}
	}
	if got, _ := metricValue(gw.metrics(t), `switchyard_request_duration_seconds_count{model="mock-*",provider="mock"}`); got != 5 {
		t.Errorf("request duration observations for mock-*: %v, want 5", got)
	}
}

// TestUsageChunksFlow: counting a stream's tokens holds no chunk back — the
// client reads the first chunk while the provider has yet to send the last —
// and changes none: the client gets the provider's bytes.
func TestUsageChunksFlow(t *testing.T) {
	t.Parallel()
	const interval = 150 * time.Millisecond
	h := mockllm.New(mockllm.Options{Latency: -1, StreamChunks: 4, ChunkInterval: interval})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	gw := startGateway(t, exampleConfig(t, srv.URL)+"\nusage: {enabled: true}\n", gatewayOptions{})
	for _, tt := range []struct{ path, body, upstreamBody string }{
		// The gateway asks a counted chat stream for its usage (README).
		{"/v1/chat/completions", `{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`},
		{"/v1/messages", `{"model":"mock-claude","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, ""},
	} {
		req, _ := http.NewRequest("POST", gw.url+tt.path, strings.NewReader(tt.body))
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(res.Body)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: reading the first line: %v", tt.path, err)
		}
		first := time.Since(start)
		rest, _ := io.ReadAll(br)
		res.Body.Close()
		total := time.Since(start)
		if total-first < 2*interval {
			t.Errorf("%s: first line after %v, whole stream after %v: the stream was held back", tt.path, first, total)
		}
		if !bytes.Contains(rest, []byte("usage")) {
			t.Errorf("%s: the stream lost its usage: %s", tt.path, rest)
		}
		// Byte for byte what the provider sent (but for the mock's
		// sequence numbers in ids).
		upstreamBody := cmp.Or(tt.upstreamBody, tt.body)
		direct, err := http.Post(srv.URL+tt.path, "application/json", strings.NewReader(upstreamBody))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(direct.Body)
		direct.Body.Close()
		mockSeq := regexp.MustCompile(`mock\d+`)
		if got := append([]byte(line), rest...); !bytes.Equal(mockSeq.ReplaceAll(want, nil), mockSeq.ReplaceAll(got, nil)) {
			t.Errorf("%s: the client's stream differs from the provider's:\n%s\nwant\n%s", tt.path, got, want)
		}
	}
}

// TestUsageCountedWithFallbacks: a counted request through a route with
// fallbacks is counted once, for the provider whose attempt answered, and
// charged to its key's budget.
func TestUsageCountedWithFallbacks(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	down := upstreamFunc(t, "down", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(503)
		fmt.Fprint(w, `{"error":{"message":"down","type":"server_error","param":null,"code":null}}`)
	})
	cfg := fmt.Sprintf(`providers:
  - {name: down, url: "http://%s", schema: openai}
  - {name: mock, url: %q, schema: openai}
routes:
  - model: fb
    provider: down
    fallbacks: [{provider: mock, model: mock-gpt}]
client_keys:
  - {name: team-t, key_env: %s, limits: {tokens_per_day: 1}}
`, down.addr, mock.URL, tokensKeyEnv)
	gw := startGateway(t, cfg, gatewayOptions{extraEnv: []string{tokensKeyEnv + "=" + tokensKey}})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"fb","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)
		r := gw.do(t, "POST", "/v1/chat/completions", bearer(tokensKey), body)
		if !stream {
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			u := reportedUsage(t, r.body)
			for typ, n := range u {
				waitMetric(t, gw, fmt.Sprintf(`switchyard_tokens_total{key="team-t",model="fb",provider="mock",type=%q}`, typ), n)
			}
			continue
		}
		// The budget of one token was spent by the first answer.
		if r.status != 429 || r.header.Get("x-ratelimit-limit-tokens") != "1" {
			t.Errorf("after the budget was spent through a fallback: %d %s", r.status, r.body)
		}
	}
	if v, _ := metricValue(gw.metrics(t), `switchyard_tokens_total{key="team-t",model="fb",provider="down",type="input"}`); v != 0 {
		t.Errorf("the failed attempt was counted: %v input tokens", v)
	}
}
