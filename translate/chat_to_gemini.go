package translate

import (
	"strings"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"
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
	// Written with system and every turn's content as blocks.
	var m messagesRequestOut
	if err := json.Unmarshal(written, &m); err != nil {
		return nil, refuse("reading the request: %v", err)
	}
	out, err := messagesToGemini(&m, nil)
	if err != nil {
		return nil, err
	}
	return mustMarshal(out), nil
}

// MessagesToGemini translates an Anthropic Messages request into a Gemini
// generateContent request. A request that cannot be translated without
// changing its meaning returns an *Error (400).
func MessagesToGemini(body []byte) ([]byte, error) {
	if err := checkFields(body, messagesGeminiFields, "Gemini"); err != nil {
		return nil, err
	}
	return messagesBodyToGemini(body)
}

// messagesBodyToGemini is MessagesToGemini after the field checks.
func messagesBodyToGemini(body []byte) ([]byte, error) {
	var in messagesRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, refuse("reading the request: %v", err)
	}
	m := &messagesRequestOut{MaxTokens: in.MaxTokens, Temperature: in.Temperature, TopP: in.TopP,
		StopSequences: in.StopSequences, Tools: in.Tools, ToolChoice: in.ToolChoice}
	var err *Error
	if m.System, err = messagesContent(in.System); err != nil {
		return nil, refuse("system: %s", err.Message)
	}
	for i, msg := range in.Messages {
		blocks, err := messagesContent(msg.Content)
		if err != nil {
			return nil, refuse("messages[%d]: %s", i, err.Message)
		}
		m.Messages = append(m.Messages, messagesMessageOut{Role: msg.Role, Content: blocks})
	}
	out, err := messagesToGemini(m, in.TopK)
	if err != nil {
		return nil, err
	}
	return mustMarshal(out), nil
}

// messagesRequestOut is a Messages request as the Gemini translation reads
// it: system as blocks, message content always as blocks.
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

// messagesToGemini writes a Messages request (as the Anthropic translation
// holds it) in Gemini's shape.
func messagesToGemini(m *messagesRequestOut, topK *int) (*geminiRequest, *Error) {
	out := &geminiRequest{}
	// System messages among the turns (Claude Code sends them) join the
	// system instruction, in order, as the chat translation does.
	system := m.System
	for _, msg := range m.Messages {
		if msg.Role == "system" {
			system = append(system, msg.Content...)
		}
	}
	if sys, err := geminiSystem(system); err != nil {
		return nil, err
	} else if sys != nil {
		out.SystemInstruction = sys
	}
	names := map[string]string{} // tool call id -> function name
	for i, msg := range m.Messages {
		if msg.Role == "system" {
			continue
		}
		c, err := geminiTurn(msg, names)
		if err != nil {
			err.Message = "messages[" + itoa(i) + "]: " + err.Message
			return nil, err
		}
		if len(c.Parts) == 0 {
			continue
		}
		if n := len(out.Contents); n > 0 && out.Contents[n-1].Role == c.Role {
			out.Contents[n-1].Parts = append(out.Contents[n-1].Parts, c.Parts...)
			continue
		}
		out.Contents = append(out.Contents, c)
	}
	if len(out.Contents) == 0 {
		return nil, refuse("messages: Gemini needs at least one message with content")
	}
	var err *Error
	if out.Tools, err = geminiTools(m.Tools); err != nil {
		return nil, err
	}
	if out.ToolConfig, err = geminiToolChoice(m.ToolChoice, len(out.Tools) > 0); err != nil {
		return nil, err
	}
	g := geminiGenConfig{MaxOutputTokens: m.MaxTokens, Temperature: m.Temperature, TopP: m.TopP, TopK: topK, StopSequences: m.StopSequences}
	if g.MaxOutputTokens != 0 || g.Temperature != nil || g.TopP != nil || g.TopK != nil || len(g.StopSequences) > 0 {
		out.GenerationConfig = &g
	}
	return out, nil
}

func geminiSystem(blocks []block) (*geminiContent, *Error) {
	var parts []geminiPart
	for _, b := range blocks {
		if b.Type != "text" {
			return nil, refuse("system: block type %q is not allowed; only text", b.Type)
		}
		if b.Text != "" {
			parts = append(parts, geminiPart{Text: b.Text})
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	return &geminiContent{Parts: parts}, nil
}

// geminiTurn turns one Messages turn into a Gemini content: user stays
// user, assistant becomes model; tool_use blocks become function calls
// (their ids remembered in names) and tool_result blocks function
// responses named by the call they answer.
func geminiTurn(m messagesMessageOut, names map[string]string) (geminiContent, *Error) {
	c := geminiContent{Role: "user"}
	switch m.Role {
	case "user":
	case "assistant":
		c.Role = "model"
	default:
		return c, refuse("unknown role %q", m.Role)
	}
	for _, b := range m.Content {
		p, err := geminiPartFor(b, m.Role, names)
		if err != nil {
			return c, err
		}
		if p != nil {
			c.Parts = append(c.Parts, *p)
		}
	}
	return c, nil
}

func geminiPartFor(b block, role string, names map[string]string) (*geminiPart, *Error) {
	switch b.Type {
	case "text":
		if b.Text == "" {
			return nil, nil
		}
		return &geminiPart{Text: b.Text}, nil
	case "image":
		blob, err := geminiBlobFor(b.Source)
		if err != nil {
			return nil, err
		}
		return &geminiPart{InlineData: blob}, nil
	case "tool_use":
		if role != "assistant" {
			return nil, refuse("a tool_use block belongs in an assistant turn")
		}
		names[b.ID] = b.Name
		args := b.Input
		if isNull(args) {
			args = json.RawMessage(`{}`)
		}
		_, sig := splitSignature(b.ID)
		return &geminiPart{FunctionCall: &geminiFunctionCall{Name: b.Name, Args: args}, ThoughtSignature: sig}, nil
	case "tool_result":
		name, ok := names[b.ToolUseID]
		if !ok {
			return nil, refuse("tool_result %q answers no earlier tool call; Gemini names function responses by their call", b.ToolUseID)
		}
		resp, err := geminiToolResult(b)
		if err != nil {
			return nil, err
		}
		return &geminiPart{FunctionResponse: &geminiFunctionResponse{Name: name, Response: resp}}, nil
	case "thinking", "redacted_thinking":
		if role == "assistant" {
			return nil, nil // Gemini's thoughts are its own; earlier ones are not sent back
		}
	}
	return nil, refuse("content block type %q is not translated to Gemini", b.Type)
}

// geminiBlobFor maps an image: Gemini takes images inline, so only base64
// images are translated.
func geminiBlobFor(src *imageSource) (*geminiBlob, *Error) {
	if src == nil || src.Type != "base64" || src.MediaType == "" {
		return nil, refuse("images are translated to Gemini only as base64 data (a data: URL, or a base64 source)")
	}
	return &geminiBlob{MimeType: src.MediaType, Data: src.Data}, nil
}

// geminiToolResult is a tool result as a function response object:
// {"content": text}, or {"error": text} for a result marked is_error.
func geminiToolResult(b block) (json.RawMessage, *Error) {
	blocks, err := messagesContent(b.Content)
	if err != nil {
		return nil, err
	}
	texts := make([]string, 0, len(blocks))
	for _, c := range blocks {
		if c.Type != "text" {
			return nil, refuse("tool results are translated to Gemini as text only, got a %q block", c.Type)
		}
		texts = append(texts, c.Text)
	}
	key := "content"
	if b.IsError {
		key = "error"
	}
	return mustMarshal(map[string]string{key: strings.Join(texts, "\n")}), nil
}

func geminiTools(tools []messagesTool) ([]geminiTool, *Error) {
	if len(tools) == 0 {
		return nil, nil
	}
	decls := make([]geminiFunctionDecl, 0, len(tools))
	for _, t := range tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, refuse("tools: tool type %q is not translated to Gemini; only function tools are", t.Type)
		}
		decls = append(decls, geminiFunctionDecl{Name: t.Name, Description: t.Description, ParametersJSONSchema: t.InputSchema})
	}
	return []geminiTool{{FunctionDeclarations: decls}}, nil
}

// geminiToolChoice maps tool_choice: auto -> AUTO, any -> ANY, tool -> ANY
// with that one name allowed, none -> NONE. Gemini cannot keep a turn to one
// call: disable_parallel_tool_use is refused.
func geminiToolChoice(tc *messagesToolChoice, haveTools bool) (*geminiToolConfig, *Error) {
	if tc == nil || !haveTools {
		return nil, nil
	}
	if tc.DisableParallelToolUse && tc.Type != "none" {
		return nil, refuse("tool_choice: Gemini cannot limit a turn to one function call (disable_parallel_tool_use)")
	}
	c := geminiFunctionCallingConfig{}
	switch tc.Type {
	case "auto":
		c.Mode = "AUTO"
	case "any":
		c.Mode = "ANY"
	case "none":
		c.Mode = "NONE"
	case "tool":
		c.Mode, c.AllowedFunctionNames = "ANY", []string{tc.Name}
	default:
		return nil, refuse("tool_choice type %q is not translated to Gemini", tc.Type)
	}
	return &geminiToolConfig{FunctionCallingConfig: c}, nil
}
