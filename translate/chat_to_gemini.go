package translate

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"switchyard/internal/jsonstr"
)

// chatGeminiFields is the rule for every OpenAI Chat Completions field a
// Gemini upstream can be asked for. README.md has the same table.
var chatGeminiFields = map[string]fieldRule{
	// Translated.
	"model": accept, "messages": accept, "max_tokens": accept, "max_completion_tokens": accept,
	"temperature": accept, "top_p": accept, "stop": accept, "stream": accept,
	"tools": accept, "tool_choice": accept,
	"parallel_tool_calls": refuseUnless(func(v gjson.Result) bool { return v.Type == gjson.True },
		"Gemini cannot limit a turn to one function call; leave parallel_tool_calls out"),
	// Dropped: Gemini always reports usage; the rest are hints or
	// bookkeeping that do not change what the answer means.
	"stream_options": accept, "user": accept, "seed": accept, "store": accept, "metadata": accept,
	"service_tier": accept, "prompt_cache_key": accept, "safety_identifier": accept,
	"reasoning_effort": accept, "verbosity": accept,
	// Refused unless neutral.
	"n":                 refuseUnless(func(v gjson.Result) bool { return v.Int() == 1 }, "the gateway asks Gemini for one candidate; send n=1 or leave it out"),
	"logprobs":          refuseUnless(isFalse, "log probabilities are not translated to Gemini"),
	"top_logprobs":      refuseUnless(isZero, "log probabilities are not translated to Gemini"),
	"presence_penalty":  refuseUnless(isZero, "penalties are not translated to Gemini"),
	"frequency_penalty": refuseUnless(isZero, "penalties are not translated to Gemini"),
	"logit_bias":        refuseUnless(isEmpty, "Gemini has no logit bias"),
	"modalities": refuseUnless(func(v gjson.Result) bool { return v.Raw == `["text"]` },
		"only text answers are translated from Gemini"),
	"response_format": refuseUnless(func(v gjson.Result) bool { return v.Get("type").String() == "text" },
		"JSON mode and JSON schemas are not translated to Gemini; describe the format in the prompt or use a tool"),
	"audio":              refuseAlways("audio answers are not translated from Gemini"),
	"prediction":         refuseAlways("Gemini has no predicted outputs"),
	"web_search_options": refuseAlways("web search is not translated to Gemini"),
	"functions":          refuseAlways("the legacy functions field is not translated; use tools"),
	"function_call":      refuseAlways("the legacy function_call field is not translated; use tool_choice"),
}

// messagesGeminiFields is the rule for every Anthropic Messages field a
// Gemini upstream can be asked for. README.md has the same table.
var messagesGeminiFields = map[string]fieldRule{
	// Translated.
	"model": accept, "messages": accept, "system": accept, "max_tokens": accept,
	"temperature": accept, "top_p": accept, "top_k": accept, "stop_sequences": accept, "stream": accept,
	"tools": accept, "tool_choice": accept,
	// Dropped: Gemini thinks (or not) by its own model and the gateway
	// passes no thought parts on; the rest are hints or bookkeeping.
	"metadata": accept, "thinking": accept, "service_tier": accept, "context_management": accept,
	"output_config": refuseUnless(onlyEffort, "output_config.format (structured outputs) is not translated to Gemini; use a tool"),
	// Refused.
	"container":     refuseAlways("Anthropic containers are not translated to Gemini"),
	"mcp_servers":   refuseAlways("MCP servers are not translated to Gemini"),
	"output_format": refuseAlways("structured outputs are not translated to Gemini; use a tool"),
}

// ChatToGemini translates an OpenAI Chat Completions request into a Gemini
// generateContent request (the model and the choice of streaming travel in
// the path, not the body). A request that cannot be translated without
// changing its meaning returns an *Error (400).
func ChatToGemini(body []byte) ([]byte, error) {
	written, err := chatToMessages(body, chatGeminiFields, "Gemini", messagesOptions{})
	if err != nil {
		return nil, err
	}
	return messagesToGemini(written)
}

// MessagesToGemini translates an Anthropic Messages request into a Gemini
// generateContent request. A request that cannot be translated without
// changing its meaning returns an *Error (400).
func MessagesToGemini(body []byte) ([]byte, error) {
	return messagesToGemini(body)
}

// messagesToGemini reads a Messages request in place and writes it in
// Gemini's shape in one pass (rawjson.go); a chat request reaches it
// written as one.
func messagesToGemini(body []byte) ([]byte, error) {
	body = bytes.TrimSpace(body)
	e := endsOf(body)
	var in messagesFields
	if err := in.read(e, body, messagesGeminiFields, "Gemini"); err != nil {
		return nil, err
	}
	w := geminiWriter{e: e, out: make([]byte, 0, len(body)+len(body)/8+512), names: map[string]string{}}
	if err := w.request(&in); err != nil {
		return nil, err
	}
	return w.out, nil
}

// geminiWriter writes a Gemini generateContent request.
type geminiWriter struct {
	e   *ends
	out []byte
	// role is the open content's ("": none): consecutive turns of one role
	// make one content.
	role     string
	contents int
	names    map[string]string // tool call id -> function name
	outer    blockScratch      // a turn's blocks
	inner    blockScratch      // a tool result's blocks
}

// request writes in, its fields in the order Gemini documents them.
func (w *geminiWriter) request(in *messagesFields) *Error {
	w.out = append(w.out, '{')
	if err := w.system(in); err != nil {
		return err
	}
	w.out = append(w.out, `"contents":[`...)
	if err := w.e.elements(in.messages, w.turn); err != nil {
		return err
	}
	if w.contents == 0 {
		return refuse("messages: Gemini needs at least one message with content")
	}
	w.out = append(w.out, "]}]"...)
	tools, err := w.tools(in.tools)
	if err != nil {
		return err
	}
	if err := w.toolChoice(in.toolChoice, tools > 0); err != nil {
		return err
	}
	w.generationConfig(in)
	w.out = append(w.out, '}')
	return nil
}

// system writes the system prompt and every system turn (Claude Code
// sends them), in order, as the system instruction.
func (w *geminiWriter) system(in *messagesFields) *Error {
	n := 0
	text := func(b *rawBlock) *Error {
		if b.typ != "text" {
			return refuse("system: block type %q is not allowed; only text", b.typ)
		}
		if len(b.text) > 2 {
			if n++; n == 1 {
				w.out = append(w.out, `"systemInstruction":{"parts":[`...)
			} else {
				w.out = append(w.out, ',')
			}
			w.out = append(appendInner(append(w.out, `{"text":"`...), b.text), `"}`...)
		}
		return nil
	}
	if err := w.e.eachBlock(in.system, &w.outer, text); err != nil {
		if strings.HasPrefix(err.Message, "content:") {
			err.Message = "system: " + err.Message
		}
		return err
	}
	err := w.e.elements(in.messages, func(i int, m []byte) *Error {
		role, content := w.e.turnFields(m)
		if role != "system" {
			return nil
		}
		if err := w.e.eachBlock(content, &w.outer, text); err != nil {
			if strings.HasPrefix(err.Message, "content:") {
				err.Message = "messages[" + itoa(i) + "]: " + err.Message
			}
			return err
		}
		return nil
	})
	if n > 0 {
		w.out = append(w.out, "]},"...)
	}
	return err
}

// turn writes one Messages turn as parts of a Gemini content: user stays
// user, assistant becomes model; tool_use blocks become function calls
// (their ids remembered in names) and tool_result blocks function
// responses named by the call they answer.
func (w *geminiWriter) turn(i int, m []byte) *Error {
	if kind(m) != '{' {
		return refuse("messages[%d]: want an object with a role and content", i)
	}
	role, content := w.e.turnFields(m)
	var err *Error
	switch role {
	case "system":
		return nil // in the system instruction
	case "user", "assistant":
		err = w.e.eachBlock(content, &w.outer, func(b *rawBlock) *Error { return w.part(b, role) })
	default:
		err = refuse("unknown role %q", role)
	}
	if err != nil {
		err.Message = "messages[" + itoa(i) + "]: " + err.Message
	}
	return err
}

// openPart makes room for a part of a content of role: a comma in the open
// content of that role, or a new content.
func (w *geminiWriter) openPart(role string) {
	if role == "assistant" {
		role = "model"
	}
	if w.role == role {
		w.out = append(w.out, ',')
		return
	}
	if w.role != "" {
		w.out = append(w.out, "]},"...)
	}
	w.role = role
	w.contents++
	w.out = append(append(append(w.out, `{"role":"`...), role...), `","parts":[`...)
}

// part writes one block of a turn of role as a Gemini part.
func (w *geminiWriter) part(b *rawBlock, role string) *Error {
	switch b.typ {
	case "text":
		if len(b.text) > 2 {
			w.openPart(role)
			w.out = append(appendInner(append(w.out, `{"text":"`...), b.text), `"}`...)
		}
		return nil
	case "image":
		// Gemini takes images inline: only base64 images are translated.
		s := b.source
		if s == nil || s.typ != "base64" || len(s.mediaType) <= 2 {
			return refuse("images are translated to Gemini only as base64 data (a data: URL, or a base64 source)")
		}
		w.openPart(role)
		w.out = append(appendInner(append(w.out, `{"inlineData":{"mimeType":"`...), s.mediaType), `","data":"`...)
		w.out = append(appendInner(w.out, s.data), `"}}`...)
		return nil
	case "tool_use":
		return w.call(b, role)
	case "tool_result":
		return w.response(b, role)
	case "thinking", "redacted_thinking":
		if role == "assistant" {
			return nil // Gemini's thoughts are its own; earlier ones are not sent back
		}
	}
	return refuse("content block type %q is not translated to Gemini", b.typ)
}

// call writes a tool_use block as a function call, with the thought
// signature its id carries.
func (w *geminiWriter) call(b *rawBlock, role string) *Error {
	if role != "assistant" {
		return refuse("a tool_use block belongs in an assistant turn")
	}
	w.names[b.id] = b.name
	args := b.input
	if kind(args) == 0 || kind(args) == 'n' {
		args = []byte(`{}`)
	}
	w.openPart(role)
	w.out = jsonstr.Append(append(w.out, `{"functionCall":{"name":`...), b.name)
	w.out = append(append(append(w.out, `,"args":`...), args...), '}')
	if _, sig := splitSignature(b.id); sig != "" {
		w.out = jsonstr.Append(append(w.out, `,"thoughtSignature":`...), sig)
	}
	w.out = append(w.out, '}')
	return nil
}

// response writes a tool_result block as a function response named by the
// call it answers: {"content": text}, or {"error": text} for a result
// marked is_error.
func (w *geminiWriter) response(b *rawBlock, role string) *Error {
	name, ok := w.names[b.toolUseID]
	if !ok {
		return refuse("tool_result %q answers no earlier tool call; Gemini names function responses by their call", b.toolUseID)
	}
	var texts [][]byte
	err := w.e.eachBlock(b.content, &w.inner, func(c *rawBlock) *Error {
		if c.typ != "text" {
			return refuse("tool results are translated to Gemini as text only, got a %q block", c.typ)
		}
		texts = append(texts, c.text)
		return nil
	})
	if err != nil {
		return err
	}
	key := `{"content":`
	if b.isError {
		key = `{"error":`
	}
	w.openPart(role)
	w.out = append(jsonstr.Append(append(w.out, `{"functionResponse":{"name":`...), name), `,"response":`...)
	w.out = append(appendJoined(append(w.out, key...), texts, `\n`), "}}}"...)
	return nil
}

// tools writes the client tools as function declarations.
func (w *geminiWriter) tools(raw []byte) (int, *Error) {
	n := 0
	err := w.e.elements(raw, func(i int, v []byte) *Error {
		t, err := w.e.clientTool(i, v, "tools: tool type %q is not translated to Gemini; only function tools are")
		if err != nil {
			return err
		}
		if n++; n == 1 {
			w.out = append(w.out, `,"tools":[{"functionDeclarations":[`...)
		} else {
			w.out = append(w.out, ',')
		}
		w.out = jsonstr.Append(append(w.out, `{"name":`...), text(t.name))
		if kind(t.description) == '"' && len(t.description) > 2 {
			w.out = appendText(append(w.out, `,"description":`...), t.description)
		}
		if t.schema != nil {
			w.out = append(append(w.out, `,"parametersJsonSchema":`...), t.schema...)
		}
		w.out = append(w.out, '}')
		return nil
	})
	if n > 0 {
		w.out = append(w.out, "]}]"...)
	}
	return n, err
}

// toolChoice maps tool_choice: auto -> AUTO, any -> ANY, tool -> ANY with
// that one name allowed, none -> NONE. Gemini cannot keep a turn to one
// call: disable_parallel_tool_use is refused.
func (w *geminiWriter) toolChoice(raw []byte, haveTools bool) *Error {
	if raw == nil || !haveTools {
		return nil
	}
	typ, name, serial := w.e.toolChoiceFields(raw)
	if serial && typ != "none" {
		return refuse("tool_choice: Gemini cannot limit a turn to one function call (disable_parallel_tool_use)")
	}
	var mode string
	switch typ {
	case "auto":
		mode = "AUTO"
	case "any", "tool":
		mode = "ANY"
	case "none":
		mode = "NONE"
	default:
		return refuse("tool_choice type %q is not translated to Gemini", typ)
	}
	w.out = append(append(w.out, `,"toolConfig":{"functionCallingConfig":{"mode":"`...), mode...)
	w.out = append(w.out, '"')
	if typ == "tool" {
		w.out = append(jsonstr.Append(append(w.out, `,"allowedFunctionNames":[`...), name), ']')
	}
	w.out = append(w.out, "}}"...)
	return nil
}

// generationConfig writes what the request sets of max_tokens,
// temperature, top_p, top_k and stop_sequences.
func (w *geminiWriter) generationConfig(in *messagesFields) {
	start := len(w.out)
	w.out = append(w.out, `,"generationConfig":{`...)
	fields := len(w.out)
	if n, err := strconv.ParseInt(string(in.maxTokens), 10, 0); err == nil && n != 0 {
		w.out = strconv.AppendInt(append(w.out, `"maxOutputTokens":`...), n, 10)
	}
	w.out = configField(w.out, fields, "temperature", in.temperature)
	w.out = configField(w.out, fields, "topP", in.topP)
	w.out = configField(w.out, fields, "topK", in.topK)
	if len(in.stop) > 0 && kind(in.stop[skipSpace(in.stop, 1):]) != ']' {
		if len(w.out) > fields {
			w.out = append(w.out, ',')
		}
		w.out = appendStrings(append(w.out, `"stopSequences":`...), in.stop)
	}
	if len(w.out) == fields {
		w.out = w.out[:start] // nothing set
		return
	}
	w.out = append(w.out, '}')
}

// configField appends the member name with the raw value v, unless v is
// nil, after a comma unless it is the first since fields.
func configField(out []byte, fields int, name string, v []byte) []byte {
	if v == nil {
		return out
	}
	if len(out) > fields {
		out = append(out, ',')
	}
	return append(append(append(append(out, '"'), name...), '"', ':'), v...)
}
