package routing

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"switchyard/config"
)

const cloudsYAML = `
providers:
  - name: azure
    url: https://x.openai.azure.com
    schema: azure-openai
    api_version: 2024-10-21
    auth: {type: header, header: api-key, key_env: AZURE_KEY}
  - name: azure-v1
    url: https://x.openai.azure.com
    schema: azure-openai
    api_version: v1
    auth: {type: header, header: api-key, key_env: AZURE_KEY}
  - name: gemini
    schema: gemini
    auth: {type: header, header: x-goog-api-key, key_env: OPENAI_API_KEY}
routes:
  - model: gpt-4o
    provider: azure
    rewrite_model: my-deployment
  - model: gpt-v1
    provider: azure-v1
  - model: gemini-*
    provider: gemini
`

// TestDecideClouds: Azure OpenAI serves OpenAI clients untranslated and
// Messages clients translated, with its api_version and /openai prefix;
// Gemini serves both client APIs translated, at its default url and prefix.
func TestDecideClouds(t *testing.T) {
	r := mustRouter(t, cloudsYAML)
	azureCred := &Header{Name: "api-key", Value: secretAzure}
	geminiCred := &Header{Name: "x-goog-api-key", Value: secretOpenAI}
	tests := []struct {
		name string
		req  Request
		want Decision
	}{
		{"azure deployment", Request{API: config.APIOpenAI, Model: "gpt-4o"},
			Decision{Provider: "azure", API: config.APIAzureOpenAI, Cluster: "azure", Model: "my-deployment", RewriteModel: true,
				PathPrefix: "/openai", APIVersion: "2024-10-21", Credential: azureCred, Route: "gpt-4o"}},
		{"azure from messages", Request{API: config.APIAnthropic, Model: "gpt-v1", Translate: true},
			Decision{Provider: "azure-v1", API: config.APIAzureOpenAI, Cluster: "azure-v1", Model: "gpt-v1",
				PathPrefix: "/openai", APIVersion: "v1", Credential: azureCred, Route: "gpt-v1"}},
		{"gemini from chat", Request{API: config.APIOpenAI, Model: "gemini-2.5-flash", Translate: true},
			Decision{Provider: "gemini", API: config.APIGemini, Cluster: "gemini", Model: "gemini-2.5-flash",
				PathPrefix: "/v1beta", Credential: geminiCred, Route: "gemini-*"}},
		{"gemini from messages", Request{API: config.APIAnthropic, Model: "gemini-x", Translate: true},
			Decision{Provider: "gemini", API: config.APIGemini, Cluster: "gemini", Model: "gemini-x",
				PathPrefix: "/v1beta", Credential: geminiCred, Route: "gemini-*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Decide(context.Background(), &tc.req)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Decision{}, "Strip")); diff != "" {
				t.Errorf("Decision (-want +got):\n%s", diff)
			}
		})
	}
	// An endpoint without a translation cannot reach Gemini.
	for _, model := range []string{"gemini-x", "gemini/gemini-x"} {
		_, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: model})
		if err == nil || !strings.Contains(err.Error(), "reached only from chat completions and messages") {
			t.Errorf("%s from an untranslatable endpoint: %v, want the Gemini refusal", model, err)
		}
	}
	var gem Provider
	for _, p := range r.Providers() {
		if p.Name == "gemini" {
			gem = p
		}
	}
	if gem.Host != "generativelanguage.googleapis.com" || gem.Port != 443 || !gem.TLS {
		t.Errorf("gemini provider without url = %+v, want the Gemini API's default url", gem)
	}
}

type fakeTokens struct {
	bearer string
	err    error
}

func (f *fakeTokens) Bearer() (string, error) { return f.bearer, f.err }

// TestDecideEntra: an "entra" provider's decision carries the token its
// source holds now as authorization, strips the client's other key
// headers, and answers 503 while the source has none; the client secret
// comes from the environment; without token sources it is unavailable.
func TestDecideEntra(t *testing.T) {
	cfg, err := config.Decode([]byte(`
providers:
  - name: az
    url: https://x.openai.azure.com
    schema: azure-openai
    api_version: v1
    auth: {type: entra, entra: {tenant_id: t, client_id: c, client_secret_env: AZURE_KEY}}
`))
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeTokens{bearer: "Bearer tok-1"}
	var gotSecret string
	env := fakeEnv
	env.EntraTokens = func(e *config.EntraConfig, secret string) (config.TokenSource, error) {
		gotSecret = secret
		return src, nil
	}
	r, err := Compile(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if gotSecret != secretAzure {
		t.Errorf("the token source got secret %q, want the trimmed AZURE_KEY", gotSecret)
	}
	req := &Request{API: config.APIOpenAI, Model: "az/gpt"}
	d, err := r.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if d.Credential == nil || *d.Credential != (Header{Name: "authorization", Value: "Bearer tok-1"}) {
		t.Errorf("Credential = %+v, want authorization: Bearer tok-1", d.Credential)
	}
	if diff := cmp.Diff([]string{"x-api-key", "api-key"}, d.Strip); diff != "" {
		t.Errorf("Strip (-want +got):\n%s", diff)
	}
	src.bearer = "Bearer tok-2"
	if d, _ := r.Decide(context.Background(), req); d.Credential.Value != "Bearer tok-2" {
		t.Errorf("after a refresh the decision carries %q", d.Credential.Value)
	}
	src.err = errors.New("no Entra token yet")
	if _, err := r.Decide(context.Background(), req); err == nil || err.(*Error).Kind != KindUnavailable {
		t.Errorf("without a token: %v, want unavailable", err)
	}
	r2, err := Compile(cfg, fakeEnv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Decide(context.Background(), req); err == nil || err.(*Error).Kind != KindUnavailable {
		t.Errorf("without token sources: %v, want unavailable", err)
	}
}

// TestChainAcrossOpenAIAndAzure: OpenAI and Azure OpenAI take the same
// bodies, so one chain holds both, each attempt with its own path prefix,
// api_version and key; Gemini, which takes other bodies, stays out of it.
func TestChainAcrossOpenAIAndAzure(t *testing.T) {
	r := mustRouter(t, `
providers:
  - name: openai
    url: https://api.openai.com
    schema: openai
    auth: {type: bearer, key_env: OPENAI_API_KEY}
  - name: azure
    url: https://x.openai.azure.com
    schema: azure-openai
    api_version: 2024-10-21
    auth: {type: header, header: api-key, key_env: AZURE_KEY}
  - name: gemini
    schema: gemini
    auth: {type: header, header: x-goog-api-key, key_env: OPENAI_API_KEY}
routes:
  - model: gpt
    provider: openai
    fallbacks:
      - {provider: gemini, model: gemini-2.5-flash}
      - {provider: azure, model: my-deployment}
`)
	d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "gpt", Translate: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range d.Attempts {
		got = append(got, a.Provider+" "+string(a.API)+" "+a.PathPrefix+" "+a.APIVersion+" "+a.Model+" "+a.Credential.Name)
	}
	want := []string{"openai openai   gpt authorization", "azure azure-openai /openai 2024-10-21 my-deployment api-key"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
}

// TestAttemptGemini: an attempt of a translated chain to Gemini is decided
// again with the upstream's API, as upstream.go does for each attempt.
func TestAttemptGemini(t *testing.T) {
	r := mustRouter(t, cloudsYAML)
	d, err := r.Attempt("gemini", "gemini-2.5-pro", config.APIGemini, "")
	if err != nil {
		t.Fatalf("Attempt: %v", err)
	}
	if d.API != config.APIGemini || d.PathPrefix != "/v1beta" || d.Model != "gemini-2.5-pro" || d.Credential == nil {
		t.Errorf("Attempt = %+v", d)
	}
}
