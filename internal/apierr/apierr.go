// Package apierr holds the error bodies of the two APIs the gateway speaks:
// the one place their shapes are written, for the gateway's own errors and
// for the errors it translates.
package apierr

// OpenAI is OpenAI's error body: {"error":{"message","type","param","code"}}.
type OpenAI struct {
	Error OpenAIError `json:"error"`
}

// OpenAIError is the object inside OpenAI's error body.
type OpenAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// Anthropic is Anthropic's error body: {"type":"error","error":{"type","message"}}.
type Anthropic struct {
	Type  string         `json:"type"`
	Error AnthropicError `json:"error"`
}

// AnthropicError is the object inside Anthropic's error body, and the error
// of a stream's error event.
type AnthropicError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}
