package bedrock

import (
	"fmt"
	"slices"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"

	"switchyard/translate"
)

// Refusal is a Messages request Converse cannot carry without changing its
// meaning; Message says what, for a 400.
type Refusal struct{ Message string }

func (r *Refusal) Error() string { return r.Message }

func refuse(format string, args ...any) *Refusal {
	return &Refusal{Message: fmt.Sprintf(format, args...)}
}

// ConversePath is the path of Converse (stream false) or ConverseStream
// for model.
func ConversePath(model string, stream bool) string {
	p := "/model/" + escape(model) + "/converse"
	if stream {
		p += "-stream"
	}
	return p
}

// converseFields are the Messages fields Converse carries (or that do not
// change the answer); any other is refused.
var converseFields = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "temperature": true, "top_p": true,
	"stop_sequences": true, "tools": true, "tool_choice": true, "stream": true, "metadata": true,
}

type msgBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
	Source    *struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type"`
		Data      string `json:"data"`
	} `json:"source"`
}

type msgRequest struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System        json.RawMessage `json:"system"`
	MaxTokens     *int            `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	StopSequences []string        `json:"stop_sequences"`
	Tools         []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"input_schema"`
		Type        string          `json:"type"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
	Stream bool `json:"stream"`
}

type cvBlock map[string]any

type cvRequest struct {
	Messages        []cvMessage    `json:"messages"`
	System          []cvBlock      `json:"system,omitempty"`
	InferenceConfig map[string]any `json:"inferenceConfig,omitempty"`
	ToolConfig      *cvToolConfig  `json:"toolConfig,omitempty"`
}

type cvMessage struct {
	Role    string    `json:"role"`
	Content []cvBlock `json:"content"`
}

type cvToolConfig struct {
	Tools      []cvBlock `json:"tools"`
	ToolChoice cvBlock   `json:"toolChoice,omitempty"`
}

// unsupported is the first in sorted order of body's fields Converse does
// not carry, "" if none: the same one whatever order they come in. Their
// names only: the body is decoded once, after.
func unsupported(body gjson.Result) (first string) {
	body.ForEach(func(key, _ gjson.Result) bool {
		if !converseFields[key.Str] && (first == "" || key.Str < first) {
			first = key.Str
		}
		return true
	})
	return first
}

// ConverseBody turns a Messages request into a Converse request: system
// prompts, text, images, tool calls and results, tools and tool_choice,
// and the sampling settings. Anything else is refused (a *Refusal). It
// reports whether the client asked for a stream.
func ConverseBody(messages []byte) ([]byte, bool, error) {
	root := parseInPlace(messages)
	if !root.IsObject() {
		return nil, false, refuse("the request body is not a JSON object")
	}
	if name := unsupported(root); name != "" {
		return nil, false, refuse("%s is not supported on this Bedrock model (Converse); only Anthropic models take it", name)
	}
	var in msgRequest
	if err := json.Unmarshal(messages, &in); err != nil {
		return nil, false, refuse("the request body does not follow the Messages API: %v", err)
	}
	out := cvRequest{Messages: []cvMessage{}}
	var err error
	if out.System, err = textBlocks(in.System); err != nil {
		return nil, false, err
	}
	for _, m := range in.Messages {
		blocks, err := contentBlocks(m.Content)
		if err != nil {
			return nil, false, err
		}
		out.Messages = append(out.Messages, cvMessage{Role: m.Role, Content: blocks})
	}
	ic := map[string]any{}
	if in.MaxTokens != nil {
		ic["maxTokens"] = *in.MaxTokens
	}
	if in.Temperature != nil {
		ic["temperature"] = *in.Temperature
	}
	if in.TopP != nil {
		ic["topP"] = *in.TopP
	}
	if len(in.StopSequences) > 0 {
		ic["stopSequences"] = in.StopSequences
	}
	if len(ic) > 0 {
		out.InferenceConfig = ic
	}
	if out.ToolConfig, err = toolConfig(in, toolsUsed(out.Messages)); err != nil {
		return nil, false, err
	}
	b, err := json.Marshal(out)
	return b, in.Stream, err
}

func textBlocks(raw json.RawMessage) ([]cvBlock, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []cvBlock{{"text": s}}, nil
	}
	var blocks []msgBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, refuse("system must be a string or text blocks")
	}
	out := make([]cvBlock, 0, len(blocks))
	for _, b := range blocks {
		if b.Type != "text" {
			return nil, refuse("a %s block in system is not supported on Converse", b.Type)
		}
		out = append(out, cvBlock{"text": b.Text})
	}
	return out, nil
}

func contentBlocks(raw json.RawMessage) ([]cvBlock, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []cvBlock{{"text": s}}, nil
	}
	var blocks []msgBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, refuse("message content must be a string or content blocks")
	}
	out := make([]cvBlock, 0, len(blocks))
	for _, b := range blocks {
		switch b.Type {
		case "text":
			out = append(out, cvBlock{"text": b.Text})
		case "image":
			if b.Source == nil || b.Source.Type != "base64" || !strings.HasPrefix(b.Source.MediaType, "image/") {
				return nil, refuse("only base64 images are supported on Converse")
			}
			out = append(out, cvBlock{"image": map[string]any{"format": strings.TrimPrefix(b.Source.MediaType, "image/"),
				"source": map[string]any{"bytes": b.Source.Data}}})
		case "tool_use":
			input := b.Input
			if len(input) == 0 {
				input = json.RawMessage(`{}`)
			}
			out = append(out, cvBlock{"toolUse": map[string]any{"toolUseId": translate.AnthropicToolID(b.ID), "name": b.Name, "input": input}})
		case "tool_result":
			content, err := textBlocks(b.Content)
			if err != nil {
				return nil, err
			}
			if content == nil {
				content = []cvBlock{}
			}
			status := "success"
			if b.IsError {
				status = "error"
			}
			out = append(out, cvBlock{"toolResult": map[string]any{"toolUseId": translate.AnthropicToolID(b.ToolUseID), "content": content, "status": status}})
		default:
			return nil, refuse("a %s block is not supported on this Bedrock model (Converse)", b.Type)
		}
	}
	return out, nil
}

// toolsUsed is the names of the tools the conversation called, nil when it
// holds no tool block (a result alone counts, with no name).
func toolsUsed(msgs []cvMessage) []string {
	var names []string
	for _, m := range msgs {
		for _, b := range m.Content {
			if u, ok := b["toolUse"].(map[string]any); ok {
				if name, _ := u["name"].(string); !slices.Contains(names, name) {
					names = append(names, name)
				}
			} else if _, ok := b["toolResult"]; ok && names == nil {
				names = []string{}
			}
		}
	}
	return names
}

// toolConfig is what Converse is told of the tools. Converse refuses a
// conversation holding tool blocks without a toolConfig (a last turn that
// drops the tools, or tool_choice none after a tool loop): then the tools
// stay, or stand-ins named as the calls were, and the model chooses.
func toolConfig(in msgRequest, used []string) (*cvToolConfig, error) {
	if len(in.Tools) == 0 {
		if in.ToolChoice != nil && in.ToolChoice.Type != "none" && in.ToolChoice.Type != "auto" {
			return nil, refuse("tool_choice names a tool but there are no tools")
		}
		if used == nil {
			return nil, nil
		}
		if len(used) == 0 {
			used = []string{"tool"}
		}
		tc := &cvToolConfig{}
		for _, name := range used {
			tc.Tools = append(tc.Tools, cvBlock{"toolSpec": map[string]any{"name": name,
				"inputSchema": map[string]any{"json": map[string]any{"type": "object"}}}})
		}
		return tc, nil
	}
	tc := &cvToolConfig{}
	for _, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, refuse("the server tool %s is not supported on Converse", t.Type)
		}
		spec := map[string]any{"name": t.Name, "inputSchema": map[string]any{"json": t.InputSchema}}
		if t.Description != "" {
			spec["description"] = t.Description
		}
		tc.Tools = append(tc.Tools, cvBlock{"toolSpec": spec})
	}
	if in.ToolChoice != nil {
		switch in.ToolChoice.Type {
		case "auto":
			tc.ToolChoice = cvBlock{"auto": map[string]any{}}
		case "any":
			tc.ToolChoice = cvBlock{"any": map[string]any{}}
		case "tool":
			tc.ToolChoice = cvBlock{"tool": map[string]any{"name": in.ToolChoice.Name}}
		case "none":
			if used != nil {
				return tc, nil // Converse has no "none", and needs the tools
			}
			return nil, nil // no tools offered: the model answers in text
		default:
			return nil, refuse("tool_choice %q is not supported on Converse", in.ToolChoice.Type)
		}
	}
	return tc, nil
}
