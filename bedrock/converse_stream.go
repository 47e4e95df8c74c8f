package bedrock

import (
	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"
)

// converseEvents turns ConverseStream's events into the Messages API's
// stream events. Converse opens a text block with its first delta, and
// reports usage after the stop, in its metadata event. Only text and tool
// blocks reach the client, numbered from 0 as it sees them: a reasoning
// model's reasoning blocks (reasoningContent) are left out.
type converseEvents struct {
	model   string
	blocks  map[int64]int64 // Converse's index of a block the client got: its index there
	next    int64           // the client's next block index
	stop    string
	stopped bool // messageStop seen
}

// begin numbers Converse's block idx for the client.
func (c *converseEvents) begin(idx int64) int64 {
	c.blocks[idx] = c.next
	c.next++
	return c.blocks[idx]
}

// NewConverseStream returns a converter of one ConverseStream answer into
// Messages events naming model.
func NewConverseStream(model string) *Stream {
	s := NewStream()
	s.converse = &converseEvents{model: model, blocks: map[int64]int64{}}
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
		if !tu.Exists() {
			return out, false
		}
		return appendJSON(out, "content_block_start", map[string]any{"type": "content_block_start", "index": c.begin(idx),
			"content_block": map[string]any{"type": "tool_use", "id": tu.Get("toolUseId").String(), "name": tu.Get("name").String(), "input": map[string]any{}}}), false
	case "contentBlockDelta":
		d := gjson.GetBytes(p, "delta")
		ci, open := c.blocks[idx]
		if text := d.Get("text"); text.Exists() {
			if !open {
				ci = c.begin(idx)
				out = appendJSON(out, "content_block_start", map[string]any{"type": "content_block_start", "index": ci,
					"content_block": map[string]any{"type": "text", "text": ""}})
			}
			return appendJSON(out, "content_block_delta", map[string]any{"type": "content_block_delta", "index": ci,
				"delta": map[string]any{"type": "text_delta", "text": text.String()}}), false
		}
		if in := d.Get("toolUse.input"); in.Exists() && open {
			return appendJSON(out, "content_block_delta", map[string]any{"type": "content_block_delta", "index": ci,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": in.String()}}), false
		}
		return out, false
	case "contentBlockStop":
		ci, open := c.blocks[idx]
		if !open {
			return out, false // a block the client never got: reasoning
		}
		delete(c.blocks, idx)
		return appendJSON(out, "content_block_stop", map[string]any{"type": "content_block_stop", "index": ci}), false
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
