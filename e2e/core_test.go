package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	alphaKey   = "sk-alpha-provider-0123456789abcdef"
	betaKey    = "sk-beta-provider-fedcba9876543210"
	clientKeyA = "swy-client-team-a-5f2c9d1e7b3a"
	clientKeyB = "swy-client-team-b-8e4f1a6c2d9b"
)

// testEnv holds the secrets the test configs read from the environment.
var testEnv = []string{
	"SWY_TEST_ALPHA_KEY=" + alphaKey,
	"SWY_TEST_BETA_KEY=" + betaKey,
	"SWY_TEST_CLIENT_A=" + clientKeyA,
	"SWY_TEST_CLIENT_B=" + clientKeyB,
	"SWY_TEST_UNSET_KEY=",
}

// standardConfig: alpha (OpenAI schema, bearer) and beta (Anthropic schema,
// x-api-key, path prefix) on two fake upstreams; nokey has no credential.
func standardConfig(a, b *fakeUpstream, extraRoutes string) string {
	return fmt.Sprintf(`max_body_bytes: 65536
providers:
  - name: alpha
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_env: SWY_TEST_ALPHA_KEY}
  - name: beta
    url: http://127.0.0.1:%d
    schema: anthropic
    path_prefix: /beta
    auth: {type: header, header: x-api-key, key_env: SWY_TEST_BETA_KEY}
  - name: nokey
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_env: SWY_TEST_UNSET_KEY}
routes:
  - model: gpt-exact
    provider: alpha
  - model: renamed
    provider: alpha
    rewrite_model: upstream-model-with-a-much-longer-name
  - model: "claude-*"
    provider: beta
  - model: needs-key
    provider: nokey
%sclient_keys:
  - name: team-a
    key_env: SWY_TEST_CLIENT_A
  - name: team-b
    key_env: SWY_TEST_CLIENT_B
    models: ["gpt-exact"]
`, a.port(), b.port(), b.port(), extraRoutes)
}

type standard struct {
	a, b *fakeUpstream
	gw   *gateway
}

func startStandard(t *testing.T, opts gatewayOptions) standard {
	t.Helper()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	opts.extraEnv = append(opts.extraEnv, testEnv...)
	return standard{a: a, b: b, gw: startGateway(t, standardConfig(a, b, ""), opts)}
}

func bearer(k string) map[string]string { return map[string]string{"authorization": "Bearer " + k} }

// bodyModes runs f against a gateway in each ext_proc body mode Switchyard supports.
func bodyModes(t *testing.T, f func(t *testing.T, s standard)) {
	for _, mode := range []string{"FULL_DUPLEX_STREAMED", "BUFFERED", "BY_SIZE"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f(t, startStandard(t, gatewayOptions{bodyMode: mode}))
		})
	}
}

func TestRoutingAndCredentials(t *testing.T) {
	t.Parallel()
	bodyModes(t, func(t *testing.T, s standard) {
		tests := []struct {
			name     string
			path     string
			headers  map[string]string
			body     string
			want     seen // fields compared: Upstream, Path, Model
			wantAuth map[string]string
		}{
			{
				name: "exact model, bearer credential replaces the client key",
				path: "/v1/chat/completions", headers: bearer(clientKeyA),
				body:     `{"model":"gpt-exact","messages":[{"role":"user","content":"hi"}]}`,
				want:     seen{Upstream: "A", Path: "/v1/chat/completions", Model: "gpt-exact"},
				wantAuth: map[string]string{"authorization": "Bearer " + alphaKey},
			},
			{
				name: "glob model on the anthropic API, header credential and path prefix",
				path: "/v1/messages", headers: map[string]string{"x-api-key": clientKeyA, "anthropic-version": "2023-06-01"},
				body:     `{"model":"claude-3-haiku","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
				want:     seen{Upstream: "B", Path: "/beta/v1/messages", Model: "claude-3-haiku"},
				wantAuth: map[string]string{"x-api-key": betaKey},
			},
			{
				name: "provider/model form sends the bare model",
				path: "/v1/embeddings", headers: bearer(clientKeyA),
				body:     `{"model":"alpha/text-embed","input":"x"}`,
				want:     seen{Upstream: "A", Path: "/v1/embeddings", Model: "text-embed"},
				wantAuth: map[string]string{"authorization": "Bearer " + alphaKey},
			},
			{
				name: "client-sent routing header is ignored",
				path: "/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + clientKeyA, "x-switchyard-cluster": "nokey"},
				body:     `{"model":"gpt-exact","messages":[]}`,
				want:     seen{Upstream: "A", Path: "/v1/chat/completions", Model: "gpt-exact"},
				wantAuth: map[string]string{"authorization": "Bearer " + alphaKey},
			},
			{
				name: "query string is kept",
				path: "/v1/chat/completions?api-version=2024-01-01", headers: bearer(clientKeyA),
				body:     `{"model":"gpt-exact"}`,
				want:     seen{Upstream: "A", Path: "/v1/chat/completions?api-version=2024-01-01", Model: "gpt-exact"},
				wantAuth: map[string]string{"authorization": "Bearer " + alphaKey},
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := s.gw.do(t, "POST", tc.path, tc.headers, tc.body)
				got := upstreamSaw(t, r)
				if v := r.header.Get("openai-organization"); v != "" {
					t.Errorf("the client got the operator's provider account: openai-organization %q", v)
				}
				if diff := cmp.Diff(tc.want, seen{Upstream: got.Upstream, Path: got.Path, Model: got.Model}); diff != "" {
					t.Errorf("upstream saw (-want +got):\n%s", diff)
				}
				creds := map[string]string{}
				for _, h := range []string{"authorization", "x-api-key", "api-key"} {
					if v, ok := got.Headers[h]; ok {
						creds[h] = v
					}
				}
				if diff := cmp.Diff(tc.wantAuth, creds); diff != "" {
					t.Errorf("credentials upstream saw (-want +got):\n%s", diff)
				}
				for _, v := range got.Headers {
					if strings.Contains(v, clientKeyA) {
						t.Errorf("client key reached the upstream: %q", v)
					}
				}
				if got.ContentLength != int64(got.BodyLen) {
					t.Errorf("upstream content-length %d, body %d bytes", got.ContentLength, got.BodyLen)
				}
			})
		}
	})
}

func TestModelRewriteKeepsContentLength(t *testing.T) {
	t.Parallel()
	bodyModes(t, func(t *testing.T, s standard) {
		body := `{"model":"renamed","messages":[{"role":"user","content":"héllo \u00e9 \ud83d\ude00"}],"temperature":0.5}`
		got := upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), body))
		if got.Model != "upstream-model-with-a-much-longer-name" {
			t.Errorf("upstream model %q, want the rewrite", got.Model)
		}
		if got.ContentLength != int64(got.BodyLen) || got.BodyLen <= len(body) {
			t.Errorf("upstream content-length %d, body %d bytes (client sent %d)", got.ContentLength, got.BodyLen, len(body))
		}
		var sent, received map[string]any
		json.Unmarshal([]byte(body), &sent)
		if err := json.Unmarshal([]byte(got.Body), &received); err != nil {
			t.Fatalf("upstream body does not parse: %v", err)
		}
		sent["model"] = "upstream-model-with-a-much-longer-name"
		if diff := cmp.Diff(sent, received); diff != "" {
			t.Errorf("body beyond the model changed (-want +got):\n%s", diff)
		}
	})
}

// TestWeightedAlias: an alias with weighted targets spreads requests over
// its providers, each with its own upstream model.
func TestWeightedAlias(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	config := fmt.Sprintf(`providers:
  - name: near
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_env: SWY_TEST_ALPHA_KEY}
  - name: far
    url: http://127.0.0.1:%d
    schema: openai
    auth: {type: bearer, key_env: SWY_TEST_BETA_KEY}
routes:
  - model: split
    targets:
      - {provider: near, model: small-model, weight: 3}
      - {provider: far, model: large-model, weight: 1}
`, a.port(), b.port())
	gw := startGateway(t, config, gatewayOptions{extraEnv: testEnv})
	counts := map[string]int{}
	const n = 200
	for i := 0; i < n; i++ {
		got := upstreamSaw(t, gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"split","messages":[]}`))
		counts[got.Upstream+" "+got.Model+" "+got.Headers["authorization"]]++
	}
	near := counts["A small-model Bearer "+alphaKey]
	far := counts["B large-model Bearer "+betaKey]
	if near+far != n {
		t.Fatalf("requests went elsewhere: %v", counts)
	}
	// 3:1 over 200 requests: near is 150 on average; 110..190 is beyond 5 sigma.
	if near < 110 || near > 190 || far == 0 {
		t.Errorf("split %d near / %d far, want about 3:1", near, far)
	}
	t.Logf("split: %d near, %d far", near, far)
}
