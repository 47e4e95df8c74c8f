package processor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"switchyard/bodyscan"
	"switchyard/config"
	"switchyard/loadtest/agentbody"
	"switchyard/luahooks"
	"switchyard/routing"
)

// plannedView is what planning reads of a body: its fields but the
// conversation (which the loop guard alone reads, and a summary leaves out).
func plannedView(v fieldsView) fieldsView {
	v.Messages, v.Input, v.MessagesLast, v.InputLast = "", "", "", ""
	v.MessagesPrev, v.InputPrev = "", ""
	return v
}

// checkSummary holds bodyscan.Summary to readBody: a body it summarizes reads as
// its summary does (the same fields, or the same refusal); one it does not
// is one readBody refuses.
func checkSummary(t *testing.T, body []byte) {
	t.Helper()
	want := viewOf(readBody(body))
	summary, ok := bodyscan.Summary(nil, body)
	if !ok {
		if want.Err == "" {
			t.Fatalf("bodyscan.Summary(%q): none, but readBody accepts the body", body)
		}
		return
	}
	got := viewOf(readBody(summary))
	if diff := cmp.Diff(plannedView(want), plannedView(got)); diff != "" {
		t.Fatalf("readBody of the summary %q of %q (-body +summary):\n%s", summary, body, diff)
	}
}

func TestBodySummaryReadsAsTheBody(t *testing.T) {
	t.Parallel()
	for i, s := range bodyScanSeeds {
		t.Run(strconv.Itoa(i), func(t *testing.T) { checkSummary(t, []byte(s)) })
	}
	for _, api := range []agentbody.API{agentbody.OpenAIChat, agentbody.AnthropicMessages} {
		for _, size := range agentbody.Sizes {
			t.Run(string(api)+"/"+size.Name, func(t *testing.T) { checkSummary(t, agentBody(t, api, size.Size)) })
		}
	}
}

func TestBodySummaryIsSmallAndAppends(t *testing.T) {
	body := agentBody(t, agentbody.OpenAIChat, 256<<10)
	dst := []byte("kept")
	got, ok := bodyscan.Summary(dst, body)
	if !ok {
		t.Fatal("no summary of an agent body")
	}
	if string(got[:4]) != "kept" || len(got) > 200 {
		t.Errorf("Summary = %q, want it after %q and short", got, "kept")
	}
}

// FuzzBodySummary: whatever the body, its summary plans as the body would.
func FuzzBodySummary(f *testing.F) {
	for _, s := range bodyScanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkSummary(t, body) })
}

// TestSummaryAsksForBodyWhenPlanningReadsIt: a request the summary cannot
// plan alone is answered with a request for its body and planned on it:
// without a summary, with hooks (they read the body), with the loop guard
// (it reads the conversation, and counts each request once).
func TestSummaryAsksForBodyWhenPlanningReadsIt(t *testing.T) {
	t.Parallel()
	chat := `{"model":"gpt-4o","messages":[{"role":"user","content":"run the tests"}]}`
	t.Run("no summary", func(t *testing.T) {
		t.Parallel()
		srv := newTestServer(t, nil)
		msgs := summarized(t, script(buffered, post("/v1/chat/completions", bearer(keyTeamB)...), chat))
		msgs[0].MetadataContext = nil
		got := run(t, srv, msgs...)
		if len(got) != 2 || !proto.Equal(got[0], askedForBody()) || got[1].GetRequestBody() == nil {
			t.Errorf("responses %v, want a request for the body, then the decision on it", got)
		}
	})
	t.Run("hooks", func(t *testing.T) {
		t.Parallel()
		// The routes send hooks the answer's headers.
		asked := askedForBody()
		asked.ModeOverride.ResponseHeaderMode = filterv3.ProcessingMode_SEND
		for name, tc := range map[string]struct {
			hook string
			// atHeaders: decided on the headers from the summary, else a
			// request for the body first.
			atHeaders bool
			header    string // what the hook set on the request, as the upstream gets it
			status    int    // a refusal, or 0
		}{
			"reading the body":         {`function on_request(req) req:set_header("x-n", req.body:get("model")) end`, false, "gpt-4o", 0},
			"changing the model":       {`function on_request(req) req:set_model("gpt-4o"); req:set_header("x-n", "m") end`, false, "m", 0},
			"reaching the body hidden": {`function on_request(req) local k = "bo" .. "dy"; req:set_header("x-n", req[k]:get("model") or "none") end`, false, "gpt-4o", 0},
			"on headers and model":     {`function on_request(req) req:set_header("x-n", req.model .. "/" .. req.path) end`, true, "gpt-4o//v1/chat/completions", 0},
			"refusing on headers":      {`function on_request(req) return req:reject(403, "not for this team") end`, true, "", 403},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				set, err := luahooks.NewSet([]luahooks.Source{{Name: "h.lua", Code: []byte(tc.hook)}}, luahooks.Options{Timeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				r := compileRouter(t, testConfigYAML+"hooks: {dir: "+strconv.Quote(t.TempDir())+"}\n")
				srv := New(Options{Router: func() *routing.Router { return r }, Hooks: func() *luahooks.Set { return set }})
				msgs := summarized(t, script(buffered, post("/v1/chat/completions", bearer(keyTeamB)...), chat))
				if tc.atHeaders {
					msgs = msgs[:1] // Envoy sends no body once the headers are answered
				}
				got := run(t, srv, msgs...)
				if !tc.atHeaders && (len(got) != 2 || !proto.Equal(got[0], asked) || got[1].GetRequestBody() == nil) {
					t.Fatalf("responses %v, want a request for the body (answer headers sent), then the decision on it", got)
				}
				if tc.atHeaders && len(got) != 1 {
					t.Fatalf("responses %v, want the decision on the headers", got)
				}
				last := got[len(got)-1]
				if tc.status != 0 {
					if s := last.GetImmediateResponse().GetStatus().GetCode(); int(s) != tc.status {
						t.Errorf("answer %v, want the hook's %d", last, tc.status)
					}
					return
				}
				var setN string
				for _, h := range last.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
					if h.GetHeader().GetKey() == "x-n" {
						setN = string(h.GetHeader().GetRawValue())
					}
				}
				if last.GetRequestBody() != nil {
					for _, h := range last.GetRequestBody().GetResponse().GetHeaderMutation().GetSetHeaders() {
						if h.GetHeader().GetKey() == "x-n" {
							setN = string(h.GetHeader().GetRawValue())
						}
					}
				}
				if setN != tc.header {
					t.Errorf("x-n = %q, want %q; answer %v", setN, tc.header, last)
				}
			})
		}
	})
	t.Run("loop guard", func(t *testing.T) {
		t.Parallel()
		r := compileRouter(t, loopConfigYAML)
		srv := New(Options{Router: func() *routing.Router { return r }})
		a := post("/v1/chat/completions", bearer(keyTeamA)...)
		for i := range 3 {
			got := run(t, srv, summarized(t, script(buffered, a, chat))...)
			if len(got) != 2 || !proto.Equal(got[0], askedForBody()) || got[1].GetRequestBody() == nil {
				t.Fatalf("request %d: responses %v, want a request for the body, then the decision on it", i+1, got)
			}
		}
		got := run(t, srv, summarized(t, script(buffered, a, chat))...)
		if len(got) != 2 || !proto.Equal(got[0], askedForBody()) {
			t.Fatalf("fourth request: responses %v, want a request for the body first", got)
		}
		checkError(t, got[1:], wantErr{status: 429, api: config.APIOpenAI, typ: "rate_limit_error", code: "loop_detected", message: "repeated 3 times"})
	})
}

// TestSummarizedCountsTheClientsBody: a counted answer of a request planned
// from its summary estimates from the body Envoy kept, not the summary.
func TestSummarizedCountsTheClientsBody(t *testing.T) {
	t.Parallel()
	body := agentBody(t, agentbody.OpenAIChat, testMaxBody)
	srv := newTestServer(t, nil)
	msgs := summarized(t, script(buffered, post("/v1/chat/completions", bearer(keyTeamB)...), string(body)))
	x := exchange{srv: srv}
	for _, m := range msgs[:1] {
		x.handle(t.Context(), m)
	}
	if !x.summarized {
		t.Fatal("the request was not planned from its summary")
	}
	if got := x.bodyBytes(&Plan{Body: x.summary}); got != len(body) {
		t.Errorf("body bytes = %d, want the client's %d", got, len(body))
	}
}

// TestSummaryAsksForBodyWhenThePlanChangesIt: a plan with fallbacks, or a
// count_tokens estimate (made from the body's length), is made on the body.
func TestSummaryAsksForBodyWhenThePlanChangesIt(t *testing.T) {
	t.Parallel()
	fallbacks := compileRouter(t, fallbackConfigYAML)
	for name, tc := range map[string]struct {
		srv  *Server
		path string
		body string
	}{
		"fallbacks":    {New(Options{Router: func() *routing.Router { return fallbacks }}), "/v1/chat/completions", `{"model":"smart","messages":[]}`},
		"count_tokens": {newTestServer(t, nil), "/v1/messages/count_tokens", `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("x", 400) + `"}]}`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := run(t, tc.srv, summarized(t, script(buffered, post(tc.path, bearer(keyTeamB)...), tc.body))...)
			if len(got) != 2 || !proto.Equal(got[0], askedForBody()) {
				t.Fatalf("responses %v, want a request for the body, then the answer on it", got)
			}
			if name == "count_tokens" {
				var est struct {
					InputTokens int `json:"input_tokens"`
				}
				if err := json.Unmarshal(got[1].GetImmediateResponse().GetBody(), &est); err != nil || est.InputTokens < len(tc.body)/4-1 {
					t.Errorf("estimate %s (%v), want one from the body's %d bytes", got[1].GetImmediateResponse().GetBody(), err, len(tc.body))
				}
			}
		})
	}
}

// TestSummaryKeepsWeightedPicks: a route whose targets split 1:1, one of
// which rewrites the model, still splits 1:1 when the requests are planned
// from summaries: the request planned again on its body makes the same
// pick, and the target that changes the body is not drawn twice.
func TestSummaryKeepsWeightedPicks(t *testing.T) {
	t.Parallel()
	r := compileRouter(t, strings.Replace(testConfigYAML, "routes:\n", "routes:\n  - {model: split, targets: [{provider: openai, weight: 1}, {provider: openai, model: gpt-4o-mini, weight: 1}]}\n", 1))
	reg := prometheus.NewRegistry()
	srv := New(Options{Router: func() *routing.Router { return r }, Metrics: NewMetrics(reg)})
	const n = 1000
	asked, rewritten := 0, 0
	for range n {
		got := run(t, srv, summarized(t, script(buffered, post("/v1/chat/completions", bearer(keyTeamB)...), `{"model":"split","messages":[]}`))...)
		if !proto.Equal(got[0], askedForBody()) {
			continue
		}
		asked++
		if strings.Contains(string(got[1].GetRequestBody().GetResponse().GetBodyMutation().GetBody()), "gpt-4o-mini") {
			rewritten++
		}
	}
	if rewritten != asked || rewritten < n*2/5 || rewritten > n*3/5 {
		t.Errorf("%d of %d requests went to the rewriting target (%d asked for the body), want about half, all asked", rewritten, n, asked)
	}
	if s, b := testutil.ToFloat64(srv.opts.Metrics.bodyModes[bodySummarized]), testutil.ToFloat64(srv.opts.Metrics.bodyModes[bodyBuffered]); s != float64(n-asked) || b != float64(asked) {
		t.Errorf("requests counted summarized %v and buffered %v, want %d and %d", s, b, n-asked, asked)
	}
	if sum := histogramSum(t, reg, "switchyard_decision_duration_seconds"); sum > n {
		t.Errorf("decision time summed to %v s over %d requests", sum, n)
	}
}

func histogramSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// TestSummaryHooksRunOnce: hooks that do not read the body run once on a
// big body's summary; when the plan then needs the body (fallbacks), the
// plan on it takes what they did instead of running them again.
func TestSummaryHooksRunOnce(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	set, err := luahooks.NewSet([]luahooks.Source{{Name: "h.lua", Code: []byte(`function on_request(req) print("ran"); req:set_header("x-n", req.model) end`)}},
		luahooks.Options{Timeout: time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	logs.Reset() // the set's check at load ran it once
	r := compileRouter(t, fallbackConfigYAML+"hooks: {dir: "+strconv.Quote(t.TempDir())+"}\n")
	srv := New(Options{Router: func() *routing.Router { return r }, Hooks: func() *luahooks.Set { return set }})
	got := run(t, srv, summarized(t, script(buffered, post("/v1/chat/completions", bearer(keyTeamB)...), `{"model":"smart","messages":[]}`))...)
	asked := askedForBody()
	asked.ModeOverride.ResponseHeaderMode = filterv3.ProcessingMode_SEND
	if len(got) != 2 || !proto.Equal(got[0], asked) || got[1].GetRequestBody() == nil {
		t.Fatalf("responses %v, want a request for the body, then the decision on it", got)
	}
	if h := setHeaders(got[1].GetRequestBody().GetResponse().GetHeaderMutation()); h["x-n"] != "smart" {
		t.Errorf("the decision on the body sets %v, want the hook's x-n", h)
	}
	if n := strings.Count(logs.String(), "message=ran"); n != 1 {
		t.Errorf("the hook ran %d times, want once:\n%s", n, logs.String())
	}
}
