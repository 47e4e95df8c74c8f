package mockllm

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// The ids of a conversation's tool calls, judged as the services judge
// them: OpenAI refuses a chat tool call id longer than 40 characters,
// Anthropic a tool_use id, or a tool_result's tool_use_id, longer than 64
// or holding a character outside [A-Za-z0-9_-]. A conversation that moves
// between providers carries ids another one gave (the gateway's
// translation makes them fit). Walking an agent's conversation costs the
// mock more than a look at the ids' values where they are in the body
// (suspectToolIDs), so it walks only a body that may hold one refused.

const (
	openAIToolIDMax    = 40
	anthropicToolIDMax = 64
)

// toolIDError is what the service would answer about the first tool call
// id of messages it refuses ("": none, or Options.AnyToolID).
func (h *Handler) toolIDError(body []byte, messages gjson.Result, ep endpoint) string {
	if h.opts.AnyToolID || !suspectToolIDs(body, ep) {
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

// idKeys are the members whose values are tool call ids.
var idKeys = [][]byte{[]byte(`"id"`), []byte(`"tool_use_id"`), []byte(`"tool_call_id"`)}

// suspectToolIDs reports whether a member of body named as a tool call id
// is (or, written with escapes, may be) one the service refuses.
func suspectToolIDs(body []byte, ep endpoint) bool {
	for at := 0; ; {
		i := bytes.Index(body[at:], []byte(`id"`))
		if i < 0 {
			return false
		}
		at += i + len(`id"`)
		if !isIDKey(body[:at]) {
			continue
		}
		v, ok := memberString(body[at:])
		if ok && ep == epChat && len(v) <= openAIToolIDMax {
			continue
		}
		if ok && ep != epChat && anthropicIDError(string(v)) == "" {
			continue
		}
		return true
	}
}

func isIDKey(b []byte) bool {
	for _, k := range idKeys {
		if bytes.HasSuffix(b, k) {
			return true
		}
	}
	return false
}

// memberString is the string after a member's name, b beginning after it
// (`: "value"`): false when it is not a string without escapes.
func memberString(b []byte) ([]byte, bool) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != ':' {
		return nil, false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	if len(b) == 0 || b[0] != '"' {
		return nil, false
	}
	end := bytes.IndexAny(b[1:], `"\`)
	if end < 0 || b[1+end] != '"' {
		return nil, false
	}
	return b[1 : 1+end], true
}
