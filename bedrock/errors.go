package bedrock

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/tidwall/gjson"
)

// ErrorTypeHeader names Bedrock's error in an error answer.
const ErrorTypeHeader = "x-amzn-errortype"

// exceptionType is an error type as the stream names it
// (throttlingException) in the header's form (ThrottlingException).
func exceptionType(t string) string {
	if t == "" {
		return t
	}
	return strings.ToUpper(t[:1]) + t[1:]
}

// bedrockErrors maps Bedrock's error types to the status the client gets
// and the Messages API's error type. Statuses stay Bedrock's but where the
// Messages API says it otherwise, so that retries and fallbacks see what a
// client would retry: 429 and 5xx.
var bedrockErrors = map[string]struct {
	status int
	typ    string
}{
	"ThrottlingException":                 {429, "rate_limit_error"},
	"ServiceQuotaExceededException":       {429, "rate_limit_error"},
	"ModelNotReadyException":              {503, "overloaded_error"},
	"ServiceUnavailableException":         {503, "overloaded_error"},
	"InternalServerException":             {500, "api_error"},
	"ModelTimeoutException":               {504, "api_error"},
	"ModelStreamErrorException":           {502, "api_error"},
	"ModelErrorException":                 {502, "api_error"},
	"ValidationException":                 {400, "invalid_request_error"},
	"ResourceNotFoundException":           {404, "not_found_error"},
	"AccessDeniedException":               {403, "permission_error"},
	"InvalidSignatureException":           {502, "api_error"},
	"UnrecognizedClientException":         {502, "api_error"},
	"ExpiredTokenException":               {502, "api_error"},
	"IncompleteSignatureException":        {502, "api_error"},
	"MissingAuthenticationTokenException": {502, "api_error"},
}

// arnRE matches an ARN, as AccessDeniedException names the gateway's IAM
// identity (its account among it): a client has no use for it.
var arnRE = regexp.MustCompile(`arn:aws[a-z-]*:[^\s,;"']*`)

// ErrorType reads the error type of an x-amzn-errortype value
// ("ThrottlingException:http://...").
func ErrorType(header string) string {
	t, _, _ := strings.Cut(header, ":")
	return t
}

// ErrorToMessages turns Bedrock's error answer (status, its
// x-amzn-errortype and its {"message": ...} body) into the Messages API's
// error and status. A refused signature is the gateway's fault, not the
// client's: it says so with 502, naming the AWS error but never the
// canonical request AWS may quote back (it can hold a session token). No
// message names the gateway's IAM identity.
func ErrorToMessages(errorType string, status int, body []byte) (int, []byte) {
	return errorFor(errorType, status, body)
}

func errorFor(errorType string, status int, body []byte) (int, []byte) {
	msg := gjson.GetBytes(body, "message").String()
	if msg == "" {
		msg = gjson.GetBytes(body, "Message").String()
	}
	msg, _, _ = strings.Cut(msg, "\n")
	msg, _, _ = strings.Cut(msg, " The Canonical String")
	msg = arnRE.ReplaceAllString(msg, "(ARN not shown)")
	m, known := bedrockErrors[errorType]
	if !known {
		m.status, m.typ = status, typeForStatus(status)
	}
	if m.status == 0 {
		m.status = http.StatusBadGateway
	}
	if msg == "" {
		msg = http.StatusText(m.status)
	}
	if m.status == http.StatusBadGateway && errorType != "" {
		msg = "AWS Bedrock refused the gateway's request (" + errorType + "): " + msg
	}
	return m.status, anthropicError(m.typ, msg)
}

func typeForStatus(status int) string {
	switch {
	case status == 400:
		return "invalid_request_error"
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_error"
	case status == 503:
		return "overloaded_error"
	}
	return "api_error"
}
