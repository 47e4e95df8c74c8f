package mockllm

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"switchyard/internal/jsonstr"
)

// Tool calls. A chat completions, Messages or Responses request that
// declares `tools` (Responses: function tools) is answered with calls of
// them when it asks for it, in one of two ways:
//
//   - the header `x-mock-tool-calls: N` calls the first N declared tools
//     (cycling through them when N is larger), N calls in parallel;
//   - text the last user message holds: each `call:NAME` calls the
//     declared tool NAME, in the order written. Clients that cannot set
//     headers, such as Claude Code, ask this way ("list the files,
//     call:Bash").
//
// The last user message is the last message of role "user" that carries no
// tool result; system-role entries (Claude Code 2.1 ends every request's
// messages with one: its environment block, then a token count after each
// tool result; Codex sends "developer" ones) are skipped wherever they are.
//
// A trigger may ask for a loop and give the arguments:
// `call:NAME*N{"command":"echo step-{n}"}` calls NAME in N turns in a row,
// one call per turn, with that JSON object as arguments, `{n}` replaced by
// the turn's number (1 to N). Without `*N` a tool is called in one turn;
// without the object the arguments are built from the tool's schema (below).
//
// When the last message is a tool result (an OpenAI role "tool" message, an
// Anthropic tool_result block, a Responses function_call_output item) and
// the loop asked for has had its turns (a turn is a run of tool results),
// the answer is text quoting the turn's results (ToolResultPrefix + the
// results joined by "\n"), so a client's tool loop ends.
//
// The arguments are built from the tool's JSON schema, deterministically:
// each required property (the first property when none is required) gets
// its enum's first value, or ToolArgString for a string, 1 for a number or
// integer, true for a boolean, [] for an array, {} for an object. A stream
// sends them in fragments cut inside the string value, and writes the
// fragment that holds a multibyte character in two flushes cut inside that
// character, so the wire splits a UTF-8 character as a real network may.
//
// A request whose body has no `"tool` anywhere (Responses: nor `_call`)
// pays one bytes.Index (two) for all this.

// ToolArgString fills every string argument of a mock tool call.
const ToolArgString = "héllo 世界"

// ToolResultPrefix starts the text answer to a tool result.
const ToolResultPrefix = "Tool result: "

// toolTrigger is the text that asks for a call of the tool named after it.
const toolTrigger = "call:"

// turnPlaceholder in a trigger's arguments is replaced by the turn number.
const turnPlaceholder = "{n}"

// maxTurns bounds the N of `call:NAME*N`.
const maxTurns = 1000

// toolMarker is in every body that declares tools or carries a chat or
// Messages tool result ("tools", "tool_result", "role":"tool"), callMarker
// in every Responses input that carries one ("function_call_output").
var (
	toolMarker = []byte(`"tool`)
	callMarker = []byte(`_call`)
)

// mayUseTools reports whether planTools has anything to do with body.
func mayUseTools(body []byte, ep endpoint) bool {
	switch ep {
	case epChat, epMessages:
		return bytes.Contains(body, toolMarker)
	case epResponses:
		return bytes.Contains(body, toolMarker) || bytes.Contains(body, callMarker)
	}
	return false
}

// toolCall is one call the mock answers with.
type toolCall struct {
	name string
	args []byte // a JSON object
}

// argFragment is the length in bytes of a streamed argument fragment,
// before it is moved back to a UTF-8 character boundary.
const argFragment = 7

// itemKind is what a conversation item is to the tool loop.
type itemKind uint8

const (
	itemSkipped itemKind = iota // system and developer messages
	itemPrompt                  // a message the user wrote
	itemResult                  // tool results
	itemOther                   // the assistant's answers and calls
)

// conversation is what planTools needs to know of a request's messages.
type conversation struct {
	prompt  gjson.Result   // the last user message; missing when none
	turns   int            // runs of tool results after it
	last    itemKind       // the last item that is not skipped
	results []gjson.Result // the last run of tool results
}

// readConversation walks a request's messages (Responses: input). Tool
// results are kept as they are and read (resultText) only for the last run.
func readConversation(items gjson.Result, ep endpoint) conversation {
	var c conversation
	if items.Type == gjson.String { // a Responses input that is one user message
		c.prompt, c.last = items, itemPrompt
		return c
	}
	items.ForEach(func(_, it gjson.Result) bool {
		kind := classify(it, ep)
		switch kind {
		case itemSkipped:
			return true
		case itemPrompt:
			c.prompt, c.turns = it, 0
		case itemResult:
			if c.last != itemResult {
				c.turns++
				c.results = c.results[:0]
			}
			c.results = append(c.results, it)
		}
		c.last = kind
		return true
	})
	return c
}

// resultTexts are the texts of the last run of tool results.
func (c *conversation) resultTexts(ep endpoint) []string {
	texts := make([]string, len(c.results))
	for i, it := range c.results {
		texts[i] = resultText(it, ep)
	}
	return texts
}

// classify says what a message (Responses: input item) is.
func classify(it gjson.Result, ep endpoint) itemKind {
	if ep == epResponses {
		switch it.Get("type").Str {
		case "function_call_output", "custom_tool_call_output":
			return itemResult
		case "", "message":
		default:
			return itemOther
		}
	}
	switch it.Get("role").Str {
	case "system", "developer":
		return itemSkipped
	case "tool":
		if ep == epChat {
			return itemResult
		}
	case "user":
		if ep != epMessages {
			return itemPrompt
		}
		var result bool
		it.Get("content").ForEach(func(_, b gjson.Result) bool {
			result = b.Get("type").Str == "tool_result"
			return !result
		})
		if result {
			return itemResult
		}
		return itemPrompt
	}
	return itemOther
}

// resultText is the text of a tool result item (classify: itemResult).
func resultText(it gjson.Result, ep endpoint) string {
	switch ep {
	case epResponses:
		return contentText(it.Get("output"))
	case epChat:
		return contentText(it.Get("content"))
	}
	var parts []string
	it.Get("content").ForEach(func(_, b gjson.Result) bool {
		if b.Get("type").Str == "tool_result" {
			parts = append(parts, contentText(b.Get("content")))
		}
		return true
	})
	return strings.Join(parts, "\n")
}

// toolDecl is a declared tool.
type toolDecl struct {
	name   string
	schema gjson.Result
}

// declaredTools lists a request's tools that the mock can call.
func declaredTools(tools gjson.Result, ep endpoint) []toolDecl {
	var decls []toolDecl
	tools.ForEach(func(_, t gjson.Result) bool {
		var name, schema gjson.Result
		switch {
		case ep == epMessages:
			name, schema = t.Get("name"), t.Get("input_schema")
		case t.Get("type").Str != "function":
		case ep == epResponses:
			name, schema = t.Get("name"), t.Get("parameters")
		default:
			name, schema = t.Get("function.name"), t.Get("function.parameters")
		}
		if name.Type == gjson.String && name.Str != "" {
			decls = append(decls, toolDecl{name.Str, schema})
		}
		return true
	})
	return decls
}

// planTools sets rq.calls or rq.answer when the body asks for tool calls or
// carries a tool result; it leaves rq alone otherwise.
func planTools(f *fields, ep endpoint, header string, rq *reqInfo) {
	items := f.messages
	if ep == epResponses {
		items = f.input
	}
	c := readConversation(items, ep)
	decls := declaredTools(f.tools, ep)
	if c.last == itemResult {
		if c.prompt.Exists() {
			rq.calls = triggeredCalls(contentText(c.prompt.Get("content")), decls, c.turns)
		}
		if rq.calls == nil {
			rq.answer = ToolResultPrefix + strings.Join(c.resultTexts(ep), "\n")
		}
		return
	}
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
	if c.last != itemPrompt {
		return
	}
	text := c.prompt.Get("content")
	if c.prompt.Type == gjson.String { // a Responses input string
		text = c.prompt
	}
	rq.calls = triggeredCalls(contentText(text), decls, 0)
}

// triggeredCalls returns the calls the triggers in text ask for in the turn
// that follows `done` turns of tool results: one per trigger whose loop has
// turns left, of a declared tool.
func triggeredCalls(text string, decls []toolDecl, done int) []toolCall {
	var calls []toolCall
	for {
		i := strings.Index(text, toolTrigger)
		if i < 0 {
			return calls
		}
		text = text[i+len(toolTrigger):]
		end := strings.IndexFunc(text, func(r rune) bool {
			return !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		})
		if end < 0 {
			end = len(text)
		}
		name := text[:end]
		text = text[end:]
		turns := 1
		if rest, ok := strings.CutPrefix(text, "*"); ok {
			j := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
			if j < 0 {
				j = len(rest)
			}
			if n, err := strconv.Atoi(rest[:j]); err == nil {
				turns = min(n, maxTurns)
				text = rest[j:]
			}
		}
		var args []byte
		if strings.HasPrefix(text, "{") {
			dec := json.NewDecoder(strings.NewReader(text))
			var raw json.RawMessage
			if dec.Decode(&raw) == nil {
				args = raw
				text = text[dec.InputOffset():]
			}
		}
		if done >= turns {
			continue
		}
		for _, d := range decls {
			if d.name != name {
				continue
			}
			if args == nil {
				args = argsFor(d.schema)
			} else {
				args = bytes.ReplaceAll(args, []byte(turnPlaceholder), strconv.AppendInt(nil, int64(done+1), 10))
			}
			calls = append(calls, toolCall{name: d.name, args: args})
			break
		}
	}
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
		b = jsonstr.Append(b, k)
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
	return jsonstr.Append(b, ToolArgString)
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
		b = jsonstr.Append(b, c.name)
		b = append(b, `,"arguments":`...)
		b = jsonstr.Append(b, string(c.args))
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
		b = jsonstr.Append(b, c.name)
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
			b = jsonstr.Append(b, c.name)
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
				b = jsonstr.Append(b, string(f))
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
			b = jsonstr.Append(b, c.name)
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
				b = jsonstr.Append(b, string(f))
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

// appendFunctionCall appends the Responses API function_call output item of
// call i; until done its arguments are still empty.
func appendFunctionCall(b []byte, rq *reqInfo, i int, done bool) []byte {
	c := rq.calls[i]
	b = append(b, `{"id":`...)
	b = appendToolCallID(b, "fc_mock", rq.seq, i)
	b = append(b, `,"type":"function_call","status":`...)
	if done {
		b = append(b, `"completed","arguments":`...)
		b = jsonstr.Append(b, string(c.args))
	} else {
		b = append(b, `"in_progress","arguments":""`...)
	}
	b = append(b, `,"call_id":`...)
	b = appendToolCallID(b, "call_mock", rq.seq, i)
	b = append(b, `,"name":`...)
	b = jsonstr.Append(b, c.name)
	return append(b, '}')
}

// streamFunctionCalls sends the Responses API events of each call, as the
// real API streams them: response.output_item.added (the function_call item
// with empty arguments), one response.function_call_arguments.delta per
// argument fragment, response.function_call_arguments.done and
// response.output_item.done; ev frames an event as in streamResponses. It
// reports whether the client is still there.
func streamFunctionCalls(ctx context.Context, rq *reqInfo, opts Options, ev func(string, func([]byte) []byte, bool) bool) bool {
	for i, c := range rq.calls {
		index := func(b []byte) []byte {
			b = append(b, `,"output_index":`...)
			return strconv.AppendInt(b, int64(i), 10)
		}
		itemFields := func(b []byte) []byte {
			b = append(b, `,"item_id":`...)
			b = appendToolCallID(b, "fc_mock", rq.seq, i)
			return index(b)
		}
		if !ev("response.output_item.added", func(b []byte) []byte {
			b = append(index(b), `,"item":`...)
			return appendFunctionCall(b, rq, i, false)
		}, false) {
			return false
		}
		for _, f := range fragments(c.args) {
			if !pause(ctx, opts.ChunkInterval, false) {
				return false
			}
			if !ev("response.function_call_arguments.delta", func(b []byte) []byte {
				b = append(itemFields(b), `,"delta":`...)
				return jsonstr.Append(b, string(f))
			}, true) {
				return false
			}
		}
		if !ev("response.function_call_arguments.done", func(b []byte) []byte {
			b = append(itemFields(b), `,"name":`...)
			b = jsonstr.Append(b, c.name)
			b = append(b, `,"arguments":`...)
			return jsonstr.Append(b, string(c.args))
		}, false) {
			return false
		}
		if !ev("response.output_item.done", func(b []byte) []byte {
			b = append(index(b), `,"item":`...)
			return appendFunctionCall(b, rq, i, true)
		}, false) {
			return false
		}
	}
	return true
}
