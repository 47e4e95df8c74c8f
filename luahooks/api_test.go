package luahooks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tidwall/gjson"
)

func TestOnRequestAPI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		code string // body of on_request(req)
		req  func(*Request)
		want Result // Changes are ignored
	}{
		{
			name: "read fields",
			code: `req:set_header("x-out", table.concat({req.method, req.path, req.model, req.key_name, req.request_id, req.api}, " "))`,
			want: Result{SetHeaders: map[string]string{"x-out": "POST /v1/chat/completions gpt-4o ci-key req-1 openai"}},
		},
		{
			name: "read the session",
			code: `req:set_header("x-out", "[" .. req.session .. "]")`,
			req:  func(r *Request) { r.Session = "sess-1" },
			want: Result{SetHeaders: map[string]string{"x-out": "[sess-1]"}},
		},
		{
			name: "set the session and read it back",
			code: `req:set_session("team-" .. req:header("x-team")); req:set_header("x-out", req.session)`,
			req:  func(r *Request) { r.Session = "sess-1" },
			want: Result{Session: "team-Search", SessionSet: true, SetHeaders: map[string]string{"x-out": "team-Search"}},
		},
		{
			name: "drop the session",
			code: `req:set_session("")`,
			req:  func(r *Request) { r.Session = "sess-1" },
			want: Result{SessionSet: true},
		},
		{
			name: "header is case-insensitive",
			code: `req:set_header("x-out", req:header("X-TEAM") .. "/" .. tostring(req:header("x-missing")))`,
			want: Result{SetHeaders: map[string]string{"x-out": "Search/nil"}},
		},
		{
			name: "credentials are hidden",
			code: `req:set_header("x-out", tostring(req:header("authorization")) .. "/" .. tostring(req:headers()["authorization"]))`,
			want: Result{SetHeaders: map[string]string{"x-out": "nil/nil"}},
		},
		{
			name: "set then read back, remove",
			code: `req:set_header("X-A", "1"); req:set_header("x-b", req:header("x-a") .. "2"); req:remove_header("x-team"); req:set_header("x-c", tostring(req:header("x-team")))`,
			want: Result{SetHeaders: map[string]string{"x-a": "1", "x-b": "12", "x-c": "nil"}, RemoveHeaders: []string{"x-team"}},
		},
		{
			name: "set_model rewrites the body",
			code: `req:set_model("claude-x"); req:set_header("x-m", req.model .. "/" .. req.body:get("model"))`,
			want: Result{
				Model:      "claude-x",
				SetHeaders: map[string]string{"x-m": "claude-x/claude-x"},
				Body:       []byte(`{"model":"claude-x","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"n":2}`),
			},
		},
		{
			name: "body get by path",
			code: `req:set_header("x-out", req.body:get("messages.1.content") .. " " .. req.body:get("n") .. " " .. #req.body:get("messages") .. " " .. tostring(req.body:get("nope")))`,
			want: Result{SetHeaders: map[string]string{"x-out": "hi 2 2 nil"}},
		},
		{
			name: "body set and delete",
			code: `req.body:set("temperature", 0.5); req.body:set("n", nil); req.body:set("metadata", {team = "a", ids = {1, 2}})`,
			want: Result{Body: []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"temperature":0.5,"metadata":{"ids":[1,2],"team":"a"}}`)},
		},
		{
			name: "body set model also sets the model",
			code: `req.body:set("model", "m2")`,
			want: Result{Model: "m2", Body: []byte(`{"model":"m2","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"n":2}`)},
		},
		{
			name: "decode",
			code: `local b = req.body:decode(); req:set_header("x-out", b.messages[2].role .. b.n .. b.model)`,
			want: Result{SetHeaders: map[string]string{"x-out": "user2gpt-4o"}},
		},
		{
			name: "raw",
			code: `req:set_header("x-len", tostring(#req.body:raw()))`,
			want: Result{SetHeaders: map[string]string{"x-len": "107"}},
		},
		{
			name: "provider route tag",
			code: `req:provider("openai"); req:route("fast"); req:tag("team", req:header("x-team")); req:tag("n", 3)`,
			want: Result{Provider: "openai", Route: "fast", Tags: map[string]string{"team": "Search", "n": "3"}},
		},
		{
			name: "reject",
			code: `return req:reject(403, "model not allowed")`,
			want: Result{Reject: &Reject{Status: 403, Message: "model not allowed"}},
		},
		{
			name: "reject default message",
			code: `req:reject(429)`,
			want: Result{Reject: &Reject{Status: 429, Message: "Too Many Requests"}},
		},
		{
			name: "ctx and null",
			code: `req:set_header("x-out", tostring(ctx.loaded) .. tostring(null))`,
			want: Result{SetHeaders: map[string]string{"x-out": "truenull"}},
		},
		{
			name: "log and print do not fail",
			code: `log("info", "hello", {a = 1, b = {2, 3}}); print("x", 1, nil, req)`,
			want: Result{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestSet(t, Options{}, "t.lua", "ctx.loaded = true\nfunction on_request(req)\nif req.request_id ~= 'req-1' then return end\n"+tt.code+"\nend\n")
			req := chatRequest()
			if tt.req != nil {
				tt.req(req)
			}
			got, err := onRequest(t, s, req)
			if err != nil {
				t.Fatalf("OnRequest: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Result{}, "Changes"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOnRequestErrors(t *testing.T) {
	t.Parallel()
	known := func(name string) bool { return name == "openai" || name == "fast" }
	tests := []struct {
		name       string
		code       string
		wantReason string
		wantText   string
	}{
		{"unknown provider", `req:provider("nope")`, ReasonRuntime, `unknown provider "nope"`},
		{"unknown route", `req:route("nope")`, ReasonRuntime, `unknown route "nope"`},
		{"bad reject status", `return req:reject(200, "ok")`, ReasonRuntime, "not an HTTP error status"},
		{"returns a string", `return "yes"`, ReasonMalformed, "returned a string"},
		{"returns true", `return true`, ReasonMalformed, "returned a boolean"},
		{"bad tag key", `req:tag("Team!", "x")`, ReasonRuntime, "must be 1 to 32 characters"},
		{"long tag value", `req:tag("k", string.rep("v", 65))`, ReasonRuntime, "at most 64 bytes"},
		{"too many tags", `for i = 1, 9 do req:tag("k" .. i, "v") end`, ReasonRuntime, "at most 8 tags"},
		{"header value with newline", `req:set_header("x-a", "a\r\nb")`, ReasonRuntime, "CR, LF or NUL"},
		{"bad header name", `req:set_header("a b", "x")`, ReasonRuntime, "not a valid header name"},
		{"empty model", `req:set_model("")`, ReasonRuntime, "set_model"},
		{"body set function", `req.body:set("x", print)`, ReasonRuntime, "cannot convert a function"},
		{"body set NaN", `req.body:set("x", 0/0)`, ReasonRuntime, "cannot convert NaN"},
		{"cyclic table", `local t = {}; t.self = t; req.body:set("x", t)`, ReasonRuntime, "nested too deeply"},
		{"assign field", `req.model = "x"`, ReasonRuntime, "read-only"},
		{"dot call", `req.set_header("x-a", "b")`, ReasonRuntime, "colon"},
		{"error()", `error("boom")`, ReasonRuntime, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Validation would refuse these scripts, so build the set with a
			// guard that only fires on the test request.
			code := "function on_request(req)\nif req.request_id ~= 'req-1' then return end\n" + tt.code + "\nend\n"
			s := newTestSet(t, Options{}, "t.lua", code)
			req := chatRequest()
			req.IsProvider, req.IsRoute = known, known
			got, err := onRequest(t, s, req)
			if !errors.Is(err, ErrHookFailed) {
				t.Fatalf("OnRequest error = %v, want ErrHookFailed", err)
			}
			var he *HookError
			if !errors.As(err, &he) {
				t.Fatalf("error %T is not a *HookError", err)
			}
			wantLine := 3
			if tt.wantReason == ReasonMalformed {
				wantLine = 1 // where on_request is defined
			}
			if he.Script != "t.lua" || he.Line != wantLine || he.Reason != tt.wantReason || !strings.Contains(he.Message, tt.wantText) {
				t.Errorf("HookError = %+v, want t.lua line %d reason %s containing %q", he, wantLine, tt.wantReason, tt.wantText)
			}
			if strings.Contains(err.Error(), "stack traceback") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error carries a stack trace: %q", err)
			}
			if got.SetHeaders != nil || got.Body != nil || got.Reject != nil {
				t.Errorf("result on error = %+v, want only Changes", got)
			}
		})
	}
}

func TestHeaderGuard(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"x-switchyard-cluster", "x-switchyard-retry", "x-switchyard-anything", "X-Request-Id",
		"x-envoy-max-retries", "x-envoy-retry-on", "Authorization", "x-api-key", "api-key", "host", ":authority", ":path", "content-length"} {
		for _, op := range []string{`req:set_header(%q, "v")`, `req:remove_header(%q)`} {
			code := strings.ReplaceAll(op, "%q", `"`+name+`"`)
			t.Run(code, func(t *testing.T) {
				t.Parallel()
				s := newTestSet(t, Options{}, "g.lua", "function on_request(req)\nif req.request_id == 'req-1' then "+code+" end\nend\n")
				_, err := onRequest(t, s, chatRequest())
				var he *HookError
				if !errors.As(err, &he) || !strings.Contains(he.Message, "protected") {
					t.Fatalf("err = %v, want a protected-header HookError", err)
				}
			})
		}
	}
}

func TestRejectEndsChain(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{},
		"1.lua", `function on_request(req) req:set_header("x-one", "1") return req:reject(403, "no") end`,
		"2.lua", `function on_request(req) req:set_header("x-two", "2") end`)
	got, err := onRequest(t, s, chatRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := Result{
		SetHeaders: map[string]string{"x-one": "1"},
		Reject:     &Reject{Status: 403, Message: "no"},
		Changes: []Change{
			{Script: "1.lua", Op: "set_header", Key: "x-one", Value: "1"},
			{Script: "1.lua", Op: "reject", Key: "403", Value: "no"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestScriptsRunInOrderAndSeeEarlierChanges(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{},
		"a.lua", `function on_request(req) req:set_model("m-a"); req:set_header("x-seen", "a") end`,
		"b.lua", `function on_request(req) req:set_header("x-seen", req:header("x-seen") .. "b:" .. req.model .. ":" .. req.body:get("model")) end`)
	got, err := onRequest(t, s, chatRequest())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"x-seen": "ab:m-a:m-a"}, got.SetHeaders); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a.lua", "b.lua"}, s.Scripts()); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestFailurePolicies(t *testing.T) {
	t.Parallel()
	scripts := []string{
		"1.lua", `function on_request(req) req:set_header("x-one", "1") end`,
		"2.lua", "function on_request(req)\n  req:set_header(\"x-two\", \"2\")\n  req.body:set(\"n\", 7)\n  req:set_model(\"m\")\n  if req.request_id == 'req-1' then error(\"broken\") end\nend\n",
		"3.lua", `function on_request(req) req:set_header("x-three", req.model) end`,
	}
	t.Run("fail_closed", func(t *testing.T) {
		t.Parallel()
		s := newTestSet(t, Options{}, scripts...)
		got, err := onRequest(t, s, chatRequest())
		var he *HookError
		if !errors.As(err, &he) || !errors.Is(err, ErrHookFailed) {
			t.Fatalf("err = %v, want a HookError wrapping ErrHookFailed", err)
		}
		if diff := cmp.Diff(&HookError{Script: "2.lua", Hook: "on_request", Line: 5, Reason: ReasonRuntime, Message: "broken"}, he); diff != "" {
			t.Errorf("error (-want +got):\n%s", diff)
		}
		if got.SetHeaders != nil {
			t.Errorf("headers on error = %v, want none", got.SetHeaders)
		}
	})
	t.Run("fail_open", func(t *testing.T) {
		t.Parallel()
		s := newTestSet(t, Options{FailOpen: true}, scripts...)
		got, err := onRequest(t, s, chatRequest())
		if err != nil {
			t.Fatalf("OnRequest: %v", err)
		}
		want := Result{
			SetHeaders: map[string]string{"x-one": "1", "x-three": "gpt-4o"},
			Changes: []Change{
				{Script: "1.lua", Op: "set_header", Key: "x-one", Value: "1"},
				{Script: "2.lua", Op: "error", Value: "hook 2.lua:5 on_request (runtime): broken"},
				{Script: "3.lua", Op: "set_header", Key: "x-three", Value: "gpt-4o"},
			},
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
	})
}

// TestFailOpenLaterHookReadsBody: under fail_open, a hook that used
// req.body and failed does not take req.body from the hooks after it. The
// chain goes on in a new state, and req.body used to be the one the
// discarded state made, whose methods refused every call.
func TestFailOpenLaterHookReadsBody(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{FailOpen: true},
		"a.lua", `function on_request(req) local m = req.body:get("model"); if req.request_id == 'req-1' then error("boom") end end`,
		"b.lua", `function on_request(req) req.body:set("redacted", true); req:set_header("x-b", req.body:get("model")) end`)
	got, err := onRequest(t, s, chatRequest())
	if err != nil {
		t.Fatalf("OnRequest: %v", err)
	}
	if got.SetHeaders["x-b"] != "gpt-4o" || !gjson.GetBytes(got.Body, "redacted").Bool() {
		t.Errorf("b.lua's changes lost: headers %v, body %s, changes %v", got.SetHeaders, got.Body, got.Changes)
	}
}

// TestBodySetKeepsNumbers: a value read from the body and written back
// keeps the text of the numbers the hook did not change. Lua numbers are
// float64: an id above 2^53 went back as another id when the hook
// changed a field beside it.
func TestBodySetKeepsNumbers(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{}, "a.lua", `
function on_request(req)
  local input = req.body:get("messages.0.content.0.input")
  if input == nil then return end
  input.note = "checked"
  input.qty = input.qty * 2
  req.body:set("messages.0.content.0.input", input)
end`)
	req := chatRequest()
	req.Body = []byte(`{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","input":` +
		`{"order_id":1234567890123456789,"ids":[9007199254740993,2],"price":1.50,"qty":3}}]}]}`)
	got, err := onRequest(t, s, req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ids":[9007199254740993,2],"note":"checked","order_id":1234567890123456789,"price":1.50,"qty":6}`
	if input := gjson.GetBytes(got.Body, "messages.0.content.0.input").Raw; input != want {
		t.Errorf("input = %s, want %s", input, want)
	}
}

func TestOnResponse(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{},
		"r.lua", `
function on_request(req) req:tag("team", "a") end
function on_response(res)
  res:set_header("x-status", tostring(res.status))
  res:set_header("x-team", res.tags.team or "none")
  res:set_header("x-rid", res.request_id .. ":" .. res:header("Content-Type"))
  res:set_header("x-apis", res.api .. ">" .. res.upstream_api)
  res:remove_header("server")
end`)
	if !s.HasOnRequest() || !s.HasOnResponse() {
		t.Fatalf("HasOnRequest, HasOnResponse = %v, %v; want true, true", s.HasOnRequest(), s.HasOnResponse())
	}
	got, err := s.OnResponse(context.Background(), &Response{Status: 201, RequestID: "r9", API: "openai", UpstreamAPI: "anthropic",
		Headers: map[string]string{"content-type": "text/plain", "server": "x"}, Tags: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	want := ResponseResult{
		SetHeaders:    map[string]string{"x-status": "201", "x-team": "a", "x-rid": "r9:text/plain", "x-apis": "openai>anthropic"},
		RemoveHeaders: []string{"server"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(ResponseResult{}, "Changes")); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}

	only := newTestSet(t, Options{}, "q.lua", `function on_request(req) end`)
	if only.HasOnResponse() {
		t.Error("HasOnResponse = true for a set without on_response")
	}
	if got, err := only.OnResponse(context.Background(), &Response{Status: 200}); err != nil || got.SetHeaders != nil {
		t.Errorf("OnResponse without hooks = %+v, %v", got, err)
	}
}

func TestEmptySet(t *testing.T) {
	t.Parallel()
	s := emptySet
	if s.HasOnRequest() || s.HasOnResponse() || s.Version() != 0 {
		t.Fatalf("empty set: req %v resp %v version %d", s.HasOnRequest(), s.HasOnResponse(), s.Version())
	}
	got, err := s.OnRequest(context.Background(), chatRequest())
	if err != nil || !cmp.Equal(got, Result{}) {
		t.Errorf("OnRequest = %+v, %v; want zero result", got, err)
	}
}

func TestStateReusedAndDiscardedAfterError(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{PoolSize: 1, FailOpen: true}, "n.lua", `
function on_request(req)
  calls = (calls or 0) + 1
  req:set_header("x-calls", tostring(calls))
  if req:header("x-fail") then error("asked to fail") end
end`)
	calls := func(fail bool) string {
		req := chatRequest()
		if fail {
			req.Headers = map[string]string{"x-fail": "1"}
		}
		got, err := onRequest(t, s, req)
		if err != nil {
			t.Fatal(err)
		}
		return got.SetHeaders["x-calls"]
	}
	// The pooled state keeps its globals between calls; a failed call
	// discards it, so the next call starts from a fresh state.
	got := []string{calls(false), calls(false), calls(true), calls(false)}
	if diff := cmp.Diff([]string{"1", "2", "", "1"}, got); diff != "" {
		t.Errorf("x-calls per request (-want +got):\n%s", diff)
	}
}

func TestValidationRefusesBrokenScripts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, code, want string
	}{
		{"syntax", "function on_request(req\n", "x.lua:2 load (syntax)"},
		{"no hooks", "local x = 1\n", "defines neither on_request nor on_response"},
		{"hook not a function", "on_request = 3\n", "on_request is a number"},
		{"top level error", "local x = nil\nx.y = 1\n", "x.lua:2 load (runtime)"},
		{"fails on synthetic request", "function on_request(req)\n  req:header('x-team'):lower()\nend\n", "x.lua:2 on_request (runtime)"},
		{"on_response fails", "function on_response(res)\n  res:set_header('host', 'x')\nend\n", "x.lua:2 on_response (runtime)"},
		{"infinite loop", "function on_request(req)\n  while true do end\nend\n", "(timeout)"},
		{"forbidden global", "function on_request(req)\n  os.exit(1)\nend\n", "x.lua:2 on_request (runtime)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := buildTestSet(Options{Timeout: 20e6}, "x.lua", tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("all errors reported", func(t *testing.T) {
		t.Parallel()
		_, err := buildTestSet(Options{}, "a.lua", "function on_request(req\n", "b.lua", "function on_request(req) error('b') end", "c.lua", "function on_request(req) end")
		if err == nil || !strings.Contains(err.Error(), "a.lua") || !strings.Contains(err.Error(), "b.lua") || strings.Contains(err.Error(), "c.lua") {
			t.Fatalf("err = %v, want errors for a.lua and b.lua only", err)
		}
	})
}

// TestBodyKept: a set whose hooks never name the body runs on a request
// whose body stayed in Envoy; one that names it may read it. A hook that
// reaches the body anyway, even inside pcall, ends the chain with
// ErrNeedsBody, which no failure policy swallows and no error counts.
func TestBodyKept(t *testing.T) {
	t.Parallel()
	kept := func() *Request {
		r := chatRequest()
		r.Body, r.BodyKept = nil, true
		return r
	}
	headersOnly := `function on_request(req) req:set_header("x-model", req.model); req:tag("team", req:header("x-team") or "none") end`
	s := newTestSet(t, Options{}, "tag.lua", headersOnly)
	if s.MayReadBody() {
		t.Error("a set that never names the body may read it")
	}
	got, err := onRequest(t, s, kept())
	if err != nil || got.SetHeaders["x-model"] != "gpt-4o" || got.Tags["team"] != "Search" || got.Body != nil {
		t.Errorf("headers-only hooks on a kept body: %+v, %v", got, err)
	}
	for name, code := range map[string]string{
		"body:get":  `function on_request(req) req:set_header("x-n", tostring(req.body:get("n"))) end`,
		"set_model": `function on_request(req) req:set_model("other") end`,
	} {
		if s := newTestSet(t, Options{}, "a.lua", headersOnly, "b.lua", code); !s.MayReadBody() {
			t.Errorf("%s: the set may not read the body", name)
		}
	}
	for name, code := range map[string]string{
		"hidden":         `function on_request(req) local k = "bo" .. "dy"; req:set_header("x-n", tostring(req[k]:get("n"))) end`,
		"hidden, caught": `function on_request(req) local k = "bo" .. "dy"; pcall(function() return req[k]:raw() end); req:set_header("x-after", "1") end`,
	} {
		for _, failOpen := range []bool{false, true} {
			m, err := newMetrics(nil)
			if err != nil {
				t.Fatal(err)
			}
			s := newTestSet(t, Options{FailOpen: failOpen}, "a.lua", headersOnly, "b.lua", code)
			s.cfg.metrics = m
			if s.MayReadBody() {
				t.Errorf("%s: the set names the body", name)
			}
			if _, err := onRequest(t, s, kept()); !errors.Is(err, ErrNeedsBody) || errors.Is(err, ErrHookFailed) {
				t.Errorf("%s (fail open %v): %v, want ErrNeedsBody", name, failOpen, err)
			}
			if n := testutil.CollectAndCount(m.errors); n != 0 {
				t.Errorf("%s: %d hook error series after the run on the summary, want none", name, n)
			}
			got, err := onRequest(t, s, chatRequest())
			if err != nil || got.SetHeaders["x-n"] != "2" && got.SetHeaders["x-after"] != "1" {
				t.Errorf("%s with the body: %+v, %v", name, got, err)
			}
		}
	}
}

// TestBodyKeptReportsFailuresOnce: under fail_open, a hook that fails before
// another reaches a kept body is reported once per request, by the run on
// the body, not also by the run on the summary that ended for the body.
func TestBodyKeptReportsFailuresOnce(t *testing.T) {
	t.Parallel()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSet(t, Options{FailOpen: true},
		"a.lua", `function on_request(req) if req:header("x-team") then error("boom") end end`,
		"b.lua", `function on_request(req) local k = "bo" .. "dy"; req:set_header("x-n", tostring(req[k]:get("n"))) end`)
	s.cfg.metrics = m
	kept := chatRequest()
	kept.Body, kept.BodyKept = nil, true
	if _, err := onRequest(t, s, kept); !errors.Is(err, ErrNeedsBody) {
		t.Fatalf("on the summary: %v, want ErrNeedsBody", err)
	}
	got, err := onRequest(t, s, chatRequest())
	if err != nil || got.SetHeaders["x-n"] != "2" {
		t.Errorf("on the body: %+v, %v", got, err)
	}
	if n := testutil.ToFloat64(m.errors.WithLabelValues("a.lua", ReasonRuntime)); n != 1 {
		t.Errorf("a.lua's failure counted %v times, want once", n)
	}
}
