package translate

import (
	"errors"
	"strings"

	json "github.com/goccy/go-json"
)

// errNotAResponse is returned for a 2xx body that is not the upstream API's
// response; the caller answers 502.
var errNotAResponse = errors.New("upstream body is not a response of its API")

// MessagesResponseToChat translates an Anthropic Messages response (2xx)
// into an OpenAI chat.completion for a client that asked for clientModel.
// An error means the upstream body could not be read; answer 502.
func MessagesResponseToChat(body []byte, clientModel string) ([]byte, error) {
	return messagesResponseToChat(defaultEnv, body, clientModel)
}

func messagesResponseToChat(e env, body []byte, clientModel string) ([]byte, error) {
	var in messagesResponse
	if err := json.Unmarshal(body, &in); err != nil || in.Type != "message" {
		return nil, errNotAResponse
	}
	msg := chatReplyMessage{Role: "assistant"}
	var text strings.Builder
	for _, b := range in.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			msg.ToolCalls = append(msg.ToolCalls, toolUseToChat(b))
		}
		// Thinking blocks and other types OpenAI cannot show are dropped.
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	reason := finishReason(in.StopReason)
	out := chatResponse{
		ID:      e.chatIDFor(in.ID),
		Object:  "chat.completion",
		Created: e.now(),
		Model:   clientModel,
		Choices: []chatChoice{{Message: msg, Logprobs: json.RawMessage("null"), FinishReason: &reason}},
		Usage:   chatUsageFor(in.Usage),
	}
	return mustMarshal(out), nil
}

// finishReason maps an Anthropic stop_reason to an OpenAI finish_reason.
func finishReason(stop *string) string {
	if stop == nil {
		return "stop"
	}
	switch *stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn
}

// stopReason maps an OpenAI finish_reason to an Anthropic stop_reason, for
// a turn that made tool calls or not. OpenAI does not say which stop
// sequence matched, so "stop" is end_turn; but a turn with tool calls ends
// in tool_use whatever it says: OpenAI answers "stop" when tool_choice names
// a function, as do some compatible servers (Ollama, SGLang), and a Messages
// client's loop runs the tools only on tool_use.
func stopReason(finish string, calls bool) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	if calls {
		return "tool_use"
	}
	return "end_turn"
}

// chatUsageFor counts as OpenAI does: prompt_tokens includes the cached
// and cache-writing tokens Anthropic reports apart.
func chatUsageFor(u messagesUsage) *chatUsage {
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	return &chatUsage{
		PromptTokens:        prompt,
		CompletionTokens:    u.OutputTokens,
		TotalTokens:         prompt + u.OutputTokens,
		PromptTokensDetails: &promptTokensDetail{CachedTokens: u.CacheReadInputTokens},
	}
}

// messagesUsageFor is the inverse: Anthropic's input_tokens excludes the
// cached tokens.
func messagesUsageFor(u chatUsage) messagesUsage {
	cached := 0
	if u.PromptTokensDetails != nil {
		cached = u.PromptTokensDetails.CachedTokens
	}
	return messagesUsage{
		InputTokens:          max(u.PromptTokens-cached, 0),
		OutputTokens:         u.CompletionTokens,
		CacheReadInputTokens: cached,
	}
}

// ChatResponseToMessages translates an OpenAI chat.completion (2xx) into an
// Anthropic message for a client that asked for clientModel. Only the first
// choice is read (requests ask for one). An error means the upstream body
// could not be read, or a tool call's arguments are not a JSON object, which
// an Anthropic tool_use cannot carry; answer 502.
func ChatResponseToMessages(body []byte, clientModel string) ([]byte, error) {
	return chatResponseToMessages(defaultEnv, body, clientModel)
}

func chatResponseToMessages(e env, body []byte, clientModel string) ([]byte, error) {
	var in chatResponse
	if err := json.Unmarshal(body, &in); err != nil || len(in.Choices) == 0 {
		return nil, errNotAResponse
	}
	c := in.Choices[0]
	content := []block{}
	if c.Message.Content != nil && *c.Message.Content != "" {
		content = append(content, block{Type: "text", Text: *c.Message.Content})
	}
	if c.Message.Refusal != nil && *c.Message.Refusal != "" {
		content = append(content, block{Type: "text", Text: *c.Message.Refusal})
	}
	for i, tc := range c.Message.ToolCalls {
		input, err := toolArguments(tc.Function.Arguments)
		if err != nil {
			return nil, errors.New("upstream tool call " + itoa(i) + ": " + err.Message)
		}
		content = append(content, block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	finish := ""
	if c.FinishReason != nil {
		finish = *c.FinishReason
	}
	reason := stopReason(finish, len(c.Message.ToolCalls) > 0)
	var usage messagesUsage
	if in.Usage != nil {
		usage = messagesUsageFor(*in.Usage)
	}
	out := messagesResponse{
		ID:         e.messageIDFor(in.ID),
		Type:       "message",
		Role:       "assistant",
		Model:      clientModel,
		Content:    content,
		StopReason: &reason,
		Usage:      usage,
	}
	return mustMarshal(out), nil
}
