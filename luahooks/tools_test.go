package luahooks

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestOnToolCall(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{}, "tools.lua", `
function on_tool_call(call)
  if call.tool == "drop" then return call:reject("no " .. call.server .. "/" .. call.tool) end
  if call.arguments.limit then call.arguments.limit = math.min(call.arguments.limit, 10) end
end`)
	if !s.HasOnToolCall() || s.HasOnToolResult() || s.HasOnRequest() {
		t.Fatalf("the set's hooks: call %v result %v request %v", s.HasOnToolCall(), s.HasOnToolResult(), s.HasOnRequest())
	}
	tests := []struct {
		name, tool, args string
		wantArgs         string // "" unchanged
		wantReject       string
	}{
		{"rejected", "drop", `{}`, "", "no db/drop"},
		{"argument changed", "search", `{"q":"x","limit":500}`, `{"limit":10,"q":"x"}`, ""},
		{"untouched", "search", `{"q":"x","limit":5}`, "", ""},
		// Lua reads them as float64 (…992, …800, 1000); unchanged, they
		// keep their text.
		{"numbers beside a change", "search", `{"limit":500,"id":9007199254740993,"ids":[1234567890123456789],"f":1e3}`,
			`{"f":1e3,"id":9007199254740993,"ids":[1234567890123456789],"limit":10}`, ""},
		{"numbers untouched", "search", `{"limit":5,"id":9007199254740993,"f":1e3}`, "", ""},
		{"no arguments", "search", ``, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.OnToolCall(context.Background(), &ToolCall{Server: "db", Tool: tc.tool, Arguments: []byte(tc.args), KeyName: "k"})
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Arguments) != tc.wantArgs {
				t.Errorf("arguments = %s, want %q", res.Arguments, tc.wantArgs)
			}
			if got := ""; res.Reject != nil || tc.wantReject != "" {
				if res.Reject != nil {
					got = *res.Reject
				}
				if got != tc.wantReject {
					t.Errorf("reject = %q, want %q", got, tc.wantReject)
				}
			}
		})
	}
}

func TestToolHookFailurePolicy(t *testing.T) {
	t.Parallel()
	const script = `function on_tool_call(call) if call.tool == "boom" then error("boom") end call.arguments.x = 1 end`
	closed := newTestSet(t, Options{}, "t.lua", script)
	if _, err := closed.OnToolCall(context.Background(), &ToolCall{Tool: "boom"}); !errors.Is(err, ErrHookFailed) {
		t.Errorf("fail_closed: err = %v, want a hook failure", err)
	}
	open := newTestSet(t, Options{FailOpen: true}, "t.lua", script)
	res, err := open.OnToolCall(context.Background(), &ToolCall{Tool: "boom", Arguments: []byte(`{"a":1}`)})
	if err != nil || res.Arguments != nil {
		t.Errorf("fail_open: %+v, %v; want the call unchanged", res, err)
	}
}

func TestToolHooksCheckedAtLoad(t *testing.T) {
	t.Parallel()
	for script, want := range map[string]string{
		`function on_tool_call(call) return 1 end`:                      "on_tool_call returned a number",
		`function on_tool_result(r) error("x" .. r.size) end`:           "x42",
		`function on_tool_call(call) call.arguments = "text" end`:       "must stay a table",
		`function on_tool_result(r) if r.is_error then error() end end`: "",
	} {
		_, err := buildTestSet(Options{}, "t.lua", script)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: err = %v, want %q", script, err, want)
		}
	}
}
