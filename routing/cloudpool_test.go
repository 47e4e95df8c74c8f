package routing

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"switchyard/bedrock"
	"switchyard/config"
)

const (
	poolAWSKeyA, poolAWSSecretA = "AKIDPOOLPROFILE00001", "pool-secret-a-SECRET"
	poolAWSKeyB, poolAWSSecretB = "AKIDPOOLSTATIC000002", "pool-secret-b-SECRET"
)

func compilePoolYAML(t *testing.T, yaml string, env config.Env) *Router {
	t.Helper()
	cfg, err := config.Decode([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// signedKey is the access key id an attempt's Bedrock signature names.
func signedKey(t *testing.T, d Decision) string {
	t.Helper()
	if d.Bedrock == nil {
		t.Fatalf("attempt %s has no Bedrock signer", d.Key)
	}
	hs, err := d.Bedrock.Sign("/model/m/invoke", []byte("{}"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Name == "authorization" {
			_, after, _ := strings.Cut(h.Value, "Credential=")
			id, _, _ := strings.Cut(after, "/")
			return id
		}
	}
	t.Fatal("no authorization header")
	return ""
}

// TestBedrockCredentialPool: a Bedrock provider with auth.credentials (a
// profile and a static key pair from the environment; a third whose
// variables are unset is left out and named) makes one attempt per
// credential, each signing with its own keys, moving on at 429 only; an
// attempt re-decided by its key signs with that key's credentials.
func TestBedrockCredentialPool(t *testing.T) {
	t.Parallel()
	bedrock.Preset("us-west-2", "pool-team-a", bedrock.StaticKeys(poolAWSKeyA, poolAWSSecretA, ""))
	env := config.Env{Getenv: func(name string) (string, bool) {
		v, ok := map[string]string{"AK_B": poolAWSKeyB, "SK_B": poolAWSSecretB}[name]
		return v, ok
	}, ReadFile: fakeEnv.ReadFile}
	r := compilePoolYAML(t, `
providers:
  - name: br
    schema: bedrock
    url: http://127.0.0.1:9
    auth:
      type: aws_sigv4
      region: us-west-2
      credentials:
        - {profile: pool-team-a, weight: 3}
        - {access_key_id_env: AK_B, secret_access_key_env: SK_B}
        - {access_key_id_env: AK_UNSET, secret_access_key_env: SK_B}
  - name: one
    schema: bedrock
    url: http://127.0.0.1:9
    auth: {type: aws_sigv4, region: us-west-2, credentials: [{access_key_id_env: AK_B, secret_access_key_env: SK_B}]}
routes:
  - {model: claude, provider: br, rewrite_model: anthropic.claude-v1}
  - {model: single, provider: one}
`, env)
	// One credential is a provider with one credential: no pool.
	if d, err := r.Decide(context.Background(), &Request{API: config.APIAnthropic, Model: "single"}); err != nil || d.Attempts != nil || d.Key != "" || signedKey(t, d) != poolAWSKeyB {
		t.Errorf("one credential: %+v %v, want a plain decision signed as %s", d, err, poolAWSKeyB)
	}
	if p := r.CredentialProblems(); len(p) != 1 || !strings.Contains(p[0], "AK_UNSET") || strings.Contains(p[0], poolAWSSecretB) {
		t.Errorf("credential problems %q, want the unset credential named, no secret", p)
	}
	want := map[string]string{"profile:pool-team-a": poolAWSKeyA, "AK_B": poolAWSKeyB}
	for _, session := range []string{"", "s-1"} {
		d, err := r.Decide(context.Background(), &Request{API: config.APIAnthropic, Model: "claude", Session: session})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Attempts) != 2 || d.Retry == nil || !d.Retry.Fails(429) || d.Retry.Fails(500) || d.Key != d.Attempts[0].Key {
			t.Fatalf("decision %+v: want two attempts moving on at 429", d)
		}
		seen := map[string]bool{}
		for _, a := range d.Attempts {
			if got := signedKey(t, a); got != want[a.Key] || seen[a.Key] || a.Credential != nil {
				t.Errorf("attempt %s signs as %s, want %s once, without a static header", a.Key, got, want[a.Key])
			}
			seen[a.Key] = true
		}
	}
	for key, id := range want {
		d, err := r.Attempt("br", "anthropic.claude-v1", config.APIAnthropic, key)
		if err != nil || d.Key != key || signedKey(t, d) != id {
			t.Errorf("Attempt with key %s: %+v %v, want it signed as %s", key, d, err, id)
		}
	}
}

// TestVertexCredentialPool: a Vertex provider with two key files makes one
// attempt per file, each with its own file's token; a credential without a
// token yet is skipped, and with none the request is refused 503.
func TestVertexCredentialPool(t *testing.T) {
	t.Parallel()
	srcs := map[string]*fakeTokens{"/a.json": {bearer: "Bearer ya29.a"}, "/b.json": {bearer: "Bearer ya29.b"}}
	env := fakeEnv
	env.GCPTokens = func(file string) (config.TokenSource, error) { return srcs[file], nil }
	r := compilePoolYAML(t, `
providers:
  - name: vx
    schema: vertex
    project: my-project
    region: us-east5
    publisher: anthropic
    url: http://127.0.0.1:9
    auth:
      type: gcp_oauth
      credentials: [{credentials_file: /a.json}, {credentials_file: /b.json, weight: 2}]
routes:
  - {model: claude, provider: vx}
`, env)
	d, err := r.Decide(context.Background(), &Request{API: config.APIAnthropic, Model: "claude"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Attempts) != 2 || !d.Attempts[0].Vertex {
		t.Fatalf("decision %+v: want two Vertex attempts", d)
	}
	for _, a := range d.Attempts {
		if a.Credential == nil || a.Credential.Value != srcs[a.Key].bearer {
			t.Errorf("attempt %s carries %v, want its own token", a.Key, a.Credential)
		}
	}
	srcs["/a.json"].err = errors.New("no token yet")
	for range 10 {
		d, err := r.Decide(context.Background(), &Request{API: config.APIAnthropic, Model: "claude"})
		if err != nil || d.Key != "/b.json" || d.Credential.Value != "Bearer ya29.b" || len(d.Attempts) != 1 {
			t.Fatalf("with /a.json tokenless: %+v %v, want /b.json alone", d, err)
		}
	}
	if _, err := r.Attempt("vx", "claude", config.APIAnthropic, "/a.json"); err == nil {
		t.Error("an attempt on a tokenless credential passed")
	}
	srcs["/b.json"].err = errors.New("no token yet")
	if _, err := r.Decide(context.Background(), &Request{API: config.APIAnthropic, Model: "claude"}); err == nil || err.(*Error).Kind != KindUnavailable {
		t.Errorf("no credential with a token: %v, want unavailable", err)
	}
}

// TestCloudCredentialsValidation: auth.credentials is checked for its
// type, with the field at fault named.
func TestCloudCredentialsValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ auth, schema, want string }{
		{`{type: bearer, key_env: K, credentials: [{profile: a}]}`, "openai", `only used with type "aws_sigv4" or "gcp_oauth"`},
		{`{type: aws_sigv4, region: us-east-1, credentials: []}`, "bedrock", "at least one credential"},
		{`{type: aws_sigv4, region: us-east-1, profile: x, credentials: [{profile: a}]}`, "bedrock", "not both"},
		{`{type: aws_sigv4, region: us-east-1, credentials: [{access_key_id_env: A}]}`, "bedrock", "secret_access_key_env and secret_access_key_file is required"},
		{`{type: aws_sigv4, region: us-east-1, credentials: [{profile: a, access_key_id_env: A}]}`, "bedrock", "or a static key pair, not both"},
		{`{type: aws_sigv4, region: us-east-1, credentials: [{role_arn: "arn:aws:iam::1:role/x"}]}`, "bedrock", "is not an IAM role ARN"},
		{`{type: aws_sigv4, region: us-east-1, credentials: [{role_arn: "arn:aws:iam::123456789012:role/x", secret_access_key_env: S}]}`, "bedrock", "not both"},
		{`{type: gcp_oauth, credentials: [{role_arn: "arn:aws:iam::123456789012:role/x"}]}`, "vertex", "are for aws_sigv4"},
		{`{type: aws_sigv4, region: us-east-1, credentials: [{credentials_file: /a}]}`, "bedrock", "are for gcp_oauth"},
		{`{type: aws_sigv4, region: us-east-1, credentials: [{profile: a}, {profile: a}]}`, "bedrock", "duplicate credential"},
		{`{type: aws_sigv4, region: us-east-1, credentials: [{profile: a, weight: 0}]}`, "bedrock", "weight"},
		{`{type: gcp_oauth, credentials: [{profile: a}]}`, "vertex", "are for aws_sigv4"},
		{`{type: gcp_oauth, credentials: [{adc: true, credentials_file: /a}]}`, "vertex", "not both"},
		{`{type: gcp_oauth, credentials: [{}]}`, "vertex", "needs credentials_file"},
	} {
		extra := ""
		if tc.schema == "vertex" {
			extra = "project: my-project, region: us-east5, publisher: anthropic, "
		}
		_, err := config.Decode([]byte(`providers: [{name: p, url: "http://127.0.0.1:9", schema: ` + tc.schema + `, ` + extra + `auth: ` + tc.auth + `}]
routes: [{model: m, provider: p}]`))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("%s: %v, want an error on credentials saying %q", tc.auth, err, tc.want)
		}
	}
}
