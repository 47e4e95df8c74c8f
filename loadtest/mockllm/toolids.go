package mockllm

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// The ids of a conversation's tool calls, judged as the services judge
// them: OpenAI refuses a chat tool call id longer than 40 characters,
// Anthropic a tool_use id, or a tool_result's tool_use_id, longer than 64
// or holding a character outside [A-Za-z0-9_-]. A conversation that moves
// between providers carries ids another one gave (the gateway's
// translation makes them fit), and each result must answer a call before
// it. The benchmark's mock does not judge them (Options.AnyToolID), nor
// does one that answers from one scan (Options.Plain).

const (
	openAIToolIDMax    = 40
	anthropicToolIDMax = 64
)

// toolIDError is what the service would answer about the first tool call
// id of messages it refuses, or the first result that answers no call
// before it ("": none, or Options.AnyToolID).
func (h *Handler) toolIDError(messages gjson.Result, ep endpoint) string {
	if h.opts.AnyToolID {
		return ""
	}
	var msg string
	calls := map[string]bool{}
	i := 0
	messages.ForEach(func(_, m gjson.Result) bool {
		switch ep {
		case epChat:
			msg = chatToolIDError(m, i, calls)
		case epMessages:
			msg = messagesToolIDError(m, i, calls)
		}
		i++
		return msg == ""
	})
	return msg
}

// chatToolIDError judges the i-th message's tool calls, adding their ids
// to calls, or the call a tool message answers.
func chatToolIDError(m gjson.Result, i int, calls map[string]bool) string {
	if m.Get("role").Str == "tool" && !calls[m.Get("tool_call_id").String()] {
		return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
	}
	var msg string
	j := 0
	m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		id := tc.Get("id").String()
		if len(id) > openAIToolIDMax {
			msg = fmt.Sprintf("Invalid 'messages[%d].tool_calls[%d].id': string too long. Expected a string with maximum length %d, but got a string with length %d instead.",
				i, j, openAIToolIDMax, len(id))
		}
		calls[id] = true
		j++
		return msg == ""
	})
	return msg
}

// messagesToolIDError judges the ids of the i-th message's tool_use and
// tool_result blocks, adding the calls' to calls.
func messagesToolIDError(m gjson.Result, i int, calls map[string]bool) string {
	var msg string
	j := 0
	m.Get("content").ForEach(func(_, b gjson.Result) bool {
		switch b.Get("type").Str {
		case "tool_use":
			id := b.Get("id").String()
			if why := anthropicIDError(id); why != "" {
				msg = fmt.Sprintf("messages.%d.content.%d.tool_use.id: %s", i, j, why)
			}
			calls[id] = true
		case "tool_result":
			id := b.Get("tool_use_id").String()
			if why := anthropicIDError(id); why != "" {
				msg = fmt.Sprintf("messages.%d.content.%d.tool_result.tool_use_id: %s", i, j, why)
			} else if !calls[id] {
				msg = fmt.Sprintf("messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` blocks: %s. "+
					"Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", i, j, id)
			}
		}
		j++
		return msg == ""
	})
	return msg
}

func anthropicIDError(id string) string {
	if len(id) > anthropicToolIDMax {
		return fmt.Sprintf("String should have at most %d characters", anthropicToolIDMax)
	}
	if id == "" || strings.IndexFunc(id, notIDChar) >= 0 {
		return "String should match pattern '^[a-zA-Z0-9_-]+$'"
	}
	return ""
}

func notIDChar(c rune) bool {
	return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-')
}
