package bedrock

import (
	"strings"
	"unsafe"

	json "github.com/goccy/go-json"
	"github.com/tidwall/gjson"
)

// AnthropicVersion is the Messages API version Bedrock's Anthropic models
// take in the body.
const AnthropicVersion = "bedrock-2023-05-31"

// InvokeBody turns a Messages request body into an InvokeModel body: the
// model goes in the path and the stream in the operation, so both leave
// the body, and anthropic_version joins it. Every other field stays. It
// reports whether the client asked for a stream. The client's betas go in
// anthropic_beta, where Bedrock reads them, unless the body names its own.
// Bedrock refuses a request naming any beta it does not know ("invalid
// beta flag"), and clients such as Claude Code send betas only Anthropic's
// API knows: the caller passes those DefaultBetas (or the provider's own
// list) allows.
func InvokeBody(messages []byte, betas []string) (body []byte, stream bool, err error) {
	root := parseInPlace(messages)
	if !root.IsObject() {
		return nil, false, refuse("the request body is not a JSON object")
	}
	// One walk over the body's fields and one copy: at an agent's size
	// each field looked up or set by name was a walk (and a copy) of its
	// own.
	body = make([]byte, 0, len(messages)+len(AnthropicVersion)+64)
	body = append(body, '{')
	named := false
	root.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "model", "anthropic_version":
			return true
		case "stream":
			stream = value.Bool()
			return true
		case "anthropic_beta":
			named = true
		}
		body = append(append(append(body, key.Raw...), ':'), value.Raw...)
		body = append(body, ',')
		return true
	})
	body = append(body, `"anthropic_version":"`+AnthropicVersion+`"`...)
	if len(betas) > 0 && !named {
		list, err := json.Marshal(betas)
		if err != nil {
			return nil, false, err
		}
		body = append(append(body, `,"anthropic_beta":`...), list...)
	}
	return append(body, '}'), stream, nil
}

// parseInPlace is gjson.ParseBytes without its copy of the body: what it
// returns points into b, so callers copy what they keep before b changes.
func parseInPlace(b []byte) gjson.Result {
	return gjson.Parse(unsafe.String(unsafe.SliceData(b), len(b)))
}

// DefaultBetas are the anthropic-beta flags Bedrock's Anthropic models
// take, as AWS documents them: what a bedrock provider without
// anthropic_betas passes on.
var DefaultBetas = []string{
	"computer-use-2024-10-22", "computer-use-2025-01-24", "context-1m-2025-08-07",
	"context-management-2025-06-27", "dev-full-thinking-2025-05-14", "effort-2025-11-24",
	"fine-grained-tool-streaming-2025-05-14", "interleaved-thinking-2025-05-14", "output-128k-2025-02-19",
	"token-efficient-tools-2025-02-19", "tool-examples-2025-10-29", "tool-search-tool-2025-10-19",
}

// Anthropic reports whether model is one of Bedrock's Anthropic models
// (anthropic.claude-…, or an inference profile such as us.anthropic.…), the
// only ones the gateway reaches: others take Converse bodies. An ARN
// cannot be told apart and is taken as it is.
func Anthropic(model string) bool {
	return strings.HasPrefix(model, "arn:") || strings.Contains(model, "anthropic.")
}
