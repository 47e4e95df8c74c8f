package processor

import (
	"encoding/json"
	"net/http"
	"strconv"

	"switchyard/config"
	"switchyard/internal/apierr"
	"switchyard/routing"
	"switchyard/translate"
)

// apiError is a client-facing error rendered in the called API's own shape.
type apiError struct {
	status  int
	kind    routing.Kind
	code    string // OpenAI-style machine code, e.g. "model_not_found"
	message string
	cause   error            // what went wrong inside, for logs and the dry run; never sent
	headers []routing.Header // extra response headers, e.g. Retry-After
}

// Error describes the answer the client gets, for the dry run.
func (e *apiError) Error() string {
	return strconv.Itoa(e.status) + " " + string(e.kind) + ": " + e.message
}

func newAPIError(kind routing.Kind, code, message string) *apiError {
	return &apiError{status: kind.Status(), kind: kind, code: code, message: message}
}

// fromRouting converts a routing failure; other errors become a generic 500
// whose text never reaches the client.
func fromRouting(err error) *apiError {
	re, ok := err.(*routing.Error)
	if !ok {
		return newAPIError(routing.KindAPI, "internal_error", "internal gateway error")
	}
	return &apiError{status: re.Status, kind: re.Kind, code: codeFor(re.Kind), message: re.Message}
}

func codeFor(k routing.Kind) string {
	switch k {
	case routing.KindAuthentication:
		return "invalid_api_key"
	case routing.KindPermission:
		return "model_not_allowed"
	case routing.KindNotFound:
		return "model_not_found"
	case routing.KindTooLarge:
		return "request_too_large"
	case routing.KindUnavailable:
		return "provider_unavailable"
	case routing.KindInvalidRequest:
		return "invalid_request"
	default:
		return "internal_error"
	}
}

// openAIType maps a kind to the "type" OpenAI uses in its error object.
func openAIType(k routing.Kind, status int) string {
	switch {
	case k == routing.KindAuthentication:
		return "authentication_error"
	case k == routing.KindPermission:
		return "permission_error"
	case k == routing.KindRateLimit:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request_error"
	}
}

// body renders the error for api. Anthropic has no 503 type of its own; it
// answers overloaded_error for 503 and its own 529, and api_error for every
// other 5xx.
func (e *apiError) body(api config.API) []byte {
	var v any
	if api == config.APIAnthropic {
		t := string(e.kind)
		if e.status >= 500 {
			t = "api_error"
			if e.status == http.StatusServiceUnavailable || e.status == translate.StatusOverloaded {
				t = "overloaded_error"
			}
		}
		v = apierr.Anthropic{Type: "error", Error: apierr.AnthropicError{Type: t, Message: e.message}}
	} else {
		v = apierr.OpenAI{Error: apierr.OpenAIError{Message: e.message, Type: openAIType(e.kind, e.status), Code: e.code}}
	}
	b, err := json.Marshal(v)
	if err != nil { // unreachable: the values are plain strings
		return []byte(`{"error":{"message":"internal gateway error"}}`)
	}
	return b
}
