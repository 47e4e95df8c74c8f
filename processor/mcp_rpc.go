package processor

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"switchyard/bodyscan"
)

// JSON-RPC and streamable HTTP as the MCP proxy reads them: the message a
// client POSTs, the errors the gateway answers in its place, and the
// answer's SSE events (or one JSON body).

// JSON-RPC error codes the gateway answers with. -32700 and -32600 are
// JSON-RPC's own; -32001 is in the range JSON-RPC leaves to servers, for a
// request the gateway refused by its policy (error.data.reason says which).
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcRefused        = -32001
)

// rpcMessage is what the gateway reads of one JSON-RPC message.
type rpcMessage struct {
	id     string // raw JSON ("" for a notification)
	method string
	// tool and args are a tools/call's params.name and the raw JSON of
	// params.arguments ("" when absent).
	tool, args string
	// batched: a batch holding a request (a message with a method and an
	// id), which wants an answer.
	batched bool
	// batchMethods are a batch's messages' methods ("" for a reply).
	batchMethods []string
}

// readRPC parses a POSTed body: one JSON-RPC message. A batch (an array,
// which protocol versions before 2025-06-18 allowed) passes only when none
// of its messages is a tools/call or tools/list: those the gateway must
// read one by one.
func readRPC(body []byte) (rpcMessage, *rpcError) {
	// One flat pass, as for model requests: gjson validates recursively,
	// and a deep enough body would exhaust the stack.
	switch bodyscan.Scan(body).Verdict {
	case bodyscan.Deep:
		return rpcMessage{}, &rpcError{status: 400, code: rpcParseError, reason: "parse_error", message: "parse error: the body nests deeper than " + strconv.Itoa(maxNesting) + " levels"}
	case bodyscan.Syntax:
		return rpcMessage{}, &rpcError{status: 400, code: rpcParseError, reason: "parse_error", message: "parse error: the body is not valid JSON"}
	}
	root := gjson.ParseBytes(body)
	if root.IsArray() {
		var batch rpcMessage
		for _, m := range root.Array() {
			if e := unambiguous(m, rpcKeys); e != nil {
				return rpcMessage{}, e
			}
			method := m.Get("method").Str
			if method == "tools/call" || method == "tools/list" {
				return rpcMessage{}, &rpcError{status: 400, code: rpcInvalidRequest, reason: "batch",
					message: "invalid request: send " + method + " as a message of its own, not in a batch"}
			}
			batch.batched = batch.batched || method != "" && m.Get("id").Exists()
			batch.batchMethods = append(batch.batchMethods, method)
		}
		return batch, nil
	}
	if !root.IsObject() || root.Get("jsonrpc").Str != "2.0" {
		return rpcMessage{}, &rpcError{status: 400, code: rpcInvalidRequest, reason: "invalid_request", message: `invalid request: a JSON-RPC 2.0 message is an object with "jsonrpc": "2.0"`}
	}
	if e := unambiguous(root, rpcKeys); e != nil {
		return rpcMessage{}, e
	}
	m := rpcMessage{method: root.Get("method").Str}
	if id := root.Get("id"); id.Exists() {
		m.id = id.Raw
	}
	if m.method == "tools/call" {
		if e := unambiguous(root.Get("params"), paramsKeys); e != nil {
			return m, e
		}
		m.tool = root.Get("params.name").Str
		m.args = root.Get("params.arguments").Raw
		if m.tool == "" {
			return m, &rpcError{status: 400, code: -32602, reason: "invalid_params", message: "invalid params: tools/call needs params.name"}
		}
		if len(m.tool) > maxToolName || !utf8.ValidString(m.tool) {
			m.tool, m.args = "", ""
			return m, &rpcError{status: 400, code: -32602, reason: "invalid_params",
				message: "invalid params: params.name must be UTF-8 of at most " + strconv.Itoa(maxToolName) + " bytes"}
		}
	}
	return m, nil
}

// maxToolName bounds a called tool's name, which logs, hooks and metrics
// carry: far above the 128 characters MCP's specification keeps names to,
// with room for /mcp's "<server>__" before them (server names have no
// bound of their own).
const maxToolName = 512

// The keys the gateway reads of a JSON-RPC message, and of a tools/call's
// params.
var (
	rpcKeys    = []string{"jsonrpc", "id", "method", "params"}
	paramsKeys = []string{"name", "arguments"}
)

// unambiguous refuses an object in which a server could read one of names
// other than the gateway does: a key given twice (the gateway reads the
// first, servers the last), or in another case (Go's encoding/json matches
// keys ignoring case). A server could otherwise run a tool or a method the
// gateway's checks never saw.
func unambiguous(obj gjson.Result, names []string) *rpcError {
	var seen uint
	var e *rpcError
	obj.ForEach(func(k, _ gjson.Result) bool {
		for i, n := range names {
			switch {
			case k.Str == n && seen&(1<<i) != 0:
				e = &rpcError{status: 400, code: rpcInvalidRequest, reason: "duplicate_key",
					message: "invalid request: the key " + strconv.Quote(n) + " appears more than once"}
			case k.Str == n:
				seen |= 1 << i
			case strings.EqualFold(k.Str, n):
				e = &rpcError{status: 400, code: rpcInvalidRequest, reason: "duplicate_key",
					message: "invalid request: the key " + strconv.Quote(k.Str) + " differs from " + strconv.Quote(n) + " only in case"}
			}
		}
		return e == nil
	})
	return e
}

// rpcError is the gateway's own JSON-RPC error answer.
type rpcError struct {
	status  int // HTTP status
	code    int
	reason  string // error.data.reason and the refusal metric's label
	message string
	headers []string // name, value pairs
}

// body is the error as a JSON-RPC response to the message with this id.
func (e *rpcError) body(id string) []byte {
	if id == "" {
		id = "null"
	}
	b := []byte(`{"jsonrpc":"2.0","id":` + id + `,"error":{"code":` + strconv.Itoa(e.code) + `,"message":`)
	b = strconv.AppendQuote(b, e.message)
	b = append(b, `,"data":{"reason":`...)
	b = strconv.AppendQuote(b, e.reason)
	return append(b, "}}}"...)
}

// refused is a policy refusal of a request the client may not make.
func refused(reason, message string) *rpcError {
	return &rpcError{status: 200, code: rpcRefused, reason: reason, message: message}
}

// answerReader reads an MCP answer as it streams: SSE events, or one JSON
// body. Each complete message whose id is the request's goes through
// onReply, which may replace it; other messages (notifications such as
// progress, server requests) pass as they are.
type answerReader struct {
	id      string // the request's id, raw JSON
	kind    byte   // 0 unknown yet, 'j' JSON, 's' SSE
	pending []byte // an incomplete event, or the JSON body so far
	size    int    // bytes of the answer seen
	onReply func(msg []byte) []byte
	// hold keeps what arrives until a message is complete (to rewrite it);
	// without it every chunk passes at once and only a copy is kept.
	hold bool
}

// maxPendingAnswer bounds what the reader keeps of one event or JSON body;
// past it the answer passes unread.
const maxPendingAnswer = 16 << 20

// feed takes a chunk and returns what to send on in its place (nil: the
// chunk unchanged).
func (r *answerReader) feed(chunk []byte, end bool) (out []byte, changed bool) {
	r.size += len(chunk)
	if r.kind == 0 {
		if t := bytes.TrimLeft(chunk, " \t\r\n"); len(t) > 0 {
			r.kind = 's'
			if t[0] == '{' || t[0] == '[' {
				r.kind = 'j'
			}
		}
	}
	if len(r.pending)+len(chunk) > maxPendingAnswer {
		r.onReply = nil // too large to read: it passes as it is
	}
	if r.onReply == nil {
		if r.hold {
			out, r.pending = append(r.pending, chunk...), nil
			return out, true
		}
		return nil, false
	}
	r.pending = append(r.pending, chunk...)
	if r.kind == 'j' {
		if !end {
			if r.hold {
				return []byte{}, true
			}
			return nil, false
		}
		msg := r.pending
		r.pending = nil
		if rep := r.reply(msg); r.hold {
			return rep, true
		}
		return nil, false
	}
	var done []byte
	for {
		i, sep := eventEnd(r.pending)
		if i < 0 {
			break
		}
		ev := r.pending[:i+sep]
		done = append(done, r.event(ev)...)
		r.pending = r.pending[i+sep:]
	}
	if end && len(r.pending) > 0 {
		done = append(done, r.pending...)
		r.pending = nil
	}
	if !r.hold {
		return nil, false
	}
	if done == nil {
		done = []byte{}
	}
	return done, true
}

// eventEnd finds the blank line that ends an SSE event: its index and
// length, or -1.
func eventEnd(b []byte) (int, int) {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i, 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i, 3
		}
	}
	return -1, 0
}

// event reads one SSE event (with its blank line) and returns it, or its
// replacement when it carried the reply.
func (r *answerReader) event(ev []byte) []byte {
	var data []byte
	var other [][]byte
	for _, line := range bytes.Split(bytes.TrimRight(ev, "\r\n"), []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if rest, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(rest, []byte(" "))...)
		} else {
			other = append(other, line)
		}
	}
	if data == nil || r.id == "" || !sameID(r.id, gjson.GetBytes(data, "id")) {
		return ev
	}
	rep := r.reply(data)
	if bytes.Equal(rep, data) {
		return ev
	}
	var out []byte
	for _, l := range other {
		out = append(append(out, l...), '\n')
	}
	for l := range bytes.SplitSeq(rep, []byte("\n")) { // a line break in the data is a data line of its own
		out = append(append(append(out, "data: "...), l...), '\n')
	}
	return append(out, '\n')
}

// sameID reports whether id is the request's (raw JSON) however the server
// wrote it: the same string ("a", "\u0061") or number (1, 1.0).
func sameID(raw string, id gjson.Result) bool {
	want := gjson.Parse(raw)
	switch {
	case want.Type == gjson.String && id.Type == gjson.String:
		return want.Str == id.Str
	case want.Type == gjson.Number && id.Type == gjson.Number:
		return want.Raw == id.Raw || want.Num == id.Num
	}
	return false
}

// reply hands the request's reply to onReply, once.
func (r *answerReader) reply(msg []byte) []byte {
	f := r.onReply
	if f == nil {
		return msg
	}
	r.onReply = nil
	return f(msg)
}

// narrowTools keeps, in a tools/list reply, the tools allowed says the
// client may call; the reply is returned unchanged when all are.
func narrowTools(msg []byte, allowed func(tool string) bool) []byte {
	tools := gjson.GetBytes(msg, "result.tools")
	if !tools.IsArray() {
		return msg
	}
	kept := []byte{'['}
	dropped := false
	tools.ForEach(func(_, t gjson.Result) bool {
		if !allowed(t.Get("name").Str) {
			dropped = true
			return true
		}
		if len(kept) > 1 {
			kept = append(kept, ',')
		}
		kept = append(kept, t.Raw...)
		return true
	})
	if !dropped {
		return msg
	}
	out, err := sjson.SetRawBytes(msg, "result.tools", append(kept, ']'))
	if err != nil {
		return msg
	}
	return out
}

// replyOutcome is the outcome of a tools/call reply: ok, tool_error (the
// tool ran and reported isError) or rpc_error.
func replyOutcome(msg []byte) string {
	switch {
	case gjson.GetBytes(msg, "error").Exists():
		return "rpc_error"
	case gjson.GetBytes(msg, "result.isError").Bool():
		return "tool_error"
	}
	return "ok"
}
