package mockllm

import (
	"context"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Tool calls. A chat completions or Messages request that declares `tools`
// is answered with calls of them when it asks for it, in one of two ways:
//
//   - the header `x-mock-tool-calls: N` calls the first N declared tools
//     (cycling through them when N is larger), N calls in parallel;
//   - text the last user message (OpenAI role "user", Anthropic text
//     content) holds: each `call:NAME` calls the declared tool NAME, in the
//     order written. Clients that cannot set headers, such as Claude Code,
//     ask this way ("list the files, call:Bash").
//
// When the last message is a tool result (an OpenAI role "tool" message, an
// Anthropic tool_result block), the answer is text quoting the result
// (ToolResultPrefix + the result), so a client's tool loop ends.
//
// The arguments are built from the tool's JSON schema, deterministically:
// each required property (the first property when none is required) gets
// its enum's first value, or ToolArgString for a string, 1 for a number or
// integer, true for a boolean, [] for an array, {} for an object. A stream
// sends them in fragments cut inside the string value, and writes the
// fragment that holds a multibyte character in two flushes cut inside that
// character, so the wire splits a UTF-8 character as a real network may.
//
// A request whose body has no `"tool` anywhere pays one bytes.Index for
// all this.

// ToolArgString fills every string argument of a mock tool call.
const ToolArgString = "héllo 世界"

// ToolResultPrefix starts the text answer to a tool result.
const ToolResultPrefix = "Tool result: "

// toolTrigger is the text that asks for a call of the tool named after it.
const toolTrigger = "call:"

// toolMarker is in every body that declares tools or carries a tool result
// ("tools", "tool_result", "role":"tool"); bodies without it skip planTools.
var toolMarker = []byte(`"tool`)

// toolCall is one call the mock answers with.
type toolCall struct {
	name string
	args []byte // a JSON object
}

// argFragment is the length in bytes of a streamed argument fragment,
// before it is moved back to a UTF-8 character boundary.
const argFragment = 7

// planTools sets rq.calls or rq.answer when the body asks for tool calls or
// carries a tool result; it leaves rq alone otherwise.
func planTools(body []byte, ep endpoint, header string, rq *reqInfo) {
	res := gjson.GetManyBytes(body, "messages.@reverse.0", "tools")
	last, tools := res[0], res[1]
	if result, ok := toolResult(last, ep); ok {
		rq.answer = ToolResultPrefix + result
		return
	}
	if !tools.IsArray() {
		return
	}
	type decl struct {
		name   string
		schema gjson.Result
	}
	var decls []decl
	tools.ForEach(func(_, t gjson.Result) bool {
		var name, schema gjson.Result
		if ep == epMessages {
			name, schema = t.Get("name"), t.Get("input_schema")
		} else if t.Get("type").Str == "function" {
			name, schema = t.Get("function.name"), t.Get("function.parameters")
		}
		if name.Type == gjson.String && name.Str != "" {
			decls = append(decls, decl{name.Str, schema})
		}
		return true
	})
	if len(decls) == 0 {
		return
	}
	if n, err := strconv.Atoi(header); err == nil && n > 0 {
		for i := range min(n, 128) {
			d := decls[i%len(decls)]
			rq.calls = append(rq.calls, toolCall{name: d.name, args: argsFor(d.schema)})
		}
		return
	}
	if last.Get("role").Str != "user" {
		return
	}
	text := contentText(last.Get("content"))
	for {
		i := strings.Index(text, toolTrigger)
		if i < 0 {
			return
		}
		text = text[i+len(toolTrigger):]
		end := strings.IndexFunc(text, func(r rune) bool {
			return !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		})
		if end < 0 {
			end = len(text)
		}
		name := text[:end]
		for _, d := range decls {
			if d.name == name {
				rq.calls = append(rq.calls, toolCall{name: d.name, args: argsFor(d.schema)})
				break
			}
		}
	}
}

// toolResult returns the text of the tool results in the last message,
// joined by "\n", and whether there were any.
func toolResult(last gjson.Result, ep endpoint) (string, bool) {
	if ep != epMessages {
		if last.Get("role").Str != "tool" {
			return "", false
		}
		return contentText(last.Get("content")), true
	}
	if last.Get("role").Str != "user" {
		return "", false
	}
	var parts []string
	last.Get("content").ForEach(func(_, b gjson.Result) bool {
		if b.Get("type").Str == "tool_result" {
			parts = append(parts, contentText(b.Get("content")))
		}
		return true
	})
	return strings.Join(parts, "\n"), parts != nil
}

// contentText is the text of a message content: a string, or the "text" of
// each part of an array, joined.
func contentText(c gjson.Result) string {
	if c.Type == gjson.String {
		return c.Str
	}
	var sb strings.Builder
	c.ForEach(func(_, p gjson.Result) bool {
		if t := p.Get("text"); t.Type == gjson.String {
			sb.WriteString(t.Str)
		}
		return true
	})
	return sb.String()
}

// argsFor builds the arguments object for a tool's parameter schema.
func argsFor(schema gjson.Result) []byte {
	props := schema.Get("properties")
	var keys []string
	schema.Get("required").ForEach(func(_, k gjson.Result) bool {
		if k.Type == gjson.String && props.Get(gjson.Escape(k.Str)).Exists() {
			keys = append(keys, k.Str)
		}
		return true
	})
	if keys == nil {
		props.ForEach(func(k, _ gjson.Result) bool {
			keys = append(keys, k.Str)
			return false
		})
	}
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendArgValue(b, props.Get(gjson.Escape(k)))
	}
	return append(b, '}')
}

func appendArgValue(b []byte, prop gjson.Result) []byte {
	if e := prop.Get("enum.0"); e.Exists() {
		return append(b, e.Raw...)
	}
	typ := prop.Get("type")
	if typ.IsArray() { // ["string", "null"]: the first type that is not null
		for _, t := range typ.Array() {
			if t.Str != "null" {
				typ = t
				break
			}
		}
	}
	switch typ.Str {
	case "integer", "number":
		return append(b, '1')
	case "boolean":
		return append(b, "true"...)
	case "array":
		return append(b, "[]"...)
	case "object":
		return append(b, "{}"...)
	case "null":
		return append(b, "null"...)
	}
	return appendString(b, ToolArgString)
}

// fragments cuts args into pieces of about argFragment bytes, each ending on
// a UTF-8 character boundary, so that each is a valid JSON string value and
// together they are args.
func fragments(args []byte) [][]byte {
	var out [][]byte
	for len(args) > 0 {
		n := min(argFragment, len(args))
		for n < len(args) && !utf8.RuneStart(args[n]) {
			n++
		}
		out = append(out, args[:n])
		args = args[n:]
	}
	return out
}

// splitInRune returns where to cut an event to split its first multibyte
// UTF-8 character, or -1 if it has none.
func splitInRune(ev []byte) int {
	for i, c := range ev {
		if c >= utf8.RuneSelf && utf8.RuneStart(c) {
			return i + 1
		}
	}
	return -1
}

// toolOutputTokens is the output_tokens the mock reports for its calls: one
// per call and one per argument fragment.
func toolOutputTokens(calls []toolCall) int {
	n := 0
	for _, c := range calls {
		n += 1 + len(fragments(c.args))
	}
	return n
}

// answerPieces cuts a text answer into stream chunks, a word each (the
// space before a word goes with it).
func answerPieces(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexByte(s[1:], ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// appendToolCallID appends the id of call i of a response.
func appendToolCallID(b []byte, prefix string, seq uint64, i int) []byte {
	b = append(b, '"')
	b = append(b, prefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, '"')
}

// appendChatToolCalls appends a chat message's tool_calls array.
func appendChatToolCalls(b []byte, rq *reqInfo) []byte {
	b = append(b, '[')
	for i, c := range rq.calls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendToolCallID(b, "call_mock", rq.seq, i)
		b = append(b, `,"type":"function","function":{"name":`...)
		b = appendString(b, c.name)
		b = append(b, `,"arguments":`...)
		b = appendString(b, string(c.args))
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

// appendToolUseBlocks appends a message's tool_use content blocks.
func appendToolUseBlocks(b []byte, rq *reqInfo) []byte {
	for i, c := range rq.calls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":"tool_use","id":`...)
		b = appendToolCallID(b, "toolu_mock", rq.seq, i)
		b = append(b, `,"name":`...)
		b = appendString(b, c.name)
		b = append(b, `,"input":`...)
		b = append(b, c.args...)
		b = append(b, '}')
	}
	return b
}

// streamChatToolCalls sends, per call, a chunk that opens it (index, id,
// type, name, empty arguments) and one chunk per argument fragment, as the
// real API streams tool calls; head and tail frame a chunk as in
// streamChat. It reports whether the client is still there.
func streamChatToolCalls(ctx context.Context, s *sseWriter, rq *reqInfo, opts Options, head, tail func([]byte) []byte) bool {
	first := true
	for i, c := range rq.calls {
		if !pause(ctx, opts.ChunkInterval, first) {
			return false
		}
		first = false
		if !s.event("", func(b []byte) []byte {
			b = head(b)
			b = append(b, `{"index":0,"delta":{"tool_calls":[{"index":`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `,"id":`...)
			b = appendToolCallID(b, "call_mock", rq.seq, i)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendString(b, c.name)
			b = append(b, `,"arguments":""}}]},"logprobs":null,"finish_reason":null}]`...)
			return tail(b)
		}) {
			return false
		}
		for _, f := range fragments(c.args) {
			if !pause(ctx, opts.ChunkInterval, false) {
				return false
			}
			if !s.eventCut("", func(b []byte) []byte {
				b = head(b)
				b = append(b, `{"index":0,"delta":{"tool_calls":[{"index":`...)
				b = strconv.AppendInt(b, int64(i), 10)
				b = append(b, `,"function":{"arguments":`...)
				b = appendString(b, string(f))
				b = append(b, `}}]},"logprobs":null,"finish_reason":null}]`...)
				return tail(b)
			}, true) {
				return false
			}
		}
	}
	return true
}

// streamToolUse streams the Messages events of tool calls after
// message_start: per call content_block_start (a tool_use block with empty
// input), an empty input_json_delta and one per argument fragment,
// content_block_stop; then message_delta with stop_reason tool_use and
// message_stop.
func streamToolUse(ctx context.Context, s *sseWriter, rq *reqInfo, opts Options) {
	for i, c := range rq.calls {
		if !s.event("content_block_start", func(b []byte) []byte {
			b = append(b, `{"type":"content_block_start","index":`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `,"content_block":{"type":"tool_use","id":`...)
			b = appendToolCallID(b, "toolu_mock", rq.seq, i)
			b = append(b, `,"name":`...)
			b = appendString(b, c.name)
			return append(b, `,"input":{}}}`...)
		}) {
			return
		}
		if i == 0 && !s.event("ping", func(b []byte) []byte { return append(b, `{"type":"ping"}`...) }) {
			return
		}
		frags := fragments(c.args)
		for j := -1; j < len(frags); j++ {
			var f []byte // the first delta is empty, as the real API's is
			if j >= 0 {
				f = frags[j]
				if !pause(ctx, opts.ChunkInterval, false) {
					return
				}
			}
			if !s.eventCut("content_block_delta", func(b []byte) []byte {
				b = append(b, `{"type":"content_block_delta","index":`...)
				b = strconv.AppendInt(b, int64(i), 10)
				b = append(b, `,"delta":{"type":"input_json_delta","partial_json":`...)
				b = appendString(b, string(f))
				return append(b, "}}"...)
			}, true) {
				return
			}
		}
		if !s.event("content_block_stop", func(b []byte) []byte {
			b = append(b, `{"type":"content_block_stop","index":`...)
			b = strconv.AppendInt(b, int64(i), 10)
			return append(b, '}')
		}) {
			return
		}
	}
	endMessage(s, "tool_use", toolOutputTokens(rq.calls))
}
