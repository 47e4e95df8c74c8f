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
// reports whether the client asked for a stream. The betas of the client's
// anthropic-beta header (comma-separated) go in anthropic_beta, where
// Bedrock reads them, unless the body names its own.
func InvokeBody(messages []byte, betas string) (body []byte, stream bool, err error) {
	stream = gjson.GetBytes(messages, "stream").Bool()
	body = messages
	for _, field := range []string{"model", "stream"} {
		if gjson.GetBytes(body, field).Exists() {
			if body, err = sjson.DeleteBytes(body, field); err != nil {
				return nil, false, err
			}
		}
	}
	if body, err = sjson.SetBytes(body, "anthropic_version", AnthropicVersion); err != nil {
		return nil, false, err
	}
	if list := betaList(betas); list != nil && !gjson.GetBytes(body, "anthropic_beta").Exists() {
		body, err = sjson.SetBytes(body, "anthropic_beta", list)
	}
	return body, stream, err
}

func betaList(header string) []string {
	var out []string
	for b := range strings.SplitSeq(header, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Anthropic reports whether model is one of Bedrock's Anthropic models
// (anthropic.claude-…, or an inference profile such as us.anthropic.…), the
// only ones the gateway reaches: others take Converse bodies. An ARN
// cannot be told apart and is taken as it is.
func Anthropic(model string) bool {
	return strings.HasPrefix(model, "arn:") || strings.Contains(model, "anthropic.")
}
