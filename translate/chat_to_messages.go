package translate

import (
	"bytes"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"

	"switchyard/bodyscan"

	"switchyard/internal/jsonstr"
)

// chatRequestFields is the rule for every OpenAI Chat Completions field an
// Anthropic upstream can be asked for. README.md has the same table.
var chatRequestFields = map[string]fieldRule{
	// Translated.
	"model": accept, "messages": accept, "max_tokens": accept, "max_completion_tokens": accept,
	"temperature": refuseUnless(func(v gjson.Result) bool { return v.Float() <= 1 },
		"Anthropic accepts a temperature from 0 to 1; OpenAI's 1 to 2 has no equivalent"),
	"top_p": accept, "stop": accept, "stream": accept, "user": accept,
	"tools": accept, "tool_choice": accept, "parallel_tool_calls": accept,
	// Dropped: Anthropic always streams usage; the rest are hints or
	// bookkeeping that do not change what the answer means.
	"stream_options": accept, "seed": accept, "store": accept, "metadata": accept,
	"service_tier": accept, "prompt_cache_key": accept, "safety_identifier": accept,
	"reasoning_effort": accept, "verbosity": accept,
	// Refused unless neutral.
	"n":                 refuseUnless(func(v gjson.Result) bool { return v.Int() == 1 }, "Anthropic returns one choice per request; send n=1 or leave it out"),
	"logprobs":          refuseUnless(isFalse, "Anthropic does not return log probabilities"),
	"top_logprobs":      refuseUnless(isZero, "Anthropic does not return log probabilities"),
	"presence_penalty":  refuseUnless(isZero, "Anthropic has no presence penalty"),
	"frequency_penalty": refuseUnless(isZero, "Anthropic has no frequency penalty"),
	"logit_bias":        refuseUnless(isEmpty, "Anthropic has no logit bias"),
	"modalities": refuseUnless(func(v gjson.Result) bool { return v.Raw == `["text"]` },
		"Anthropic answers in text only"),
	"response_format": refuseUnless(func(v gjson.Result) bool { return v.Get("type").String() == "text" },
		"JSON mode and JSON schemas are not translated to Anthropic; describe the format in the prompt or use a tool"),
	"audio":              refuseAlways("Anthropic does not produce audio"),
	"prediction":         refuseAlways("Anthropic has no predicted outputs"),
	"web_search_options": refuseAlways("web search is not translated to Anthropic"),
	"functions":          refuseAlways("the legacy functions field is not translated; use tools"),
	"function_call":      refuseAlways("the legacy function_call field is not translated; use tool_choice"),
}

// ChatToMessages translates an OpenAI Chat Completions request into an
// Anthropic Messages request for upstreamModel. A request that cannot be
// translated without changing its meaning returns an *Error (400).
//
// The request is read in place and written in one pass (rawjson.go): its
// text goes on as the client escaped it.
func ChatToMessages(body []byte, upstreamModel string) ([]byte, error) {
	out, err := chatToMessages(body, chatRequestFields, "Anthropic Messages",
		messagesOptions{model: upstreamModel, fitIDs: true, maxTokens: DefaultMaxTokens})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// messagesOptions is what the Anthropic and Gemini translations of a chat
// request do differently.
type messagesOptions struct {
	model string
	// fitIDs gives tool ids the form Anthropic accepts (fitToolID). OpenAI
	// refuses a call or a result without an id; some clients of
	// OpenAI-compatible servers send them so, meaning each result for the
	// calls before it in order. Anthropic refuses two calls with one id, so
	// the n-th call without an id gets unnamedToolID(n) and the n-th result
	// without one answers it; a client's own id that could be one of those
	// is made another. The Gemini translation keeps ids as they are: a
	// Gemini 3 call's id carries its thought signature.
	fitIDs bool
	// maxTokens is max_tokens when the client sets none (0: left out).
	maxTokens int
}

// chatToMessages reads a chat request, refusing the fields rules refuse,
// and writes it as a Messages request.
func chatToMessages(body []byte, rules map[string]fieldRule, api string, o messagesOptions) ([]byte, *Error) {
	body = bytes.TrimSpace(body)
	e := endsOf(body)
	var in chatFields
	if err := in.read(e, body, rules, api); err != nil {
		return nil, err
	}
	w := messagesWriter{e: e, o: o, out: make([]byte, 0, len(body)+len(body)/8+512)}
	return w.request(&in)
}

// chatFields is a chat request's top-level fields, raw (nil: absent or
// null); the last of a field named twice counts.
type chatFields struct {
	messages, maxTokens, maxCompletionTokens, temperature, topP, stop, stream []byte
	user, tools, toolChoice, parallel                                         []byte
}

// read takes body's fields, refusing those rules refuse (for api) and
// values of the wrong type.
func (in *chatFields) read(e *ends, body []byte, rules map[string]fieldRule, api string) *Error {
	if err := e.checkFields(body, rules, api); err != nil {
		return err
	}
	e.takeFields(body, []string{"messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream", "user", "tools", "tool_choice", "parallel_tool_calls"},
		&in.messages, &in.maxTokens, &in.maxCompletionTokens, &in.temperature, &in.topP, &in.stop, &in.stream, &in.user, &in.tools, &in.toolChoice, &in.parallel)
	return in.check()
}

// check refuses a top-level field of the wrong type.
func (in *chatFields) check() *Error {
	return firstError(
		wrongType(in.stop, kind(in.stop) == '"' || kind(in.stop) == '[' && allStrings(in.stop), "stop", "a string or a list of strings"),
		wrongType(in.messages, kind(in.messages) == '[', "messages", "a list of messages"),
		wrongType(in.maxTokens, isInteger(in.maxTokens), "max_tokens", "an integer"),
		wrongType(in.maxCompletionTokens, isInteger(in.maxCompletionTokens), "max_completion_tokens", "an integer"),
		wrongType(in.temperature, isNumber(in.temperature), "temperature", "a number"),
		wrongType(in.topP, isNumber(in.topP), "top_p", "a number"),
		wrongType(in.stream, kind(in.stream) == 't' || kind(in.stream) == 'f', "stream", "true or false"),
		wrongType(in.user, kind(in.user) == '"', "user", "a string"),
		wrongType(in.tools, kind(in.tools) == '[', "tools", "a list of tools"),
		wrongType(in.toolChoice, kind(in.toolChoice) == '"' || kind(in.toolChoice) == '{', "tool_choice", "a string or an object"),
		wrongType(in.parallel, kind(in.parallel) == 't' || kind(in.parallel) == 'f', "parallel_tool_calls", "true or false"),
	)
}

// messagesWriter writes an Anthropic Messages request.
type messagesWriter struct {
	e   *ends
	o   messagesOptions
	out []byte
	// role is the open turn's ("": none), last the type of its last block:
	// consecutive messages of one role make one turn.
	role, last     string
	turns          int
	calls, results int       // tool calls and results without an id so far
	parts          []chatBit // one message's content, reused
	tools          int       // tools written
}

// chatBit is a piece of a chat message's content as Anthropic takes it: a
// text (a raw string) or an image's source, written.
type chatBit struct {
	text   []byte
	source []byte
}

// request writes in, its fields in the order Anthropic documents them.
func (w *messagesWriter) request(in *chatFields) ([]byte, *Error) {
	if in.stop != nil && kind(in.stop) == '"' && len(in.stop) == 2 {
		in.stop = nil // "" stops nothing
	}
	w.out = jsonstr.Append(append(w.out, `{"model":`...), w.o.model)
	w.system(in.messages)
	w.out = append(w.out, `,"messages":[`...)
	if in.messages != nil {
		if err := w.e.elements(in.messages, w.message); err != nil {
			return nil, err
		}
	}
	w.closeTurn()
	if w.turns == 0 {
		w.out = append(w.out[:len(w.out)-1], "null"...)
	} else {
		w.out = append(w.out, ']')
	}
	out := w.out
	switch {
	case in.maxCompletionTokens != nil:
		out = append(append(out, `,"max_tokens":`...), in.maxCompletionTokens...)
	case in.maxTokens != nil:
		out = append(append(out, `,"max_tokens":`...), in.maxTokens...)
	case w.o.maxTokens > 0:
		out = strconv.AppendInt(append(out, `,"max_tokens":`...), int64(w.o.maxTokens), 10)
	}
	out = member(out, "temperature", in.temperature)
	out = member(out, "top_p", in.topP)
	switch kind(in.stop) {
	case '"':
		out = append(appendText(append(out, `,"stop_sequences":[`...), in.stop), ']')
	case '[':
		if kind(in.stop[skipSpace(in.stop, 1):]) != ']' {
			out = appendStrings(append(out, `,"stop_sequences":`...), in.stop)
		}
	}
	if kind(in.stream) == 't' {
		out = append(out, `,"stream":true`...)
	}
	if len(in.user) > 2 {
		out = append(appendText(append(out, `,"metadata":{"user_id":`...), in.user), '}')
	}
	out, err := w.writeTools(out, in.tools)
	if err != nil {
		return nil, err
	}
	if out, err = w.toolChoice(out, in.toolChoice, in.parallel); err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// system writes the system and developer messages, wherever they are
// among the turns, as the system prompt's blocks, in order. One that
// message refuses ends them: the request is refused.
func (w *messagesWriter) system(msgs []byte) {
	n := 0
	w.e.elements(msgs, func(_ int, m []byte) *Error {
		role, content := w.e.turnFields(m)
		if role != "system" && role != "developer" {
			return nil
		}
		if err := w.content(content); err != nil {
			return err
		}
		for _, p := range w.parts {
			if p.text == nil {
				return refuse("")
			}
			if n++; n == 1 {
				w.out = append(w.out, `,"system":[`...)
			} else {
				w.out = append(w.out, ',')
			}
			w.out = w.writeBit(w.out, p)
		}
		return nil
	})
	if n > 0 {
		w.out = append(w.out, ']')
	}
}

// message writes one chat message: system and developer messages join the
// system prompt; the rest become alternating turns, tool messages
// tool_result blocks of a user turn.
func (w *messagesWriter) message(i int, m []byte) *Error {
	if kind(m) != '{' {
		return refuse("messages[%d]: want an object with a role and content", i)
	}
	var roleRaw, content, calls, callID []byte
	w.e.take(m, []string{"role", "content", "tool_calls", "tool_call_id"}, &roleRaw, &content, &calls, &callID)
	if !stringOrNull(roleRaw) || !stringOrNull(callID) || kind(calls) != 0 && kind(calls) != 'n' && kind(calls) != '[' {
		return refuse("messages[%d]: role and tool_call_id must be strings, tool_calls a list", i)
	}
	if err := w.content(content); err != nil {
		return refuse("messages[%d]: %s", i, err.Message)
	}
	switch role := text(roleRaw); role {
	case "system", "developer": // written before the turns (system)
		for _, p := range w.parts {
			if p.text == nil {
				return refuse("messages[%d]: a %s message may hold only text", i, role)
			}
		}
	case "user":
		for _, p := range w.parts {
			w.openBlock("user")
			w.out = w.writeBit(w.out, p)
		}
	case "assistant":
		for _, p := range w.parts {
			w.openBlock("assistant")
			w.out = w.writeBit(w.out, p)
		}
		return w.toolCalls(i, calls)
	case "tool":
		w.toolResult(callID)
	case "function":
		return refuse("messages[%d]: the legacy function role is not translated; use tool", i)
	default:
		return refuse("messages[%d]: unknown role %q", i, role)
	}
	return nil
}

// openBlock makes room in the turns for a block of role: a comma in the
// open turn of that role, or a new turn.
func (w *messagesWriter) openBlock(role string) {
	if w.role == role {
		w.out = append(w.out, ',')
		return
	}
	w.closeTurn()
	w.role = role
	if w.turns > 0 {
		w.out = append(w.out, ',')
	}
	w.out = append(append(append(w.out, `{"role":"`...), role...), `","content":[`...)
	w.turns++
}

// closeTurn ends the open turn, if any.
func (w *messagesWriter) closeTurn() {
	if w.role != "" {
		w.out = append(w.out, "]}"...)
		w.role, w.last = "", ""
	}
}

// writeBit appends p as an Anthropic text or image block.
func (w *messagesWriter) writeBit(out []byte, p chatBit) []byte {
	w.last = "text"
	if p.text == nil {
		w.last = "image"
		return append(append(append(out, `{"type":"image","source":`...), p.source...), '}')
	}
	return append(appendInner(append(out, `{"type":"text","text":"`...), p.text), `"}`...)
}

// toolResult writes a tool message as a tool_result block, leading a user
// turn: a user turn already holding other blocks starts a new one.
func (w *messagesWriter) toolResult(callID []byte) {
	if w.role == "user" && w.last != "tool_result" {
		w.closeTurn()
	}
	w.openBlock("user")
	w.out = append(w.out, `{"type":"tool_result"`...)
	if id := w.toolID(callID, &w.results); id != "" {
		w.out = jsonstr.Append(append(w.out, `,"tool_use_id":`...), id)
	}
	w.out = append(w.out, `,"content":`...)
	switch {
	case len(w.parts) == 0:
		w.out = append(w.out, `""`...)
	case len(w.parts) == 1 && w.parts[0].text != nil:
		w.out = appendText(w.out, w.parts[0].text)
	default:
		w.out = append(w.out, '[')
		for i, p := range w.parts {
			if i > 0 {
				w.out = append(w.out, ',')
			}
			w.out = w.writeBit(w.out, p)
		}
		w.out = append(w.out, ']')
	}
	w.out = append(w.out, '}')
	w.last = "tool_result"
}

// toolID is a tool call's or result's id (raw) as written: with fitIDs,
// the form Anthropic accepts, and for none the next of unnamed.
func (w *messagesWriter) toolID(raw []byte, unnamed *int) string {
	id := text(raw)
	switch {
	case !w.o.fitIDs:
	case id == "":
		id = unnamedToolID(*unnamed)
		*unnamed++
	default:
		id = fitToolID(id)
	}
	return id
}

// toolCalls writes an assistant message's tool calls as tool_use blocks.
func (w *messagesWriter) toolCalls(i int, calls []byte) *Error {
	if kind(calls) != '[' {
		return nil
	}
	return w.e.elements(calls, func(j int, c []byte) *Error {
		var id, typ, fn, name, args []byte
		w.e.take(c, []string{"id", "type", "function"}, &id, &typ, &fn)
		w.e.take(fn, []string{"name", "arguments"}, &name, &args)
		if kind(c) != '{' || !stringOrNull(id) || !stringOrNull(typ) || !stringOrNull(name) || !stringOrNull(args) ||
			kind(fn) != 0 && kind(fn) != 'n' && kind(fn) != '{' {
			return refuse("messages[%d].tool_calls[%d]: want an object with a string id and a function of strings name and arguments", i, j)
		}
		input, err := toolArguments(text(args))
		if err != nil {
			return refuse("messages[%d].tool_calls[%d]: %s", i, j, err.Message)
		}
		w.openBlock("assistant")
		w.out = append(w.out, `{"type":"tool_use"`...)
		if callID := w.toolID(id, &w.calls); callID != "" {
			w.out = jsonstr.Append(append(w.out, `,"id":`...), callID)
		}
		if n := text(name); n != "" {
			w.out = jsonstr.Append(append(w.out, `,"name":`...), n)
		}
		w.out = append(append(append(w.out, `,"input":`...), input...), '}')
		w.last = "tool_use"
		return nil
	})
}

// content reads a message's content (a string, a list of parts, or null)
// into w.parts. Text that is empty or only whitespace is left out:
// Anthropic refuses such text blocks, and many OpenAI-compatible models
// answer "\n\n" beside their tool calls, which clients send back.
func (w *messagesWriter) content(raw []byte) *Error {
	w.parts = w.parts[:0]
	switch kind(raw) {
	case 0, 'n':
		return nil
	case '"':
		if !blankRaw(raw) {
			w.parts = append(w.parts, chatBit{text: raw})
		}
		return nil
	case '[':
		return w.e.elements(raw, func(_ int, p []byte) *Error { return w.part(p) })
	}
	return refuse("content: want a string or a list of parts")
}

// part reads one content part into w.parts.
func (w *messagesWriter) part(raw []byte) *Error {
	if kind(raw) != '{' {
		return refuse("content: want a string or a list of parts")
	}
	var typ string
	var txt, refusal, image []byte
	ok := true
	w.e.members(raw, func(k string, v []byte) *Error {
		switch k {
		case "type":
			typ, ok = text(v), ok && stringOrNull(v)
		case "text":
			txt, ok = v, ok && stringOrNull(v)
		case "refusal":
			refusal, ok = v, ok && stringOrNull(v)
		case "image_url":
			image, ok = v, ok && (kind(v) == '{' || kind(v) == 'n')
		}
		return nil
	})
	if !ok {
		return refuse("content: want a string or a list of parts")
	}
	switch typ {
	case "text", "refusal":
		if typ == "refusal" {
			txt = refusal
		}
		if kind(txt) == '"' && !blankRaw(txt) {
			w.parts = append(w.parts, chatBit{text: txt})
		}
		return nil
	case "image_url":
		if kind(image) != '{' {
			return refuse("content: an image_url part needs image_url.url")
		}
		var url []byte
		w.e.take(image, []string{"url"}, &url)
		src, err := imageSourceFor(url)
		if err != nil {
			return err
		}
		w.parts = append(w.parts, chatBit{source: src})
		return nil
	}
	return refuse("content part type %q is not translated to Anthropic", typ)
}

// writeTools writes the function tools as Anthropic tools.
func (w *messagesWriter) writeTools(out []byte, raw []byte) ([]byte, *Error) {
	err := w.e.elements(raw, func(i int, t []byte) *Error {
		var typRaw, fn, name, description, schema []byte
		if kind(t) != '{' {
			return refuse("tools[%d]: want an object", i)
		}
		w.e.take(t, []string{"type", "function"}, &typRaw, &fn)
		w.e.take(fn, []string{"name", "description", "parameters"}, &name, &description, &schema)
		if !stringOrNull(typRaw) || !stringOrNull(name) || !stringOrNull(description) || kind(fn) != 0 && kind(fn) != 'n' && kind(fn) != '{' {
			return refuse("tools[%d]: want a type and a function of strings name and description", i)
		}
		if typ := text(typRaw); typ != "function" {
			return refuse("tools: tool type %q is not translated to Anthropic; only function tools are", typ)
		}
		if w.tools == 0 {
			out = append(out, `,"tools":[`...)
		} else {
			out = append(out, ',')
		}
		w.tools++
		out = jsonstr.Append(append(out, `{"name":`...), text(name))
		if kind(description) == '"' && len(description) > 2 {
			out = appendText(append(out, `,"description":`...), description)
		}
		if schema == nil || kind(schema) == 'n' {
			schema = []byte(`{"type":"object","properties":{}}`)
		}
		out = append(append(append(out, `,"input_schema":`...), schema...), '}')
		return nil
	})
	if w.tools > 0 {
		out = append(out, ']')
	}
	return out, err
}

// toolChoice maps tool_choice and parallel_tool_calls: "auto" -> auto,
// "required" -> any, {"function":{name}} -> tool, "none" -> none;
// parallel_tool_calls=false sets disable_parallel_tool_use (without tools
// it says nothing).
func (w *messagesWriter) toolChoice(out []byte, raw, parallel []byte) ([]byte, *Error) {
	var typ, name string
	if raw != nil {
		v := gjson.Parse(inPlace(raw))
		mode := v.String()
		if v.IsObject() {
			mode = v.Get("type").String()
		}
		switch mode {
		case "auto", "none":
			typ = mode
		case "required":
			typ = "any"
		case "function":
			if name = v.Get("function.name").String(); name == "" {
				return nil, refuse("tool_choice: a function choice needs function.name")
			}
			typ = "tool"
		default:
			return nil, refuse("tool_choice %s is not translated to Anthropic", v.Raw)
		}
	}
	serial := w.tools > 0 && kind(parallel) == 'f' && typ != "none"
	if serial && typ == "" {
		typ = "auto"
	}
	if typ == "" {
		return out, nil
	}
	out = jsonstr.Append(append(out, `,"tool_choice":{"type":`...), typ)
	if name != "" {
		out = jsonstr.Append(append(out, `,"name":`...), name)
	}
	if serial {
		out = append(out, `,"disable_parallel_tool_use":true`...)
	}
	return append(out, '}'), nil
}

// blankRaw reports whether the string raw is empty or only whitespace.
func blankRaw(raw []byte) bool {
	in := raw[1 : len(raw)-1]
	for i := 0; i < len(in); i++ {
		switch in[i] {
		case ' ', '\t', '\n', '\r':
		case '\\':
			if i+1 < len(in) && (in[i+1] == 'n' || in[i+1] == 't' || in[i+1] == 'r' || in[i+1] == 'f') {
				i++
				continue
			}
			return blank(text(raw))
		default:
			if in[i] >= 0x80 {
				return blank(text(raw))
			}
			return false
		}
	}
	return true
}

// unnamedPrefix begins the ids given to calls without one (fitIDs).
const unnamedPrefix = "toolu_unnamed_"

// unnamedToolID is the id of the n-th tool call without one (fitIDs).
func unnamedToolID(n int) string { return unnamedPrefix + itoa(n) }

// fitToolID is a client's tool id as Anthropic accepts it, never one that
// unnamedToolID gives.
func fitToolID(id string) string {
	if strings.HasPrefix(id, unnamedPrefix) {
		return toolIDFrom("toolu_", id, anthropicToolIDMax)
	}
	return AnthropicToolID(id)
}

// imageSourceFor writes the Anthropic source of an OpenAI image URL: a
// base64 data: URL becomes a base64 source, an http(s) URL a url source.
func imageSourceFor(raw []byte) ([]byte, *Error) {
	url := text(raw)
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || mediaType == "" {
			return nil, refuse("image_url: only base64 data: URLs (data:<type>;base64,...) are translated")
		}
		src := jsonstr.Append([]byte(`{"type":"base64","media_type":`), mediaType)
		if data != "" {
			src = jsonstr.Append(append(src, `,"data":`...), data)
		}
		return append(src, '}'), nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return append(jsonstr.Append([]byte(`{"type":"url","url":`), url), '}'), nil
	}
	return nil, refuse("image_url: want an http(s) or data: URL")
}

// blank reports whether text is empty or only whitespace.
func blank(text string) bool { return strings.TrimSpace(text) == "" }

// toolArguments parses a tool call's arguments string into the JSON object
// Anthropic wants as input; empty arguments are an empty object.
func toolArguments(args string) (json.RawMessage, *Error) {
	if strings.TrimSpace(args) == "" {
		return json.RawMessage(`{}`), nil
	}
	if bodyscan.NestsDeeperThan(args, bodyscan.MaxNesting) {
		return nil, refuse("function.arguments nests deeper than %d levels", bodyscan.MaxNesting)
	}
	if !gjson.Valid(args) || !gjson.Parse(args).IsObject() {
		return nil, refuse("function.arguments is not a JSON object")
	}
	input := compactJSON([]byte(args))
	if input == nil {
		return nil, refuse("function.arguments is not a JSON object")
	}
	return input, nil
}
