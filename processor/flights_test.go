package processor

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	"google.golang.org/grpc/metadata"

	"switchyard/envoy"
	"switchyard/routing"
)

// flightsConfigYAML counts usage and adds a route with a fallback to the
// test config.
var flightsConfigYAML = strings.Replace(testConfigYAML, "routes:\n",
	"routes:\n  - model: smart\n    provider: openai\n    fallbacks: [{provider: azure, model: az-model}]\n", 1) +
	"usage: {enabled: true}\n"

// flightCase is one request of an interleaving: its kind (counted,
// translated, with a fallback), the tokens its provider reports and what
// its streams sent back.
type flightCase struct {
	kind           int // 0 counted (team-a), 1 translated (team-b), 2 fallback, counted (team-b)
	input, output  int
	id             string // the flight id its decision handed Envoy
	answer         string // what the client gets of the answer, when rewritten
	steps, stepped int    // its streams after the decision, and how many ran
}

func (c *flightCase) key() string { return [...]string{"team-a", "team-b", "team-b"}[c.kind] }

// decide runs the request's router-level stream; every request sends the
// same x-request-id.
func (c *flightCase) decide(t testing.TB, s *Server) {
	model := [...]string{"gpt-4o", "claude-sonnet", "smart"}[c.kind]
	key := [...]string{keyTeamA, keyTeamB, keyTeamB}[c.kind]
	out := run(t, s, script(fullDuplex, append(post("/v1/chat/completions", bearer(key)...), "x-request-id", "same"),
		`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)...)
	if c.id = sentFlight(out); c.id == "" {
		t.Fatalf("kind %d: no flight id in %v", c.kind, out)
	}
}

// next runs the request's next stream after the decision: the answer's, or
// an attempt's.
func (c *flightCase) next(t testing.TB, s *Server) {
	c.stepped++
	switch {
	case c.kind == 0:
		c.respond(t, s, true, `{"id":"x","object":"chat.completion","model":"gpt-4o","choices":[],"usage":`+
			fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d}}`, c.input, c.output))
	case c.kind == 1:
		c.respond(t, s, false, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",`+
			`"content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",`+
			fmt.Sprintf(`"usage":{"input_tokens":%d,"output_tokens":%d}}`, c.input, c.output))
	case c.stepped == 1:
		c.attempt(t, s, 1, "503", "")
	default:
		c.attempt(t, s, 2, "200", `{"id":"x","object":"chat.completion","model":"az-model","choices":[],"usage":`+
			fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d}}`, c.input, c.output))
	}
}

func answerHeaders(status string) *extprocv3.HttpHeaders {
	return &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":status", RawValue: []byte(status)}, {Key: "content-type", RawValue: []byte("application/json")}}}}
}

// respond runs a response cluster's stream: observed, or translated.
func (c *flightCase) respond(t testing.TB, s *Server, observed bool, body string) {
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseResponse))
	st := newFakeStream(ctx,
		&extprocv3.ProcessingRequest{MetadataContext: flightMetadata(c.id), ObservabilityMode: observed,
			Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: answerHeaders("200")}},
		&extprocv3.ProcessingRequest{ObservabilityMode: observed, Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}})
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	if !observed && len(st.sent) == 2 {
		c.answer = string(st.sent[1].GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	}
}

// attempt runs attempt n's upstream stream; the one that answers reads its
// body (counted).
func (c *flightCase) attempt(t testing.TB, s *Server, n int, status, body string) {
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseUpstream))
	msgs := attemptScript(n, c.id, `{"model":"smart","messages":[]}`, status)
	msgs[len(msgs)-1].Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: answerHeaders(status)}
	if body != "" {
		msgs = append(msgs, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}})
	}
	if err := s.Process(newFakeStream(ctx, msgs...)); err != nil {
		t.Fatal(err)
	}
}

// keyTokens sums a key's input and output tokens over every series.
func keyTokens(t testing.TB, reg *prometheus.Registry, key string) float64 {
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "switchyard_tokens_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["key"] == key && (labels["type"] == "input" || labels["type"] == "output") {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// checkFlights runs requests that all send one x-request-id through their
// router-level, attempt and response streams in the order schedule picks
// (each request's own streams in their order), then checks each got its own
// answer and each key was charged exactly its requests' tokens.
func checkFlights(t *testing.T, router *routing.Router, schedule []byte) {
	reg := prometheus.NewRegistry()
	s := New(Options{Router: func() *routing.Router { return router }, Metrics: NewMetrics(reg)})
	cases := make([]*flightCase, 6)
	want := map[string]float64{}
	for i := range cases {
		c := &flightCase{kind: i % 3, input: 10 + i, output: 100 + 7*i, steps: 1}
		if c.kind == 2 {
			c.steps = 2
		}
		cases[i] = c
		want[c.key()] += float64(c.input + c.output)
	}
	// Every decision may come before any answer: the order of the rest is
	// the schedule's.
	for _, c := range cases {
		c.decide(t, s)
	}
	for i := 0; ; i++ {
		var live []*flightCase
		for _, c := range cases {
			if c.stepped < c.steps {
				live = append(live, c)
			}
		}
		if len(live) == 0 {
			break
		}
		pick := 0
		if len(schedule) > 0 {
			pick = int(schedule[i%len(schedule)]) % len(live)
		}
		live[pick].next(t, s)
	}
	for _, c := range cases {
		if c.kind != 1 {
			continue
		}
		if gjson.Get(c.answer, "object").String() != "chat.completion" || gjson.Get(c.answer, "model").String() != "claude-sonnet" ||
			gjson.Get(c.answer, "usage.prompt_tokens").Int() != int64(c.input) {
			t.Errorf("translated request with %d input tokens got %s", c.input, c.answer)
		}
	}
	for key, w := range want {
		if got := keyTokens(t, reg, key); got != w {
			t.Errorf("key %s charged %v tokens, want %v (schedule %v)", key, got, w, schedule)
		}
	}
	s.flights.mu.Lock()
	defer s.flights.mu.Unlock()
	for id, f := range s.flights.flights {
		if f.attempts == nil || f.ended.IsZero() {
			t.Errorf("flight %s outlived its request: %+v", id, f)
		}
	}
}

// FuzzFlightInterleavings: whatever the order of the streams of requests
// that share a client x-request-id, each request gets its own plan.
func FuzzFlightInterleavings(f *testing.F) {
	router := compileRouter(f, flightsConfigYAML)
	f.Add([]byte{})
	f.Add([]byte{5, 4, 3, 2, 1, 0})
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, schedule []byte) {
		checkFlights(t, router, schedule)
	})
}

// TestFlightsConcurrent: the same requests, each on its own goroutine from
// decision to answer (run with -race).
func TestFlightsConcurrent(t *testing.T) {
	t.Parallel()
	router := compileRouter(t, flightsConfigYAML)
	reg := prometheus.NewRegistry()
	s := New(Options{Router: func() *routing.Router { return router }, Metrics: NewMetrics(reg)})
	want := map[string]float64{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 60 {
		c := &flightCase{kind: i % 3, input: 10 + i, output: 100 + 7*i, steps: 1 + i%3/2}
		want[c.key()] += float64(c.input + c.output)
		wg.Go(func() {
			c.decide(t, s)
			for c.stepped < c.steps {
				c.next(t, s)
			}
			if c.kind == 1 && gjson.Get(c.answer, "usage.prompt_tokens").Int() != int64(c.input) {
				mu.Lock()
				t.Errorf("translated request with %d input tokens got %s", c.input, c.answer)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for key, w := range want {
		if got := keyTokens(t, reg, key); got != w {
			t.Errorf("key %s charged %v tokens, want %v", key, got, w)
		}
	}
}

// TestRetryAfterAnswerReadsTheAnswer: an attempt reset right after its 200
// (no body: Envoy retries it, nothing reached the client) leaves the
// request's answer to the next attempt, which counts the tokens of the
// answer the client gets.
func TestRetryAfterAnswerReadsTheAnswer(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r := compileRouter(t, flightsConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(reg)})
	c := &flightCase{kind: 2}
	c.decide(t, s)
	c.attempt(t, s, 1, "200", "")
	before := keyTokens(t, reg, "team-b")
	c.attempt(t, s, 2, "200", `{"id":"x","object":"chat.completion","model":"az-model","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":5000}}`)
	if got := keyTokens(t, reg, "team-b") - before; got != 6000 {
		t.Errorf("the answer the client got counted %v tokens, want 6000", got)
	}
}

// TestRetryAfterAnswerTranslates: so does a translated request's: the
// chat client gets the Messages answer of the attempt after the reset
// translated.
func TestRetryAfterAnswerTranslates(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(testConfigYAML, "routes:\n",
		"routes:\n  - model: smart\n    provider: anthropic\n    rewrite_model: claude-sonnet-4-5\n    fallbacks: [{provider: anthropic, model: claude-haiku-4-5}]\n", 1)
	r := compileRouter(t, cfg)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(nil)})
	c := &flightCase{id: sentFlight(run(t, s, script(fullDuplex, post("/v1/chat/completions", bearer(keyTeamB)...),
		`{"model":"smart","messages":[{"role":"user","content":"hi"}]}`)...))}
	c.attempt(t, s, 1, "200", "")
	ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs(envoy.PhaseMetadataKey, envoy.PhaseUpstream))
	msgs := attemptScript(2, c.id, `{"model":"smart","messages":[]}`, "200")
	msgs[len(msgs)-1].Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: answerHeaders("200")}
	msgs = append(msgs, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"hi"}],` +
			`"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":20}}`), EndOfStream: true}}})
	st := newFakeStream(ctx, msgs...)
	if err := s.Process(st); err != nil {
		t.Fatal(err)
	}
	got := st.sent[len(st.sent)-1].GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if gjson.GetBytes(got, "object").Str != "chat.completion" {
		t.Errorf("the chat client got %q, want the answer translated", got)
	}
}
