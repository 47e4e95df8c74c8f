package luahooks

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	lua "github.com/yuin/gopher-lua"
)

// MCP tool hooks. A script may define
//
//	function on_tool_call(call)   -- before an MCP tools/call is sent
//	  -- call.server, call.tool, call.key, call.session, call.request_id
//	  -- call.arguments: the arguments as a table; change it to change them
//	  if call.tool == "run_sql" and call.arguments.query:find("DROP") then
//	    return call:reject("no DROP through the gateway")
//	  end
//	end
//	function on_tool_result(result)  -- once the call's answer has ended
//	  -- result.server, result.tool, result.key, result.session,
//	  -- result.size (bytes), result.is_error, result.outcome
//	end
//
// with the same sandbox, time budget, failure policy and hot swap as
// on_request and on_response.

// ToolCall is what an on_tool_call hook sees of an MCP tools/call.
type ToolCall struct {
	Server, Tool string
	// Arguments is the raw JSON of params.arguments ("" when absent).
	Arguments                   []byte
	KeyName, Session, RequestID string
}

// ToolCallResult is what on_tool_call hooks did.
type ToolCallResult struct {
	// Arguments is nil when unchanged, else the new arguments' JSON.
	Arguments []byte
	// Reject, when set, is why a hook refused the call.
	Reject  *string
	Changes []Change
}

// ToolResult is what an on_tool_result hook sees of a call's answer.
type ToolResult struct {
	Server, Tool                string
	KeyName, Session, RequestID string
	Size                        int  // bytes of the answer
	IsError                     bool // the tool reported an error, or the call failed
	Outcome                     string
}

// maxArgumentsLen bounds the arguments a hook may leave.
const maxArgumentsLen = 1 << 20

func syntheticToolCall() *ToolCall {
	return &ToolCall{Server: "synthetic", Tool: "synthetic_tool", Arguments: []byte(`{"query":"hello","limit":3}`),
		KeyName: "synthetic-key", RequestID: "hooks-check"}
}

func syntheticToolResult() *ToolResult {
	return &ToolResult{Server: "synthetic", Tool: "synthetic_tool", KeyName: "synthetic-key", RequestID: "hooks-check", Size: 42, Outcome: "ok"}
}

// HasOnToolCall reports whether any script defines on_tool_call.
func (s *Set) HasOnToolCall() bool { return s.hasToolCall }

// HasOnToolResult reports whether any script defines on_tool_result.
func (s *Set) HasOnToolResult() bool { return s.hasToolResult }

// toolCallState is one OnToolCall call.
type toolCallState struct {
	call    *ToolCall
	out     *ToolCallResult
	script  string
	args    []byte // the arguments so far
	reject  *string
	saved   struct{ args []byte }
	changes int // len(out.Changes) when the current script began
}

// OnToolCall runs every on_tool_call hook in order. A hook that calls
// call:reject ends the chain with Reject set. Failures follow the set's
// policy, as OnRequest's.
func (s *Set) OnToolCall(ctx context.Context, call *ToolCall) (ToolCallResult, error) {
	var out ToolCallResult
	if !s.hasToolCall {
		return out, nil
	}
	c := &toolCallState{call: call, out: &out, args: call.Arguments}
	if err := s.runChain(ctx, call.RequestID, c); err != nil {
		return ToolCallResult{Changes: out.Changes}, err
	}
	if !bytes.Equal(c.args, call.Arguments) {
		out.Arguments = c.args
	}
	out.Reject = c.reject
	return out, nil
}

func (c *toolCallState) has(sc *script) bool                  { return sc.onToolCall }
func (c *toolCallState) timer(sc *script) prometheus.Observer { return sc.toolCallTime }
func (c *toolCallState) stop() bool                           { return c.reject != nil }
func (c *toolCallState) begin(script string) {
	c.script, c.saved.args, c.changes = script, c.args, len(c.out.Changes)
}
func (c *toolCallState) commit() {}
func (c *toolCallState) rollback(err error) {
	c.args, c.reject = c.saved.args, nil
	c.out.Changes = append(c.out.Changes[:c.changes], Change{Script: c.script, Op: "error", Value: err.Error()})
}
func (c *toolCallState) run(ctx context.Context, v *vm, timeout time.Duration, i int, sc *script) error {
	return v.runToolCall(ctx, timeout, sc.name, v.scripts[i].onToolCall, c)
}

// runToolCall calls one on_tool_call hook with a fresh call table and
// reads back its arguments.
func (v *vm) runToolCall(ctx context.Context, timeout time.Duration, name string, fn *lua.LFunction, c *toolCallState) error {
	L := v.L
	args := lua.LValue(L.NewTable())
	orig := gjson.ParseBytes(c.args)
	if len(bytes.TrimSpace(c.args)) > 0 {
		var err error
		if args, err = v.conv.fromJSON(orig, 0); err != nil {
			return &HookError{Script: name, Hook: "on_tool_call", Reason: ReasonRuntime, Message: "arguments: " + err.Error()}
		}
	}
	before, _ := v.conv.appendJSONOver(nil, args, orig, 0)
	t := L.NewTable()
	for k, val := range map[string]string{"server": c.call.Server, "tool": c.call.Tool, "key": c.call.KeyName,
		"session": c.call.Session, "request_id": c.call.RequestID} {
		t.RawSetString(k, lua.LString(val))
	}
	t.RawSetString("arguments", args)
	var rejected *string
	t.RawSetString("reject", L.NewFunction(func(L *lua.LState) int {
		msg := clip(strings.ToValidUTF8(L.OptString(2, "refused by a hook"), "\uFFFD"), maxRejectMessageLen)
		rejected = &msg
		L.Push(v.rejectMarker)
		return 1
	}))
	v.requestID = c.call.RequestID
	ret, err := v.call(ctx, timeout, name, "on_tool_call", fn, t)
	if err != nil {
		return err
	}
	if ret != lua.LNil && ret != lua.LValue(v.rejectMarker) {
		return &HookError{Script: name, Hook: "on_tool_call", Line: fn.Proto.LineDefined, Reason: ReasonMalformed,
			Message: fmt.Sprintf("on_tool_call returned a %s; return nothing or call:reject(message)", ret.Type())}
	}
	if rejected != nil {
		c.reject = rejected
		c.out.Changes = append(c.out.Changes, Change{Script: name, Op: "reject", Value: *rejected})
		return nil
	}
	after, err := v.conv.appendJSONOver(nil, t.RawGetString("arguments"), orig, 0)
	switch {
	case err != nil:
		return &HookError{Script: name, Hook: "on_tool_call", Reason: ReasonRuntime, Message: "call.arguments: " + err.Error()}
	case len(after) > maxArgumentsLen:
		return &HookError{Script: name, Hook: "on_tool_call", Reason: ReasonLimit, Message: "call.arguments is over 1 MiB"}
	case !bytes.Equal(before, after):
		if after[0] != '{' {
			return &HookError{Script: name, Hook: "on_tool_call", Reason: ReasonRuntime, Message: "call.arguments must stay a table of named arguments"}
		}
		c.args = after
		c.out.Changes = append(c.out.Changes, Change{Script: name, Op: "set_arguments", Value: clip(string(after), maxChangeValueLen)})
	}
	return nil
}

// toolResultState is one OnToolResult call.
type toolResultState struct {
	res    *ToolResult
	script string
}

// OnToolResult runs every on_tool_result hook in order. It changes
// nothing; a failure is counted and logged.
func (s *Set) OnToolResult(ctx context.Context, res *ToolResult) error {
	if !s.hasToolResult {
		return nil
	}
	return s.runChain(ctx, res.RequestID, &toolResultState{res: res})
}

func (c *toolResultState) has(sc *script) bool                  { return sc.onToolResult }
func (c *toolResultState) timer(sc *script) prometheus.Observer { return sc.toolResultTime }
func (c *toolResultState) stop() bool                           { return false }
func (c *toolResultState) begin(script string)                  { c.script = script }
func (c *toolResultState) commit()                              {}
func (c *toolResultState) rollback(error)                       {}
func (c *toolResultState) run(ctx context.Context, v *vm, timeout time.Duration, i int, sc *script) error {
	L := v.L
	t := L.NewTable()
	for k, val := range map[string]string{"server": c.res.Server, "tool": c.res.Tool, "key": c.res.KeyName,
		"session": c.res.Session, "request_id": c.res.RequestID, "outcome": c.res.Outcome} {
		t.RawSetString(k, lua.LString(val))
	}
	t.RawSetString("size", lua.LNumber(c.res.Size))
	t.RawSetString("is_error", lua.LBool(c.res.IsError))
	v.requestID = c.res.RequestID
	fn := v.scripts[i].onToolResult
	ret, err := v.call(ctx, timeout, sc.name, "on_tool_result", fn, t)
	if err != nil {
		return err
	}
	if ret != lua.LNil {
		return &HookError{Script: sc.name, Hook: "on_tool_result", Line: fn.Proto.LineDefined, Reason: ReasonMalformed,
			Message: fmt.Sprintf("on_tool_result returned a %s; return nothing", ret.Type())}
	}
	return nil
}

// checkToolHooks runs a script's tool hooks once against a synthetic call
// and result, as buildSet does for the others.
func (v *vm) checkToolHooks(ctx context.Context, timeout time.Duration, sc *script, i int) error {
	if sc.onToolCall {
		var out ToolCallResult
		c := &toolCallState{call: syntheticToolCall(), out: &out}
		c.args = c.call.Arguments
		if err := v.runToolCall(ctx, timeout, sc.name, v.scripts[i].onToolCall, c); err != nil {
			return err
		}
	}
	if sc.onToolResult {
		return (&toolResultState{res: syntheticToolResult()}).run(ctx, v, timeout, i, sc)
	}
	return nil
}
