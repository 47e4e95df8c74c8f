package translate

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"switchyard/internal/apierr"
)

// Error is a request the translator refuses: a body that is not valid for
// the client's API, or a field with no equivalent in the upstream's API.
// Message is safe to show the client; the caller renders it in the client's
// error shape with Status.
type Error struct {
	Status  int    // HTTP status for the client, always 400 today
	Message string // what is refused and why
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

func refuse(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// StatusOverloaded is Anthropic's status for "overloaded_error". OpenAI
// clients and generic HTTP tooling do not know it, so ErrorToChat answers
// 503 Service Unavailable instead; both are retryable.
const StatusOverloaded = 529

// ErrorToChat turns an Anthropic error response (status >= 400) into the
// OpenAI error shape {"error":{"message","type","param","code"}}. The status
// is kept, except 529 (overloaded) which becomes 503. Anthropic's error type
// becomes the code; a body that is not an Anthropic error gets a generic
// message naming the status, never the body itself.
func ErrorToChat(status int, body []byte) (int, []byte) {
	typ, msg := anthropicError(body)
	if status == StatusOverloaded {
		status = http.StatusServiceUnavailable
	}
	if msg == "" {
		msg = genericMessage(status)
	}
	code := typ
	if code == "" {
		// Google's platform answers Claude on Vertex's errors in its own
		// shape: its status ("RESOURCE_EXHAUSTED") is the code.
		code = gjson.GetBytes(body, "error.status").String()
	}
	if code == "" {
		code = "upstream_error"
	}
	return status, mustMarshal(apierr.OpenAI{Error: apierr.OpenAIError{
		Message: msg,
		Type:    openAITypeFor(status, typ),
		Code:    code,
	}})
}

// ErrorToMessages turns an OpenAI or OpenAI-compatible error response
// (status >= 400) into the Anthropic shape {"type":"error","error":{"type",
// "message"}}. The status is kept; the type follows from it (see
// anthropicTypeFor). Messages are read from {"error":{"message"}},
// {"error":"..."} (Ollama, llama.cpp) and {"message"}.
func ErrorToMessages(status int, body []byte) (int, []byte) {
	msg := ""
	if gjson.ValidBytes(body) {
		r := gjson.ParseBytes(body)
		e := r.Get("error")
		switch {
		case e.IsObject():
			msg = e.Get("message").String()
		case e.Type == gjson.String:
			msg = e.String()
		default:
			msg = r.Get("message").String()
		}
	}
	if msg == "" {
		msg = genericMessage(status)
	}
	return status, mustMarshal(apierr.Anthropic{Type: "error", Error: apierr.AnthropicError{
		Type:    anthropicTypeFor(status),
		Message: msg,
	}})
}

func anthropicError(body []byte) (typ, msg string) {
	if !gjson.ValidBytes(body) {
		return "", ""
	}
	e := gjson.GetBytes(body, "error")
	if !e.IsObject() {
		return "", ""
	}
	return e.Get("type").String(), e.Get("message").String()
}

func genericMessage(status int) string {
	text := http.StatusText(status)
	if text == "" {
		text = "error"
	}
	return fmt.Sprintf("upstream answered %d %s", status, strings.ToLower(text))
}

// openAITypeFor picks OpenAI's error "type" for an Anthropic error.
func openAITypeFor(status int, anthropicType string) string {
	switch {
	case anthropicType == "authentication_error" || status == http.StatusUnauthorized:
		return "authentication_error"
	case anthropicType == "permission_error" || status == http.StatusForbidden:
		return "permission_error"
	case anthropicType == "rate_limit_error" || status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500 || anthropicType == "api_error" || anthropicType == "overloaded_error":
		return "server_error"
	default:
		return "invalid_request_error"
	}
}

// anthropicTypeFor picks Anthropic's error type for a status, as Anthropic
// documents them (docs.anthropic.com/en/api/errors).
func anthropicTypeFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusServiceUnavailable, StatusOverloaded:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
