package translate

import (
	"strings"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"

	"switchyard/bodyscan"
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
func ChatToMessages(body []byte, upstreamModel string) ([]byte, error) {
	if err := checkFields(body, chatRequestFields, "Anthropic Messages"); err != nil {
		return nil, err
	}
	var in chatRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, refuse("reading the request: %v", err)
	}
	out, err := chatToMessagesRequest(&in, upstreamModel)
	if err != nil {
		return nil, err
	}
	fitToolIDs(out.Messages)
	return mustMarshal(out), nil
}

// fitToolIDs gives the ids of msgs' tool calls and results the form
// Anthropic accepts (AnthropicToolID). The Gemini translation, which
// shares chatToMessagesRequest, keeps them as they are: a Gemini 3 call's
// id carries its thought signature.
//
// OpenAI refuses a call or a result without an id; some clients of
// OpenAI-compatible servers send them so, meaning each result for the
// calls before it in order. Anthropic refuses two calls with one id, so
// the n-th call without an id gets unnamedToolID(n) and the n-th result
// without one answers it; a client's own id that could be one of those is
// made another (AnthropicToolID of it, hashed).
func fitToolIDs(msgs []messagesMessageOut) {
	var calls, results int
	for _, m := range msgs {
		for i := range m.Content {
			switch b := &m.Content[i]; {
			case b.Type == "tool_use" && b.ID == "":
				b.ID = unnamedToolID(calls)
				calls++
			case b.Type == "tool_use":
				b.ID = fitToolID(b.ID)
			case b.Type == "tool_result" && b.ToolUseID == "":
				b.ToolUseID = unnamedToolID(results)
				results++
			case b.Type == "tool_result":
				b.ToolUseID = fitToolID(b.ToolUseID)
			}
		}
	}
}

// unnamedPrefix begins the ids fitToolIDs gives calls without one.
const unnamedPrefix = "toolu_unnamed_"

// unnamedToolID is the id of the n-th tool call without one (fitToolIDs).
func unnamedToolID(n int) string { return unnamedPrefix + itoa(n) }

// fitToolID is a client's tool id as Anthropic accepts it, never one that
// unnamedToolID gives.
func fitToolID(id string) string {
	if strings.HasPrefix(id, unnamedPrefix) {
		return toolIDFrom("toolu_", id, anthropicToolIDMax)
	}
	return AnthropicToolID(id)
}

// chatToMessagesRequest is ChatToMessages after the field checks; the
// Gemini translation starts from its result too.
func chatToMessagesRequest(in *chatRequest, upstreamModel string) (*messagesRequestOut, *Error) {
	out := &messagesRequestOut{
		Model:       upstreamModel,
		MaxTokens:   DefaultMaxTokens,
		Temperature: in.Temperature,
		TopP:        in.TopP,
		Stream:      in.Stream,
	}
	switch {
	case in.MaxCompletionTokens != nil:
		out.MaxTokens = *in.MaxCompletionTokens
	case in.MaxTokens != nil:
		out.MaxTokens = *in.MaxTokens
	}
	if in.User != "" {
		out.Metadata = &messagesMetadata{UserID: in.User}
	}
	var err *Error
	if out.StopSequences, err = stopSequences(in.Stop); err != nil {
		return nil, err
	}
	if out.System, out.Messages, err = chatMessagesToMessages(in.Messages); err != nil {
		return nil, err
	}
	for _, t := range in.Tools {
		if t.Type != "function" {
			return nil, refuse("tools: tool type %q is not translated to Anthropic; only function tools are", t.Type)
		}
		schema := t.Function.Parameters
		if isNull(schema) {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, messagesTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	parallel := in.ParallelToolCalls
	if len(out.Tools) == 0 {
		parallel = nil // without tools it says nothing
	}
	if out.ToolChoice, err = chatToolChoice(in.ToolChoice, parallel); err != nil {
		return nil, err
	}
	return out, nil
}

// messagesRequestOut is the Anthropic request this package writes: system
// as blocks, message content always as blocks.
type messagesRequestOut struct {
	Model         string               `json:"model"`
	System        []block              `json:"system,omitempty"`
	Messages      []messagesMessageOut `json:"messages"`
	MaxTokens     int                  `json:"max_tokens"`
	Temperature   *float64             `json:"temperature,omitempty"`
	TopP          *float64             `json:"top_p,omitempty"`
	StopSequences []string             `json:"stop_sequences,omitempty"`
	Stream        bool                 `json:"stream,omitempty"`
	Metadata      *messagesMetadata    `json:"metadata,omitempty"`
	Tools         []messagesTool       `json:"tools,omitempty"`
	ToolChoice    *messagesToolChoice  `json:"tool_choice,omitempty"`
}

type messagesMessageOut struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

func stopSequences(raw json.RawMessage) ([]string, *Error) {
	if isNull(raw) {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, refuse("stop: want a string or a list of strings")
	}
	return list, nil
}

// chatToolChoice maps tool_choice and parallel_tool_calls: "auto" -> auto,
// "required" -> any, {"function":{name}} -> tool, "none" -> none;
// parallel_tool_calls=false sets disable_parallel_tool_use.
func chatToolChoice(raw json.RawMessage, parallel *bool) (*messagesToolChoice, *Error) {
	var tc *messagesToolChoice
	if !isNull(raw) {
		v := gjson.ParseBytes(raw)
		mode := v.String()
		if v.IsObject() {
			mode = v.Get("type").String()
		}
		switch mode {
		case "auto":
			tc = &messagesToolChoice{Type: "auto"}
		case "required":
			tc = &messagesToolChoice{Type: "any"}
		case "none":
			tc = &messagesToolChoice{Type: "none"}
		case "function":
			name := v.Get("function.name").String()
			if name == "" {
				return nil, refuse("tool_choice: a function choice needs function.name")
			}
			tc = &messagesToolChoice{Type: "tool", Name: name}
		default:
			return nil, refuse("tool_choice %s is not translated to Anthropic", v.Raw)
		}
	}
	if parallel != nil && !*parallel && (tc == nil || tc.Type != "none") {
		if tc == nil {
			tc = &messagesToolChoice{Type: "auto"}
		}
		tc.DisableParallelToolUse = true
	}
	return tc, nil
}

// chatMessagesToMessages moves every system and developer message into the
// Anthropic system prompt (in order) and turns the rest into alternating
// turns: tool messages become tool_result blocks of a user turn, and
// consecutive messages of one role are merged into one turn.
func chatMessagesToMessages(msgs []chatMessage) ([]block, []messagesMessageOut, *Error) {
	var system []block
	var out []messagesMessageOut
	add := func(role string, blocks ...block) {
		if len(blocks) == 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].Role == role {
			out[n-1].Content = append(out[n-1].Content, blocks...)
			return
		}
		out = append(out, messagesMessageOut{Role: role, Content: blocks})
	}
	for i, m := range msgs {
		blocks, err := chatContent(m.Content, m.Role)
		if err != nil {
			err.Message = "messages[" + itoa(i) + "]: " + err.Message
			return nil, nil, err
		}
		switch m.Role {
		case "system", "developer":
			for _, b := range blocks {
				if b.Type != "text" {
					return nil, nil, refuse("messages[%d]: a %s message may hold only text", i, m.Role)
				}
			}
			system = append(system, blocks...)
		case "user":
			add("user", blocks...)
		case "assistant":
			for j, tc := range m.ToolCalls {
				input, err := toolArguments(tc.Function.Arguments)
				if err != nil {
					return nil, nil, refuse("messages[%d].tool_calls[%d]: %s", i, j, err.Message)
				}
				blocks = append(blocks, block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
			}
			add("assistant", blocks...)
		case "tool":
			result := block{Type: "tool_result", ToolUseID: m.ToolCallID, Content: toolResultContent(blocks)}
			// tool_result blocks must lead their user turn; a user turn
			// already holding text after them starts a new turn.
			if n := len(out); n > 0 && out[n-1].Role == "user" && out[n-1].Content[len(out[n-1].Content)-1].Type != "tool_result" {
				out = append(out, messagesMessageOut{Role: "user"})
			}
			if n := len(out); n > 0 && out[n-1].Role == "user" {
				out[n-1].Content = append(out[n-1].Content, result)
			} else {
				out = append(out, messagesMessageOut{Role: "user", Content: []block{result}})
			}
		case "function":
			return nil, nil, refuse("messages[%d]: the legacy function role is not translated; use tool", i)
		default:
			return nil, nil, refuse("messages[%d]: unknown role %q", i, m.Role)
		}
	}
	return system, out, nil
}

// chatContent turns a message's content (a string, a list of parts, or
// null) into Anthropic blocks. Text that is empty or only whitespace is
// left out: Anthropic refuses such text blocks, and many OpenAI-compatible
// models answer "\n\n" beside their tool calls, which clients send back.
func chatContent(raw json.RawMessage, role string) ([]block, *Error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if isString(raw) && json.Unmarshal(raw, &s) == nil {
		if blank(s) {
			return nil, nil
		}
		return []block{{Type: "text", Text: s}}, nil
	}
	var parts []chatPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, refuse("content: want a string or a list of parts")
	}
	var blocks []block
	for _, p := range parts {
		switch p.Type {
		case "text":
			if !blank(p.Text) {
				blocks = append(blocks, block{Type: "text", Text: p.Text})
			}
		case "refusal":
			if !blank(p.Refusal) {
				blocks = append(blocks, block{Type: "text", Text: p.Refusal})
			}
		case "image_url":
			if p.ImageURL == nil {
				return nil, refuse("content: an image_url part needs image_url.url")
			}
			src, err := imageSourceFor(p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, block{Type: "image", Source: src})
		default:
			return nil, refuse("content part type %q is not translated to Anthropic", p.Type)
		}
	}
	return blocks, nil
}

// imageSourceFor maps an OpenAI image URL: a base64 data: URL becomes a
// base64 source, an http(s) URL a url source.
func imageSourceFor(url string) (*imageSource, *Error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || mediaType == "" {
			return nil, refuse("image_url: only base64 data: URLs (data:<type>;base64,...) are translated")
		}
		return &imageSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return &imageSource{Type: "url", URL: url}, nil
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
	return compactJSON([]byte(args)), nil
}

// toolResultContent is a tool message's content as tool_result content: a
// string when it is text alone (the common case), blocks otherwise.
func toolResultContent(blocks []block) json.RawMessage {
	switch {
	case len(blocks) == 0:
		return json.RawMessage(`""`)
	case len(blocks) == 1 && blocks[0].Type == "text":
		return mustMarshal(blocks[0].Text)
	}
	return mustMarshal(blocks)
}
