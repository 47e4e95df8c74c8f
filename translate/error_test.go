package translate

import (
	"testing"

	"github.com/tidwall/gjson"
)

// TestErrorToChatGoogleShape: an error in Google's platform shape (Claude
// on Vertex AI) becomes OpenAI's with its message, the type its status
// calls for and Google's status as the code; Anthropic's keep their type
// as the code.
func TestErrorToChatGoogleShape(t *testing.T) {
	for _, tc := range []struct {
		status               int
		body, typ, code, msg string
	}{
		{429, `{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}`, "rate_limit_error", "RESOURCE_EXHAUSTED", "Quota exceeded"},
		{401, `{"error":{"code":401,"message":"bad token","status":"UNAUTHENTICATED"}}`, "authentication_error", "UNAUTHENTICATED", "bad token"},
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"no"}}`, "invalid_request_error", "invalid_request_error", "no"},
		{502, `<html></html>`, "server_error", "upstream_error", "upstream answered 502 bad gateway"},
	} {
		status, out := ErrorToChat(tc.status, []byte(tc.body))
		e := gjson.GetBytes(out, "error")
		if status != tc.status || e.Get("type").String() != tc.typ || e.Get("code").String() != tc.code || e.Get("message").String() != tc.msg {
			t.Errorf("%d %s: %d %s", tc.status, tc.body, status, out)
		}
	}
}
