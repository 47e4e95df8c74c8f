package processor

import (
	"testing"

	"switchyard/config"
	"switchyard/routing"
)

// TestUpstreamPath: each schema's path layout, from the plan's path and the
// attempt's model.
func TestUpstreamPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    routing.Decision
		path string
		want string
	}{
		{"openai", routing.Decision{API: config.APIOpenAI, PathPrefix: "/x"}, "/v1/chat/completions", "/x/v1/chat/completions"},
		{"azure deployment", routing.Decision{API: config.APIAzureOpenAI, PathPrefix: "/openai", APIVersion: "2024-10-21", Model: "gpt 4o"},
			"/v1/chat/completions", "/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"},
		{"azure deployment keeps the query", routing.Decision{API: config.APIAzureOpenAI, PathPrefix: "/openai", APIVersion: "2024-10-21", Model: "d"},
			"/v1/embeddings?x=1", "/openai/deployments/d/embeddings?x=1&api-version=2024-10-21"},
		{"azure responses", routing.Decision{API: config.APIAzureOpenAI, PathPrefix: "/openai", APIVersion: "2025-04-01-preview", Model: "d"},
			"/v1/responses", "/openai/responses?api-version=2025-04-01-preview"},
		{"azure v1", routing.Decision{API: config.APIAzureOpenAI, PathPrefix: "/openai", APIVersion: "v1", Model: "d"},
			"/v1/chat/completions", "/openai/v1/chat/completions"},
		{"gemini", routing.Decision{API: config.APIGemini, PathPrefix: "/v1beta", Model: "gemini-2.5-flash"},
			geminiStreamMethod, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := upstreamPath(&tc.d, tc.path); got != tc.want {
				t.Errorf("upstreamPath = %q, want %q", got, tc.want)
			}
		})
	}
}
