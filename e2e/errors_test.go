package e2e

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/testkit"
)

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestErrorsInTheAPIShape(t *testing.T) {
	t.Parallel()
	bodyModes(t, func(t *testing.T, s standard) {
		big := `{"model":"gpt-exact","input":"` + strings.Repeat("x", 70000) + `"}`
		tests := []struct {
			name       string
			method     string
			path       string
			headers    map[string]string
			body       string
			wantStatus int
			wantType   string // OpenAI type, or Anthropic error.type on /v1/messages
			wantInMsg  string
		}{
			{"invalid JSON", "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":`, 400, "invalid_request_error", "not valid JSON"},
			{"missing model", "POST", "/v1/chat/completions", bearer(clientKeyA), `{"messages":[]}`, 400, "invalid_request_error", `no "model"`},
			{"model is a number", "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":42}`, 400, "invalid_request_error", "must be a string"},
			{"unknown model", "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"nope"}`, 404, "invalid_request_error", `"nope"`},
			{"model not allowed for key", "POST", "/v1/chat/completions", bearer(clientKeyB), `{"model":"renamed"}`, 403, "permission_error", "team-b"},
			{"wrong client key", "POST", "/v1/chat/completions", bearer(clientKeyA + "x"), `{"model":"gpt-exact"}`, 401, "authentication_error", "invalid API key"},
			{"missing client key", "POST", "/v1/chat/completions", nil, `{"model":"gpt-exact"}`, 401, "authentication_error", "API key"},
			{"body over the limit", "POST", "/v1/chat/completions", bearer(clientKeyA), big, 413, "invalid_request_error", "65536"},
			{"provider without credentials", "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"needs-key"}`, 503, "server_error", "SWY_TEST_UNSET_KEY"},
			{"unknown path", "POST", "/v1/nothing", bearer(clientKeyA), `{"model":"gpt-exact"}`, 404, "invalid_request_error", "/v1/nothing"},
			{"wrong method", "GET", "/v1/chat/completions", bearer(clientKeyA), "", 405, "invalid_request_error", "POST"},
			{"anthropic: unknown model", "POST", "/v1/messages", map[string]string{"x-api-key": clientKeyA}, `{"model":"nope","max_tokens":1}`, 404, "not_found_error", `"nope"`},
			{"anthropic: invalid JSON", "POST", "/v1/messages", map[string]string{"x-api-key": clientKeyA}, `[1,2`, 400, "invalid_request_error", "JSON"},
			{"anthropic: bad key", "POST", "/v1/messages", map[string]string{"x-api-key": "nope"}, `{"model":"claude-x"}`, 401, "authentication_error", "API key"},
			// gpt-exact is served with the OpenAI API: translated, and the fake
			// upstream's answer is no chat completion, so the translation fails.
			{"anthropic: answer not in the upstream's API", "POST", "/v1/messages", map[string]string{"x-api-key": clientKeyA}, `{"model":"gpt-exact","max_tokens":1}`, 502, "api_error", "could not be translated"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := s.gw.do(t, tc.method, tc.path, tc.headers, tc.body)
				if r.status != tc.wantStatus {
					t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
				}
				if ct := r.header.Get("content-type"); ct != "application/json" {
					t.Errorf("content-type %q, want application/json", ct)
				}
				var gotType, msg string
				if strings.HasPrefix(tc.path, "/v1/messages") {
					var e anthropicError
					testkit.DecodeStrict(t, r.body, &e)
					if e.Type != "error" {
						t.Errorf("anthropic error type %q, want \"error\"", e.Type)
					}
					gotType, msg = e.Error.Type, e.Error.Message
				} else {
					var e openAIError
					testkit.DecodeStrict(t, r.body, &e)
					gotType, msg = e.Error.Type, e.Error.Message
					if e.Error.Code == "" {
						t.Errorf("OpenAI error has no code: %s", r.body)
					}
				}
				if gotType != tc.wantType {
					t.Errorf("error type %q, want %q (%s)", gotType, tc.wantType, r.body)
				}
				if !strings.Contains(msg, tc.wantInMsg) {
					t.Errorf("message %q does not mention %q", msg, tc.wantInMsg)
				}
				for _, secret := range []string{alphaKey, betaKey, clientKeyA, clientKeyB} {
					if strings.Contains(string(r.body), secret) {
						t.Errorf("error body leaks a key: %s", r.body)
					}
				}
			})
		}
		// The gateway keeps serving after every refusal.
		upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`))
	})
}

func TestModelsList(t *testing.T) {
	t.Parallel()
	s := startStandard(t, gatewayOptions{})
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	type list struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}
	for _, tc := range []struct {
		key  string
		want list
	}{
		{clientKeyA, list{Object: "list", Data: []model{
			{ID: "gpt-exact", Object: "model", OwnedBy: "alpha"},
			{ID: "needs-key", Object: "model", OwnedBy: "nokey"},
			{ID: "renamed", Object: "model", OwnedBy: "alpha"},
		}}},
		{clientKeyB, list{Object: "list", Data: []model{{ID: "gpt-exact", Object: "model", OwnedBy: "alpha"}}}},
	} {
		r := s.gw.do(t, "GET", "/v1/models", bearer(tc.key), "")
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var got list
		testkit.DecodeStrict(t, r.body, &got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("/v1/models (-want +got):\n%s", diff)
		}
	}
	if r := s.gw.do(t, "GET", "/v1/models", nil, ""); r.status != 401 {
		t.Errorf("/v1/models without a key: status %d, want 401", r.status)
	}
}
