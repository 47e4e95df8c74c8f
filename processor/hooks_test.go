package processor

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"switchyard/config"
	"switchyard/internal/apierr"
	"switchyard/luahooks"
)

// TestRejectionKinds: a hook's req:reject answers with the error type the
// gateway's own answers of that status carry. A hook's 429 came back as
// invalid_request_error, which clients do not retry, and Anthropic's 529
// as api_error instead of overloaded_error.
func TestRejectionKinds(t *testing.T) {
	t.Parallel()
	type types struct{ OpenAI, Anthropic string }
	for _, tc := range []struct {
		status int
		want   types
	}{
		{400, types{"invalid_request_error", "invalid_request_error"}},
		{401, types{"authentication_error", "authentication_error"}},
		{403, types{"permission_error", "permission_error"}},
		{404, types{"invalid_request_error", "not_found_error"}},
		{413, types{"invalid_request_error", "request_too_large"}},
		{422, types{"invalid_request_error", "invalid_request_error"}},
		{429, types{"rate_limit_error", "rate_limit_error"}},
		{500, types{"server_error", "api_error"}},
		{503, types{"server_error", "overloaded_error"}},
		{529, types{"server_error", "overloaded_error"}},
	} {
		e := rejection(&luahooks.Reject{Status: tc.status, Message: "no"})
		if e.status != tc.status {
			t.Errorf("reject(%d): status %d", tc.status, e.status)
		}
		var oa apierr.OpenAI
		var an apierr.Anthropic
		if err := json.Unmarshal(e.body(config.APIOpenAI), &oa); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(e.body(config.APIAnthropic), &an); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, types{oa.Error.Type, an.Error.Type}); diff != "" {
			t.Errorf("reject(%d) error types (-want +got):\n%s", tc.status, diff)
		}
	}
}
