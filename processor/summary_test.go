package processor

import (
	"strconv"
	"testing"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
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
		set, err := luahooks.NewSet([]luahooks.Source{{Name: "h.lua", Code: []byte(`function on_request(req) end`)}}, luahooks.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r := compileRouter(t, testConfigYAML+"hooks: {dir: "+strconv.Quote(t.TempDir())+"}\n")
		srv := New(Options{Router: func() *routing.Router { return r }, Hooks: func() *luahooks.Set { return set }})
		got := run(t, srv, summarized(t, script(buffered, post("/v1/chat/completions", bearer(keyTeamB)...), chat))...)
		want := askedForBody()
		want.ModeOverride.ResponseHeaderMode = filterv3.ProcessingMode_SEND // the routes send hooks the answer's headers
		if len(got) != 2 || !proto.Equal(got[0], want) || got[1].GetRequestBody() == nil {
			t.Errorf("responses %v, want a request for the body (answer headers sent), then the decision on it", got)
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
