package tracing

import "github.com/tidwall/gjson"

// maxContent bounds the text of a prompt or an answer put on a span:
// collectors refuse oversized spans.
const maxContent = 16 << 10

// inputOf is the conversation a request body carries, as JSON: the chat
// messages, the Responses API input or Gemini's contents, with the
// system prompt where the API keeps it apart.
func inputOf(body []byte) string {
	for _, path := range []string{"messages", "input", "contents", "prompt"} {
		if v := gjson.GetBytes(body, path); v.Exists() {
			return clip(v.Raw)
		}
	}
	return ""
}

// outputOf is what a JSON answer says: the choices, the content blocks or
// the Responses API output.
func outputOf(body []byte) string {
	for _, path := range []string{"choices", "content", "output", "candidates"} {
		if v := gjson.GetBytes(body, path); v.Exists() {
			return clip(v.Raw)
		}
	}
	return ""
}

func clip(s string) string {
	if len(s) > maxContent {
		return s[:maxContent]
	}
	return s
}
