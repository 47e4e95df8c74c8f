package processor

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/config"
	"switchyard/luahooks"
	"switchyard/routing"
)

type staticTokens string

func (s staticTokens) Bearer() (string, error) { return string(s), nil }

func vertexRouter(t *testing.T) *routing.Router {
	return vertexRouterOf(t, `providers:
  - {name: claude, schema: vertex, project: my-proj, region: us-east5, publisher: anthropic, auth: {type: gcp_oauth}}
  - {name: gemini, schema: vertex, project: my-proj, region: global, publisher: google, auth: {type: gcp_oauth}}
routes:
  - {model: sonnet, provider: claude, rewrite_model: claude-sonnet-4-5@20250929}
  - {model: gemini-*, provider: gemini}
`)
}

// vertexRouterOf compiles a config whose Google tokens are a fixed one.
func vertexRouterOf(t *testing.T, yaml string) *routing.Router {
	t.Helper()
	cfg, err := config.Decode([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.Compile(cfg, config.Env{GCPTokens: func(string) (config.TokenSource, error) { return staticTokens("Bearer ya29.x"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVertexAttempts: Claude on Vertex gets rawPredict (streamRawPredict
// for a stream) under the project, region and model, a Messages body
// without model and with Vertex's anthropic_version, from a Messages
// client as from a translated chat one, with no anthropic-version header;
// Gemini on Vertex gets Gemini's method under the google publisher; each
// carries the token as authorization; count_tokens is estimated.
func TestVertexAttempts(t *testing.T) {
	t.Parallel()
	r := vertexRouter(t)
	const prefix = "/v1/projects/my-proj/locations/"
	for _, tc := range []struct{ name, path, body, wantPath string }{
		{"messages", messagesPath, `{"model":"sonnet","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
			prefix + "us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"},
		{"messages stream", messagesPath, `{"model":"sonnet","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			prefix + "us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"},
		{"chat", chatPath, `{"model":"sonnet","messages":[{"role":"user","content":"hi"}]}`,
			prefix + "us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"},
		{"gemini stream", chatPath, `{"model":"gemini-2.5-pro","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			prefix + "global/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DryRun(context.Background(), r, nil, Request{Method: "POST", Path: tc.path, Body: []byte(tc.body)}, "")
			if err != nil {
				t.Fatal(err)
			}
			a := p.Attempts[0]
			if a.Path != tc.wantPath {
				t.Errorf("path %s, want %s", a.Path, tc.wantPath)
			}
			if !slices.Contains(a.SetHeaders, routing.Header{Name: "authorization", Value: "Bearer ya29.x"}) || a.Credential != "authorization" {
				t.Errorf("headers %+v, want the token as authorization", a.SetHeaders)
			}
			if strings.Contains(tc.wantPath, "gemini") {
				return
			}
			b := gjson.ParseBytes(a.Body)
			if b.Get("model").Exists() || b.Get("anthropic_version").String() != vertexAnthropicVersion || !b.Get("messages").Exists() ||
				b.Get("stream").Bool() != strings.HasSuffix(tc.wantPath, "streamRawPredict") {
				t.Errorf("body %s", a.Body)
			}
			if !slices.Contains(a.RemoveHeaders, "anthropic-version") || slices.ContainsFunc(a.SetHeaders, func(h routing.Header) bool { return h.Name == "anthropic-version" }) {
				t.Errorf("anthropic-version header kept: set %+v remove %q", a.SetHeaders, a.RemoveHeaders)
			}
		})
	}
	p, err := DryRun(context.Background(), r, nil, Request{Method: "POST", Path: countTokensPath,
		Body: []byte(`{"model":"sonnet","messages":[{"role":"user","content":"hi"}]}`)}, "")
	if err != nil || p.Answer == nil || !gjson.GetBytes(p.Answer, "input_tokens").Exists() {
		t.Errorf("count_tokens on Vertex: %s, %v; want an estimate", p.Answer, err)
	}
}

// TestVertexMessagesBody: the model goes and the version comes, wherever
// the model is and however it is spaced or spelled; the rest is kept.
func TestVertexMessagesBody(t *testing.T) {
	for _, in := range []string{
		`{"model":"m","max_tokens":5,"messages":[]}`,
		`{"max_tokens":5, "model" : "m" ,"messages":[]}`,
		`{"max_tokens":5,"messages":[],"model":"m"}`,
		`{"max_tokens":5,"messages":[],"mod\u0065l":"m"}`,
		`{"max_tokens":5,"messages":[{"model":"inner"}]}`,
	} {
		out, err := vertexMessagesBody([]byte(in))
		b := gjson.ParseBytes(out)
		if err != nil || !gjson.ValidBytes(out) || b.Get("model").Exists() || b.Get("anthropic_version").String() != vertexAnthropicVersion ||
			b.Get("max_tokens").Int() != 5 || !b.Get("messages").IsArray() {
			t.Errorf("%s -> %s, %v", in, out, err)
		}
	}
}

// BenchmarkVertexMessagesBody is the body rewrite of every request to
// Claude on Vertex: a small Messages body and a 256 KB one.
func BenchmarkVertexMessagesBody(b *testing.B) {
	for _, size := range []int{0, 256 << 10} {
		body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"` +
			strings.Repeat("x", size) + `hi"}]}`)
		name := "small"
		if size > 0 {
			name = "256KB"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := vertexMessagesBody(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVertexAttempt is a whole attempt to Claude on Vertex: the
// stream flag read, the path laid out and the body rewritten.
func BenchmarkVertexAttempt(b *testing.B) {
	d := routing.Decision{Provider: "v", API: config.APIAnthropic, Vertex: true, Cluster: "v", Model: "claude-sonnet-4-5",
		PathPrefix: "/v1/projects/p/locations/us-east5/publishers/anthropic"}
	for _, size := range []int{0, 256 << 10} {
		body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"` +
			strings.Repeat("x", size) + `hi"}],"stream":true}`)
		name := "small"
		if size > 0 {
			name = "256KB"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := newAttempt(d, messagesPath, body, nil, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestVertexBetas: a Claude on Vertex provider with anthropic_betas passes
// on only the betas it lists of the client's (or of what a hook set; none:
// no header); one without the list passes the client's header as it came.
func TestVertexBetas(t *testing.T) {
	t.Parallel()
	r := vertexRouterOf(t, `providers:
  - {name: listed, schema: vertex, project: my-proj, region: us-east5, publisher: anthropic, auth: {type: gcp_oauth},
     anthropic_betas: [interleaved-thinking-2025-05-14]}
  - {name: open, schema: vertex, project: my-proj, region: us-east5, publisher: anthropic, auth: {type: gcp_oauth}}
routes:
  - {model: listed, provider: listed, rewrite_model: claude-sonnet-4-5@20250929}
  - {model: open, provider: open, rewrite_model: claude-sonnet-4-5@20250929}
`)
	hooked, err := luahooks.NewSet([]luahooks.Source{{Name: "h.lua", Code: []byte(
		`function on_request(req) req:set_header("anthropic-beta", "claude-code-20250219") end`)}}, luahooks.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model, beta, wantSet string
		hooks                *luahooks.Set
	}{
		{"listed", "claude-code-20250219, interleaved-thinking-2025-05-14", "interleaved-thinking-2025-05-14", nil},
		{"listed", "claude-code-20250219", "", nil},
		{"listed", "interleaved-thinking-2025-05-14", "", hooked}, // the hook's beta, not allowed
		{"open", "claude-code-20250219", "", nil},
	} {
		p, err := DryRun(context.Background(), r, tc.hooks, Request{Method: "POST", Path: messagesPath,
			Body:    []byte(`{"model":"` + tc.model + `","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`),
			Headers: map[string]string{"anthropic-beta": tc.beta}}, "")
		if err != nil {
			t.Fatal(err)
		}
		a := p.Attempts[0]
		removed := slices.Contains(a.RemoveHeaders, routing.BetaHeader)
		switch got := header(a, routing.BetaHeader); {
		case got != tc.wantSet:
			t.Errorf("%s with %q: anthropic-beta set to %q, want %q", tc.model, tc.beta, got, tc.wantSet)
		case tc.model == "listed" && tc.wantSet == "" && !removed:
			t.Errorf("%s with %q: the header is not removed: %v", tc.model, tc.beta, a.RemoveHeaders)
		case tc.model == "open" && removed:
			t.Errorf("%s: the client's header is removed", tc.model)
		}
	}
}
