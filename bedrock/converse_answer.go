package bedrock

import (
	"strconv"
	"sync/atomic"

	json "github.com/goccy/go-json"
)

type cvUsage struct {
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
}

type cvAnswerBlock struct {
	Text    *string `json:"text"`
	ToolUse *struct {
		ToolUseID string          `json:"toolUseId"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
	} `json:"toolUse"`
}

type msgUsage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

type msgAnswerBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

var answerCount atomic.Uint64

// messageID names an answer that Converse leaves unnamed.
func messageID() string { return "msg_bedrock_" + strconv.FormatUint(answerCount.Add(1), 10) }

// stopReason maps Converse's stop reasons to the Messages API's.
func stopReason(r string) string {
	switch r {
	case "end_turn", "tool_use", "max_tokens", "stop_sequence":
		return r
	case "guardrail_intervened", "content_filtered":
		return "refusal"
	}
	return "end_turn"
}

// ConverseAnswerToMessages turns a Converse answer into a Messages answer
// for model.
func ConverseAnswerToMessages(body []byte, model string) ([]byte, error) {
	var in struct {
		Output struct {
			Message struct {
				Content []cvAnswerBlock `json:"content"`
			} `json:"message"`
		} `json:"output"`
		StopReason string  `json:"stopReason"`
		Usage      cvUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	content := make([]msgAnswerBlock, 0, len(in.Output.Message.Content))
	for _, b := range in.Output.Message.Content {
		switch {
		case b.Text != nil:
			content = append(content, msgAnswerBlock{Type: "text", Text: b.Text})
		case b.ToolUse != nil:
			content = append(content, msgAnswerBlock{Type: "tool_use", ID: b.ToolUse.ToolUseID, Name: b.ToolUse.Name, Input: b.ToolUse.Input})
		}
	}
	stop := stopReason(in.StopReason)
	return json.Marshal(map[string]any{
		"id": messageID(), "type": "message", "role": "assistant", "model": model, "content": content,
		"stop_reason": stop, "stop_sequence": nil,
		"usage": msgUsage{InputTokens: in.Usage.InputTokens, OutputTokens: in.Usage.OutputTokens},
	})
}
