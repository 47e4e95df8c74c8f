package bedrock

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

// converseEvents turns ConverseStream's events into the Messages API's
// stream events. Converse opens a text block with its first delta, and
// reports usage after the stop, in its metadata event.
type converseEvents struct {
	model   string
	open    map[int64]bool
	stop    string
	stopped bool // messageStop seen
}

// NewConverseStream returns a converter of one ConverseStream answer into
// Messages events naming model.
func NewConverseStream(model string) *Stream {
	s := NewStream()
	s.converse = &converseEvents{model: model, open: map[int64]bool{}}
	return s
}

func (c *converseEvents) event(out []byte, typ string, p []byte) (_ []byte, done bool) {
	idx := gjson.GetBytes(p, "contentBlockIndex").Int()
	switch typ {
	case "messageStart":
		return appendJSON(out, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": messageID(), "type": "message", "role": "assistant", "model": c.model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": msgUsage{}}}), false
	case "contentBlockStart":
		tu := gjson.GetBytes(p, "start.toolUse")
		c.open[idx] = true
		return appendJSON(out, "content_block_start", map[string]any{"type": "content_block_start", "index": idx,
			"content_block": map[string]any{"type": "tool_use", "id": tu.Get("toolUseId").String(), "name": tu.Get("name").String(), "input": map[string]any{}}}), false
	case "contentBlockDelta":
		d := gjson.GetBytes(p, "delta")
		if text := d.Get("text"); text.Exists() {
			if !c.open[idx] {
				c.open[idx] = true
				out = appendJSON(out, "content_block_start", map[string]any{"type": "content_block_start", "index": idx,
					"content_block": map[string]any{"type": "text", "text": ""}})
			}
			return appendJSON(out, "content_block_delta", map[string]any{"type": "content_block_delta", "index": idx,
				"delta": map[string]any{"type": "text_delta", "text": text.String()}}), false
		}
		if in := d.Get("toolUse.input"); in.Exists() {
			return appendJSON(out, "content_block_delta", map[string]any{"type": "content_block_delta", "index": idx,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": in.String()}}), false
		}
		return out, false
	case "contentBlockStop":
		delete(c.open, idx)
		return appendJSON(out, "content_block_stop", map[string]any{"type": "content_block_stop", "index": idx}), false
	case "messageStop":
		c.stop, c.stopped = stopReason(gjson.GetBytes(p, "stopReason").String()), true
		return out, false
	case "metadata":
		u := gjson.GetBytes(p, "usage")
		return c.end(out, msgUsage{InputTokens: u.Get("inputTokens").Int(), OutputTokens: u.Get("outputTokens").Int()}), true
	}
	return out, false
}

// end closes the message: its stop reason and usage, then message_stop.
func (c *converseEvents) end(out []byte, u msgUsage) []byte {
	out = appendJSON(out, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": c.stop, "stop_sequence": nil}, "usage": u})
	return appendJSON(out, "message_stop", map[string]any{"type": "message_stop"})
}

func appendJSON(out []byte, name string, v any) []byte {
	b, _ := json.Marshal(v)
	return appendEvent(out, name, b)
}
