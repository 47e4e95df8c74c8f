package bedrock

import (
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// AnthropicVersion is the Messages API version Bedrock's Anthropic models
// take in the body.
const AnthropicVersion = "bedrock-2023-05-31"

// InvokeBody turns a Messages request body into an InvokeModel body: the
// model goes in the path and the stream in the operation, so both leave
// the body, and anthropic_version joins it. Every other field stays. It
// reports whether the client asked for a stream.
func InvokeBody(messages []byte) (body []byte, stream bool, err error) {
	stream = gjson.GetBytes(messages, "stream").Bool()
	body = messages
	for _, field := range []string{"model", "stream"} {
		if gjson.GetBytes(body, field).Exists() {
			if body, err = sjson.DeleteBytes(body, field); err != nil {
				return nil, false, err
			}
		}
	}
	body, err = sjson.SetBytes(body, "anthropic_version", AnthropicVersion)
	return body, stream, err
}

// Anthropic reports whether model is one of Bedrock's Anthropic models
// (anthropic.claude-…, or an inference profile such as us.anthropic.…), the
// only ones the gateway reaches: others take Converse bodies. An ARN
// cannot be told apart and is taken as it is.
func Anthropic(model string) bool {
	return strings.HasPrefix(model, "arn:") || strings.Contains(model, "anthropic.")
}
