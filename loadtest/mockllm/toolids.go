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
// translation makes them fit). The benchmark's mock does not judge them
// (Options.AnyToolID).

const (
	openAIToolIDMax    = 40
	anthropicToolIDMax = 64
)

// toolIDError is what the service would answer about the first tool call
// id of messages it refuses ("": none, or Options.AnyToolID).
func (h *Handler) toolIDError(messages gjson.Result, ep endpoint) string {
	if h.opts.AnyToolID {
		return ""
	}
	var msg string
	i := 0
	messages.ForEach(func(_, m gjson.Result) bool {
		switch ep {
		case epChat:
			msg = chatToolIDError(m, i)
		case epMessages:
			msg = messagesToolIDError(m, i)
		}
		i++
		return msg == ""
	})
	return msg
}

func chatToolIDError(m gjson.Result, i int) string {
	var msg string
	j := 0
	m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		if id := tc.Get("id").String(); len(id) > openAIToolIDMax {
			msg = fmt.Sprintf("Invalid 'messages[%d].tool_calls[%d].id': string too long. Expected a string with maximum length %d, but got a string with length %d instead.",
				i, j, openAIToolIDMax, len(id))
		}
		j++
		return msg == ""
	})
	return msg
}

func messagesToolIDError(m gjson.Result, i int) string {
	var msg string
	j := 0
	m.Get("content").ForEach(func(_, b gjson.Result) bool {
		field, id := "", ""
		switch b.Get("type").Str {
		case "tool_use":
			field, id = "tool_use.id", b.Get("id").String()
		case "tool_result":
			field, id = "tool_result.tool_use_id", b.Get("tool_use_id").String()
		}
		if why := anthropicIDError(id); field != "" && why != "" {
			msg = fmt.Sprintf("messages.%d.content.%d.%s: %s", i, j, field, why)
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
