package routing

import (
	"context"
	"errors"
	"testing"

	"switchyard/config"
)

// TestDecideVertex: a vertex provider speaks its publisher's API under the
// project's and region's path, marked Vertex; a gcp_oauth provider carries
// the token its source holds now, answers 503 while there is none, and is
// unavailable when its credentials cannot be set up.
func TestDecideVertex(t *testing.T) {
	cfg, err := config.Decode([]byte(`
providers:
  - name: claude
    schema: vertex
    project: my-project
    region: us-east5
    publisher: anthropic
    auth: {type: gcp_oauth, credentials_file: /sa.json}
  - name: gemini
    schema: vertex
    project: my-project
    region: global
    publisher: google
    url: http://127.0.0.1:9
    auth: {type: gcp_oauth}
routes:
  - {model: claude-*, provider: claude}
  - {model: gemini-*, provider: gemini}
`))
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeTokens{bearer: "Bearer ya29.a"}
	var files []string
	env := fakeEnv
	env.GCPTokens = func(file string) (config.TokenSource, error) {
		files = append(files, file)
		return src, nil
	}
	r, err := Compile(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0] != "/sa.json" || files[1] != "" {
		t.Errorf("token sources made for files %q, want the key file and ADC", files)
	}
	for _, tc := range []struct {
		model, prefix string
		api           config.API
	}{
		{"claude-sonnet-4-5", "/v1/projects/my-project/locations/us-east5/publishers/anthropic", config.APIAnthropic},
		{"gemini-2.5-flash", "/v1/projects/my-project/locations/global/publishers/google", config.APIGemini},
	} {
		d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: tc.model, Translate: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.model, err)
		}
		if d.API != tc.api || !d.Vertex || d.PathPrefix != tc.prefix || d.Credential == nil || *d.Credential != (Header{Name: "authorization", Value: "Bearer ya29.a"}) {
			t.Errorf("%s: decision %+v", tc.model, d)
		}
	}
	src.err = errors.New("no Google access token yet")
	if _, err := r.Decide(context.Background(), &Request{API: config.APIAnthropic, Model: "claude-x"}); err == nil || err.(*Error).Kind != KindUnavailable {
		t.Errorf("without a token: %v, want unavailable", err)
	}
	env.GCPTokens = func(string) (config.TokenSource, error) {
		return nil, errors.New("credentials_file /sa.json: no such file")
	}
	r2, err := Compile(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Decide(context.Background(), &Request{API: config.APIAnthropic, Model: "claude-x"}); err == nil || err.(*Error).Kind != KindUnavailable {
		t.Errorf("without credentials: %v, want unavailable", err)
	}
}
