package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"
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
func MessagesToChat(body []byte, upstreamModel string) ([]byte, error) {
	if err := checkFields(body, messagesRequestFields, "OpenAI Chat Completions"); err != nil {
		return nil, err
	}
	var in messagesRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, refuse("reading the request: %v", err)
	}
	out := chatRequestOut{
		Model:       upstreamModel,
		Temperature: in.Temperature,
		TopP:        in.TopP,
		Stop:        in.StopSequences,
		Stream:      in.Stream,
	}
	if in.MaxTokens > 0 {
		out.MaxCompletionTokens = in.MaxTokens
	}
	if in.Stream {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if in.Metadata != nil {
		out.User = openAIUser(in.Metadata.UserID)
	}
	system, err := systemText(in.System)
	if err != nil {
		return nil, err
	}
	if system != "" {
		out.Messages = append(out.Messages, chatMessageOut{Role: "system", Content: system})
	}
	for i, m := range in.Messages {
		msgs, err := messagesMessageToChat(m)
		if err != nil {
			err.Message = "messages[" + itoa(i) + "]: " + err.Message
			return nil, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	fitChatToolIDs(out.Messages)
	for _, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, refuse("tools: Anthropic tool type %q is not translated to OpenAI; only client tools are", t.Type)
		}
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: chatFunction{
			Name: t.Name, Description: t.Description, Parameters: t.InputSchema,
		}})
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			out.ToolChoice = "auto"
		case "any":
			out.ToolChoice = "required"
		case "none":
			out.ToolChoice = "none"
		case "tool":
			out.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return nil, refuse("tool_choice type %q is not translated to OpenAI", tc.Type)
		}
		if tc.DisableParallelToolUse && tc.Type != "none" {
			f := false
			out.ParallelToolCalls = &f
		}
	}
	return mustMarshal(out), nil
}

// fitChatToolIDs gives the ids of msgs' tool calls and results the form
// OpenAI accepts (openAIToolID).
func fitChatToolIDs(msgs []chatMessageOut) {
	for i := range msgs {
		m := &msgs[i]
		for j := range m.ToolCalls {
			m.ToolCalls[j].ID = openAIToolID(m.ToolCalls[j].ID)
		}
		m.ToolCallID = openAIToolID(m.ToolCallID)
	}
}

// chatRequestOut is the OpenAI request this package writes.
type chatRequestOut struct {
	Model               string           `json:"model"`
	Messages            []chatMessageOut `json:"messages"`
	MaxCompletionTokens int              `json:"max_completion_tokens,omitempty"`
	Temperature         *float64         `json:"temperature,omitempty"`
	TopP                *float64         `json:"top_p,omitempty"`
	Stop                []string         `json:"stop,omitempty"`
	Stream              bool             `json:"stream,omitempty"`
	StreamOptions       *streamOptions   `json:"stream_options,omitempty"`
	User                string           `json:"user,omitempty"`
	Tools               []chatTool       `json:"tools,omitempty"`
	ToolChoice          any              `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool            `json:"parallel_tool_calls,omitempty"`
}

// chatMessageOut is one OpenAI message; Content is a string, []chatPart or
// nil (an assistant message with tool calls only).
type chatMessageOut struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

// systemText joins the Anthropic system prompt (a string or text blocks)
// with blank lines; cache_control marks are dropped.
func systemText(raw json.RawMessage) (string, *Error) {
	blocks, err := messagesContent(raw)
	if err != nil {
		return "", refuse("system: %s", err.Message)
	}
	texts := make([]string, 0, len(blocks))
	for _, b := range blocks {
		if b.Type != "text" {
			return "", refuse("system: block type %q is not allowed; only text", b.Type)
		}
		texts = append(texts, b.Text)
	}
	return strings.Join(texts, "\n\n"), nil
}

// messagesContent reads content that is a string or a list of blocks.
func messagesContent(raw json.RawMessage) ([]block, *Error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if isString(raw) && json.Unmarshal(raw, &s) == nil {
		return []block{{Type: "text", Text: s}}, nil
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, refuse("content: want a string or a list of content blocks")
	}
	return blocks, nil
}

// messagesMessageToChat turns one Anthropic turn into OpenAI messages. A
// user turn's tool_result blocks become one tool message each, in order,
// and its other blocks (text, images, and images from the tool results,
// which OpenAI tool messages cannot carry) one user message after them.
// Thinking blocks in an assistant turn are dropped.
func messagesMessageToChat(m messagesMessage) ([]chatMessageOut, *Error) {
	blocks, err := messagesContent(m.Content)
	if err != nil {
		return nil, err
	}
	switch m.Role {
	case "user":
		return userMessageToChat(blocks)
	case "assistant":
		msg := chatMessageOut{Role: "assistant"}
		var text strings.Builder
		for _, b := range blocks {
			switch b.Type {
			case "text":
				text.WriteString(b.Text)
			case "tool_use":
				msg.ToolCalls = append(msg.ToolCalls, toolUseToChat(b))
			case "thinking", "redacted_thinking":
			default:
				return nil, refuse("assistant block type %q is not translated to OpenAI", b.Type)
			}
		}
		if text.Len() > 0 {
			msg.Content = text.String()
		}
		if msg.Content == nil && len(msg.ToolCalls) == 0 {
			return nil, nil
		}
		return []chatMessageOut{msg}, nil
	case "system":
		return systemMessageToChat(blocks)
	}
	return nil, refuse("unknown role %q", m.Role)
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

// userMessageToChat maps a user message: each tool_result becomes a tool
// message, in order, and the rest (with any images the results held) one
// user message after them.
func userMessageToChat(blocks []block) ([]chatMessageOut, *Error) {
	var out []chatMessageOut
	var parts []chatPart
	for _, b := range blocks {
		if b.Type == "tool_result" {
			content, images, err := toolResultToChat(b.Content)
			if err != nil {
				return nil, err
			}
			out = append(out, chatMessageOut{Role: "tool", ToolCallID: b.ToolUseID, Content: content})
			parts = append(parts, images...)
			continue
		}
		p, err := blockToPart(b)
		if err != nil {
			return nil, err
		}
		if p != nil {
			parts = append(parts, *p)
		}
	}
	if len(parts) > 0 {
		out = append(out, chatMessageOut{Role: "user", Content: userContent(parts)})
	}
	return out, nil
}

// systemMessageToChat maps a system message inside the conversation
// (Claude Code sends them): it stays where it is, as OpenAI takes system
// messages anywhere.
func systemMessageToChat(blocks []block) ([]chatMessageOut, *Error) {
	var text strings.Builder
	for _, b := range blocks {
		if b.Type != "text" {
			return nil, refuse("system message block type %q is not translated to OpenAI", b.Type)
		}
		text.WriteString(b.Text)
	}
	if text.Len() == 0 {
		return nil, nil
	}
	return []chatMessageOut{{Role: "system", Content: text.String()}}, nil
}

// blockToPart maps a user content block; empty text gives nil.
func blockToPart(b block) (*chatPart, *Error) {
	switch b.Type {
	case "text":
		if b.Text == "" {
			return nil, nil
		}
		return &chatPart{Type: "text", Text: b.Text}, nil
	case "image":
		if b.Source == nil {
			return nil, refuse("an image block needs a source")
		}
		switch b.Source.Type {
		case "base64":
			return &chatPart{Type: "image_url", ImageURL: &imageURL{URL: "data:" + b.Source.MediaType + ";base64," + b.Source.Data}}, nil
		case "url":
			return &chatPart{Type: "image_url", ImageURL: &imageURL{URL: b.Source.URL}}, nil
		}
		return nil, refuse("image source type %q is not translated to OpenAI", b.Source.Type)
	}
	return nil, refuse("content block type %q is not translated to OpenAI", b.Type)
}

// userContent is a lone text part as a plain string, the form every
// OpenAI-compatible server reads; anything else stays a list of parts.
func userContent(parts []chatPart) any {
	if len(parts) == 1 && parts[0].Type == "text" {
		return parts[0].Text
	}
	return parts
}

// toolResultToChat splits a tool_result's content into the tool message's
// text (a string, or text parts when there are several) and its images.
// is_error has no OpenAI equivalent and is dropped; the text says what
// failed.
func toolResultToChat(raw json.RawMessage) (content any, images []chatPart, err *Error) {
	blocks, err := messagesContent(raw)
	if err != nil {
		return nil, nil, refuse("tool_result %s", err.Message)
	}
	var texts []chatPart
	for _, b := range blocks {
		p, err := blockToPart(b)
		if err != nil {
			return nil, nil, refuse("tool_result: %s", err.Message)
		}
		switch {
		case p == nil:
		case p.Type == "text":
			texts = append(texts, *p)
		default:
			images = append(images, *p)
		}
	}
	switch len(texts) {
	case 0:
		return "", images, nil
	case 1:
		return texts[0].Text, images, nil
	}
	return texts, images, nil
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
