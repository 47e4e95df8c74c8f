package translate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"switchyard/internal/jsonstr"
)

// messagesRequestFields is the rule for every Anthropic Messages field an
// OpenAI upstream can be asked for. README.md has the same table.
var messagesRequestFields = map[string]fieldRule{
	// Translated.
	"model": accept, "messages": accept, "system": accept, "max_tokens": accept,
	"temperature": accept, "top_p": accept, "stop_sequences": accept, "stream": accept,
	"metadata": accept, "tools": accept, "tool_choice": accept,
	// Dropped: the OpenAI upstream reasons (or not) by its own model and
	// returns no thinking blocks; the rest are hints or bookkeeping.
	"thinking": accept, "service_tier": accept, "context_management": accept,
	// output_config.effort is a thinking hint too (Claude Code sends it);
	// output_config.format asks for structured output: refused.
	"output_config": refuseUnless(onlyEffort, "output_config.format (structured outputs) is not translated to OpenAI; use a tool"),
	// Refused.
	"top_k":         refuseUnless(func(gjson.Result) bool { return false }, "OpenAI has no top_k"),
	"container":     refuseAlways("Anthropic containers are not translated to OpenAI"),
	"mcp_servers":   refuseAlways("MCP servers are not translated to OpenAI"),
	"output_format": refuseAlways("structured outputs are not translated to OpenAI; use a tool"),
}

// onlyEffort accepts an output_config that holds nothing but effort.
func onlyEffort(v gjson.Result) bool {
	ok := v.IsObject()
	v.ForEach(func(k, _ gjson.Result) bool {
		ok = k.String() == "effort"
		return ok
	})
	return ok
}

// MessagesToChat translates an Anthropic Messages request into an OpenAI
// Chat Completions request for upstreamModel. A streamed request asks for
// stream_options.include_usage, so the stream ends with token usage. A
// request that cannot be translated without changing its meaning returns an
// *Error (400).
//
// The request is read in place and written in one pass (rawjson.go): its
// text goes on as the client escaped it.
func MessagesToChat(body []byte, upstreamModel string) ([]byte, error) {
	body = bytes.TrimSpace(body)
	e := endsOf(body)
	var in messagesFields
	if err := in.read(e, body, messagesRequestFields, "OpenAI Chat Completions"); err != nil {
		return nil, err
	}
	w := chatWriter{e: e, out: make([]byte, 0, len(body)+len(body)/8+512)}
	if err := w.request(&in, upstreamModel); err != nil {
		return nil, err
	}
	return w.out, nil
}

// messagesFields is a Messages request's top-level fields, raw; the last
// of a field named twice counts, as for every JSON library.
type messagesFields struct {
	system, messages, maxTokens, temperature, topP, topK, stop, stream, metadata, tools, toolChoice []byte
}

// read takes body's fields, refusing those rules refuse (for api) and
// values of the wrong type.
func (in *messagesFields) read(e *ends, body []byte, rules map[string]fieldRule, api string) *Error {
	if err := e.checkFields(body, rules, api); err != nil {
		return err
	}
	e.takeFields(body, []string{"system", "messages", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "stream", "metadata", "tools", "tool_choice"},
		&in.system, &in.messages, &in.maxTokens, &in.temperature, &in.topP, &in.topK, &in.stop, &in.stream, &in.metadata, &in.tools, &in.toolChoice)
	return in.check()
}

// check refuses a top-level field of the wrong type.
func (in *messagesFields) check() *Error {
	if err := firstError(
		wrongType(in.messages, kind(in.messages) == '[', "messages", "a list of messages"),
		wrongType(in.maxTokens, isInteger(in.maxTokens), "max_tokens", "an integer"),
		wrongType(in.temperature, isNumber(in.temperature), "temperature", "a number"),
		wrongType(in.topP, isNumber(in.topP), "top_p", "a number"),
		wrongType(in.topK, isInteger(in.topK), "top_k", "an integer"),
		wrongType(in.stop, kind(in.stop) == '[' && allStrings(in.stop), "stop_sequences", "a list of strings"),
		wrongType(in.stream, kind(in.stream) == 't' || kind(in.stream) == 'f', "stream", "true or false"),
		wrongType(in.metadata, kind(in.metadata) == '{', "metadata", "an object"),
		wrongType(in.tools, kind(in.tools) == '[', "tools", "a list of tools"),
		wrongType(in.toolChoice, kind(in.toolChoice) == '{', "tool_choice", "an object"),
	); err != nil {
		return err
	}
	var userID, typ, name, serial []byte
	(*ends)(nil).take(in.metadata, []string{"user_id"}, &userID)
	if !stringOrNull(userID) {
		return refuse("metadata: user_id must be a string")
	}
	(*ends)(nil).take(in.toolChoice, []string{"type", "name", "disable_parallel_tool_use"}, &typ, &name, &serial)
	if !stringOrNull(typ) || !stringOrNull(name) || strings.IndexByte("tfn\x00", kind(serial)) < 0 {
		return refuse("tool_choice: type and name must be strings, disable_parallel_tool_use true or false")
	}
	return nil
}

// allStrings reports whether every element of the array raw is a string.
func allStrings(raw []byte) bool {
	return (*ends)(nil).elements(raw, func(_ int, v []byte) *Error {
		if kind(v) != '"' {
			return refuse("")
		}
		return nil
	}) == nil
}

// chatWriter writes an OpenAI Chat Completions request.
type chatWriter struct {
	e        *ends // the body's
	out      []byte
	messages int          // messages written so far
	outer    blockScratch // a turn's blocks
	inner    blockScratch // a tool result's blocks
	parts    []rawPart    // a user turn's parts, reused
	results  []rawPart    // a tool result's texts, reused
	texts    [][]byte     // texts to join, reused
	calls    []rawBlock   // an assistant turn's tool calls, reused
}

// rawPart is an OpenAI content part: a text (a raw string) or an image's
// URL (raw strings whose insides, put together, are the URL).
type rawPart struct {
	text []byte
	url  [][]byte
}

// request writes in as a Chat Completions request for model, its fields in
// the order OpenAI documents them.
func (w *chatWriter) request(in *messagesFields, model string) *Error {
	w.out = jsonstr.Append(append(w.out, `{"model":`...), model)
	w.out = append(w.out, `,"messages":[`...)
	if err := w.system(in.system); err != nil {
		return err
	}
	if in.messages != nil {
		if err := w.e.elements(in.messages, w.turn); err != nil {
			return err
		}
	}
	if w.messages == 0 {
		w.out = append(w.out[:len(w.out)-1], "null"...) // no messages, as OpenAI's own SDKs write it
	} else {
		w.out = append(w.out, ']')
	}
	if n, err := strconv.ParseInt(string(in.maxTokens), 10, 0); err == nil && n > 0 {
		w.out = strconv.AppendInt(append(w.out, `,"max_completion_tokens":`...), n, 10)
	}
	w.out = member(w.out, "temperature", in.temperature)
	w.out = member(w.out, "top_p", in.topP)
	if len(in.stop) > 0 && kind(in.stop[skipSpace(in.stop, 1):]) != ']' {
		w.out = appendStrings(append(w.out, `,"stop":`...), in.stop)
	}
	if kind(in.stream) == 't' {
		w.out = append(w.out, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	if user := w.user(in.metadata); user != "" {
		w.out = jsonstr.Append(append(w.out, `,"user":`...), openAIUser(user))
	}
	if err := w.tools(in.tools); err != nil {
		return err
	}
	if err := w.toolChoice(in.toolChoice); err != nil {
		return err
	}
	w.out = append(w.out, '}')
	return nil
}

// user is metadata.user_id.
func (w *chatWriter) user(metadata []byte) string {
	var id []byte
	w.e.take(metadata, []string{"user_id"}, &id)
	return text(id)
}

// open starts a message of role: {"role":"<role>","content":
func (w *chatWriter) open(role string) {
	if w.messages > 0 {
		w.out = append(w.out, ',')
	}
	w.messages++
	w.out = append(append(append(w.out, `{"role":"`...), role...), `","content":`...)
}

// system writes the Anthropic system prompt (a string or text blocks) as
// one system message, its texts joined with blank lines; cache_control
// marks are dropped.
func (w *chatWriter) system(raw []byte) *Error {
	w.texts = w.texts[:0]
	err := w.e.eachBlock(raw, &w.outer, func(b *rawBlock) *Error {
		if b.typ != "text" {
			return refuse("block type %q is not allowed; only text", b.typ)
		}
		w.texts = append(w.texts, b.text)
		return nil
	})
	if err != nil {
		return refuse("system: %s", err.Message)
	}
	if len(w.texts) > 1 || len(w.texts) == 1 && len(w.texts[0]) > 2 {
		w.open("system")
		w.out = append(appendJoined(w.out, w.texts, `\n\n`), '}')
	}
	return nil
}

// turn writes one Anthropic turn as OpenAI messages.
func (w *chatWriter) turn(i int, m []byte) *Error {
	if kind(m) != '{' {
		return refuse("messages[%d]: want an object with a role and content", i)
	}
	role, content := w.e.turnFields(m)
	var err *Error
	switch role {
	case "user":
		err = w.userTurn(content)
	case "assistant":
		err = w.assistantTurn(content)
	case "system":
		err = w.systemTurn(content)
	default:
		err = refuse("unknown role %q", role)
	}
	if err != nil {
		err.Message = "messages[" + itoa(i) + "]: " + err.Message
	}
	return err
}

// userTurn writes a user turn: each tool_result becomes a tool message, in
// order, and the rest (with any images the results held, which OpenAI
// tool messages cannot carry) one user message after them.
func (w *chatWriter) userTurn(content []byte) *Error {
	w.parts = w.parts[:0]
	err := w.e.eachBlock(content, &w.outer, func(b *rawBlock) *Error {
		if b.typ == "tool_result" {
			return w.toolResult(b)
		}
		p, ok, err := part(b)
		if ok {
			w.parts = append(w.parts, p)
		}
		return err
	})
	if err != nil || len(w.parts) == 0 {
		return err
	}
	w.open("user")
	if len(w.parts) == 1 && w.parts[0].url == nil {
		// A lone text as a plain string, the form every OpenAI-compatible
		// server reads.
		w.out = append(appendText(w.out, w.parts[0].text), '}')
		return nil
	}
	w.out = append(w.writeParts(w.parts), '}')
	return nil
}

// writeParts appends parts as a list of OpenAI content parts.
func (w *chatWriter) writeParts(parts []rawPart) []byte {
	out := append(w.out, '[')
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		if p.url == nil {
			out = append(appendInner(append(out, `{"type":"text","text":"`...), p.text), `"}`...)
			continue
		}
		out = append(out, `{"type":"image_url","image_url":{"url":"`...)
		for _, piece := range p.url {
			out = appendInner(out, piece)
		}
		out = append(out, `"}}`...)
	}
	return append(out, ']')
}

// toolResult writes a tool_result as a tool message: its text as a string,
// or text parts when there are several; its images go to the user message
// after it. is_error has no OpenAI equivalent and is dropped; the text says
// what failed.
func (w *chatWriter) toolResult(b *rawBlock) *Error {
	texts := w.results[:0]
	err := w.e.eachBlock(b.content, &w.inner, func(c *rawBlock) *Error {
		p, ok, err := part(c)
		switch {
		case err != nil:
			return refuse("tool_result: %s", err.Message)
		case !ok:
		case p.url == nil:
			texts = append(texts, p)
		default:
			w.parts = append(w.parts, p)
		}
		return nil
	})
	w.results = texts
	if err != nil {
		if strings.HasPrefix(err.Message, "content:") {
			err.Message = "tool_result " + err.Message
		}
		return err
	}
	w.open("tool")
	switch len(texts) {
	case 0:
		w.out = append(w.out, `""`...)
	case 1:
		w.out = appendText(w.out, texts[0].text)
	default:
		w.out = w.writeParts(texts)
	}
	if id := openAIToolID(b.toolUseID); id != "" {
		w.out = jsonstr.Append(append(w.out, `,"tool_call_id":`...), id)
	}
	w.out = append(w.out, '}')
	return nil
}

// part maps a user content block; empty text gives none (ok false).
func part(b *rawBlock) (p rawPart, ok bool, err *Error) {
	switch b.typ {
	case "text":
		return rawPart{text: b.text}, len(b.text) > 2, nil
	case "image":
		if b.source == nil {
			return p, false, refuse("an image block needs a source")
		}
		s := b.source
		switch s.typ {
		case "base64":
			return rawPart{url: [][]byte{[]byte(`"data:"`), s.mediaType, []byte(`";base64,"`), s.data}}, true, nil
		case "url":
			return rawPart{url: [][]byte{s.url}}, true, nil
		}
		return p, false, refuse("image source type %q is not translated to OpenAI", s.typ)
	}
	return p, false, refuse("content block type %q is not translated to OpenAI", b.typ)
}

// assistantTurn writes an assistant turn: its texts joined, its tool_use
// blocks as tool calls; thinking blocks are dropped.
func (w *chatWriter) assistantTurn(content []byte) *Error {
	w.texts, w.calls = w.texts[:0], w.calls[:0]
	size := 0
	err := w.e.eachBlock(content, &w.outer, func(b *rawBlock) *Error {
		switch b.typ {
		case "text":
			w.texts = append(w.texts, b.text)
			size += len(b.text) - 2
		case "tool_use":
			w.calls = append(w.calls, *b)
		case "thinking", "redacted_thinking":
		default:
			return refuse("assistant block type %q is not translated to OpenAI", b.typ)
		}
		return nil
	})
	if err != nil || size == 0 && len(w.calls) == 0 {
		return err
	}
	w.open("assistant")
	if size == 0 {
		w.out = append(w.out, "null"...)
	} else {
		w.out = appendJoined(w.out, w.texts, "")
	}
	if len(w.calls) > 0 {
		w.out = append(w.out, `,"tool_calls":[`...)
		for i := range w.calls {
			if i > 0 {
				w.out = append(w.out, ',')
			}
			w.toolCall(&w.calls[i])
		}
		w.out = append(w.out, ']')
	}
	w.out = append(w.out, '}')
	return nil
}

// toolCall writes a tool_use block as an OpenAI tool call.
func (w *chatWriter) toolCall(b *rawBlock) {
	w.out = append(w.out, '{')
	if id := openAIToolID(b.id); id != "" {
		w.out = append(jsonstr.Append(append(w.out, `"id":`...), id), ',')
	}
	w.out = append(w.out, `"type":"function","function":{`...)
	if b.name != "" {
		w.out = append(jsonstr.Append(append(w.out, `"name":`...), b.name), ',')
	}
	w.out = append(appendValueAsString(append(w.out, `"arguments":`...), b.input), "}}"...)
}

// systemTurn writes a system message inside the conversation (Claude Code
// sends them) where it is, as OpenAI takes system messages anywhere.
func (w *chatWriter) systemTurn(content []byte) *Error {
	w.texts = w.texts[:0]
	size := 0
	err := w.e.eachBlock(content, &w.outer, func(b *rawBlock) *Error {
		if b.typ != "text" {
			return refuse("system message block type %q is not translated to OpenAI", b.typ)
		}
		w.texts = append(w.texts, b.text)
		size += len(b.text) - 2
		return nil
	})
	if err != nil || size == 0 {
		return err
	}
	w.open("system")
	w.out = append(appendJoined(w.out, w.texts, ""), '}')
	return nil
}

// tools writes Anthropic client tools as OpenAI function tools.
func (w *chatWriter) tools(raw []byte) *Error {
	n := 0
	err := w.e.elements(raw, func(i int, v []byte) *Error {
		t, err := w.e.clientTool(i, v, "tools: Anthropic tool type %q is not translated to OpenAI; only client tools are")
		if err != nil {
			return err
		}
		if n == 0 {
			w.out = append(w.out, `,"tools":[`...)
		} else {
			w.out = append(w.out, ',')
		}
		n++
		w.out = jsonstr.Append(append(w.out, `{"type":"function","function":{"name":`...), text(t.name))
		if kind(t.description) == '"' && len(t.description) > 2 {
			w.out = appendText(append(w.out, `,"description":`...), t.description)
		}
		if t.schema != nil {
			w.out = append(append(w.out, `,"parameters":`...), t.schema...)
		}
		w.out = append(w.out, "}}"...)
		return nil
	})
	if n > 0 {
		w.out = append(w.out, ']')
	}
	return err
}

// toolChoice writes tool_choice: auto, any (required), none, or one tool;
// disable_parallel_tool_use as parallel_tool_calls false.
func (w *chatWriter) toolChoice(raw []byte) *Error {
	if raw == nil {
		return nil
	}
	typ, name, serial := w.e.toolChoiceFields(raw)
	switch typ {
	case "auto":
		w.out = append(w.out, `,"tool_choice":"auto"`...)
	case "any":
		w.out = append(w.out, `,"tool_choice":"required"`...)
	case "none":
		w.out = append(w.out, `,"tool_choice":"none"`...)
	case "tool":
		w.out = append(jsonstr.Append(append(w.out, `,"tool_choice":{"function":{"name":`...), name), `},"type":"function"}`...)
	default:
		return refuse("tool_choice type %q is not translated to OpenAI", typ)
	}
	if serial && typ != "none" {
		w.out = append(w.out, `,"parallel_tool_calls":false`...)
	}
	return nil
}

// rawBlock is an Anthropic content block as its fields stand in the body:
// typ decoded, the others raw (nil: absent or null).
type rawBlock struct {
	typ, id, name, toolUseID string
	isError                  bool
	text, input, content     []byte
	source                   *rawSource
}

// rawSource is an image block's source.
type rawSource struct {
	typ                  string
	mediaType, data, url []byte
}

// clientTool is the i-th of a Messages request's tools. A tool of a type
// other than a client tool's is refused with serverTool, a format given
// the type.
func (e *ends) clientTool(i int, v []byte, serverTool string) (t clientTool, err *Error) {
	if kind(v) != '{' {
		return t, refuse("tools[%d]: want an object", i)
	}
	var typRaw []byte
	e.take(v, []string{"type", "name", "description", "input_schema"}, &typRaw, &t.name, &t.description, &t.schema)
	if typ := text(typRaw); typ != "" && typ != "custom" {
		return t, refuse(serverTool, typ)
	}
	if !stringOrNull(typRaw) || !stringOrNull(t.name) || !stringOrNull(t.description) {
		return t, refuse("tools[%d]: name and description must be strings", i)
	}
	return t, nil
}

// clientTool is a Messages request's tool, raw.
type clientTool struct{ name, description, schema []byte }

// toolChoiceFields is a Messages request's tool_choice (check has found
// its fields' types).
func (e *ends) toolChoiceFields(raw []byte) (typ, name string, serial bool) {
	var t, n, s []byte
	e.take(raw, []string{"type", "name", "disable_parallel_tool_use"}, &t, &n, &s)
	return text(t), text(n), kind(s) == 't'
}

// turnFields is a turn's role and raw content.
func (e *ends) turnFields(m []byte) (role string, content []byte) {
	var r []byte
	e.take(m, []string{"role", "content"}, &r, &content)
	return text(r), content
}

// blockScratch is where eachBlock reads each block, reused.
type blockScratch struct {
	block  rawBlock
	source rawSource
}

// eachBlock calls f with each block of content: a string (one text
// block), a list of blocks, or nothing. Each is read into s.
func (e *ends) eachBlock(content []byte, s *blockScratch, f func(b *rawBlock) *Error) *Error {
	switch kind(content) {
	case 0, 'n':
		return nil
	case '"':
		s.block = rawBlock{typ: "text", text: content}
		return f(&s.block)
	case '[':
		return e.elements(content, func(_ int, v []byte) *Error {
			if !e.readBlock(v, s) {
				return refuse("content: want a string or a list of content blocks")
			}
			return f(&s.block)
		})
	}
	return refuse("content: want a string or a list of content blocks")
}

// readBlock reads the block raw into b (and its source into src), or
// reports that raw is not one: not an object, or a field of the wrong type.
func (e *ends) readBlock(raw []byte, s *blockScratch) bool {
	b := &s.block
	*b = rawBlock{}
	if kind(raw) != '{' {
		return false
	}
	ok := true
	str := func(v []byte) []byte {
		if !stringOrNull(v) {
			ok = false
		}
		if kind(v) == 'n' {
			return nil
		}
		return v
	}
	e.members(raw, func(name string, v []byte) *Error {
		switch name {
		case "type":
			b.typ = text(str(v))
		case "text":
			b.text = str(v)
		case "id":
			b.id = text(str(v))
		case "name":
			b.name = text(str(v))
		case "tool_use_id":
			b.toolUseID = text(str(v))
		case "input":
			b.input = v
		case "content":
			b.content = v
		case "is_error":
			b.isError = kind(v) == 't'
			ok = ok && (kind(v) == 't' || kind(v) == 'f' || kind(v) == 'n')
		case "source":
			b.source = e.readSource(v, &s.source)
			ok = ok && (kind(v) == 'n' || b.source != nil)
		}
		return nil
	})
	if b.text == nil {
		b.text = []byte(`""`)
	}
	return ok
}

// readSource reads an image source, nil for anything but an object or
// one whose fields are not strings.
func (e *ends) readSource(raw []byte, src *rawSource) *rawSource {
	if kind(raw) != '{' {
		return nil
	}
	*src = rawSource{}
	ok := true
	e.members(raw, func(name string, v []byte) *Error {
		switch name {
		case "type":
			src.typ = text(v)
		case "media_type":
			src.mediaType = v
		case "data":
			src.data = v
		case "url":
			src.url = v
		default:
			return nil
		}
		ok = ok && stringOrNull(v)
		return nil
	})
	if !ok {
		return nil
	}
	return src
}

// toolUseToChat maps a tool_use block to an OpenAI tool call, in a
// request's history and in an answer alike.
func toolUseToChat(b block) chatToolCall {
	args := compactJSON(b.Input)
	if args == nil {
		args = []byte(`{}`)
	}
	return chatToolCall{ID: b.ID, Type: "function", Function: chatFunctionCall{Name: b.Name, Arguments: string(args)}}
}

// openAIUserMax is the longest user OpenAI accepts.
const openAIUserMax = 64

// openAIUser is a Messages request's metadata.user_id as OpenAI's user:
// Claude Code sends some 150 characters there (a JSON object of device,
// account and session ids), which OpenAI refuses. A longer id becomes its
// SHA-256 in hex, 64 characters: the same user stays one user.
func openAIUser(id string) string {
	if len(id) <= openAIUserMax {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}
