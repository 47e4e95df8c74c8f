package e2e

import (
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/loadtest/mockllm"
)

// signedBy is the access key id a recorded Bedrock request was signed with.
func signedBy(r map[string]any) string {
	h, _ := r["headers"].(map[string]any)
	auth, _ := h["Authorization"].(string)
	if auth == "" {
		auth, _ = h["authorization"].(string)
	}
	_, after, _ := strings.Cut(auth, "Credential=")
	id, _, _ := strings.Cut(after, "/")
	return id
}

// startFakeAssumeRole is an STS that answers AssumeRole for role, signed
// by the base key id, with keyID/secret/token; it counts the calls.
func startFakeAssumeRole(t *testing.T, role, base, keyID, secret, token string) (url string, calls *atomic.Int32) {
	calls = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" || r.Form.Get("RoleArn") != role ||
			!strings.Contains(r.Header.Get("authorization"), "Credential="+base+"/") {
			t.Errorf("STS got %v signed %q", r.Form, r.Header.Get("authorization"))
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		w.Header().Set("content-type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>%s/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>`,
			keyID, secret, token, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), role)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// TestBedrockCredentialPool: a Bedrock provider with three credentials, a
// static key pair from the environment (weighted to be tried first), a
// profile of the shared credentials file and a role assumed through STS
// with the default chain's keys, against a fake that checks every
// signature with botocore for each and throttles the first two accounts.
// The first request is signed with each credential in turn, each attempt
// with its own keys and session token, throttled twice and answered on
// the role; the throttled two then rest, so the next requests (streamed
// and not, from both client APIs) go straight to the role. No secret
// reaches the logs or metrics.
func TestBedrockCredentialPool(t *testing.T) {
	t.Parallel()
	const (
		keyA, keyB, secretB, tokenB = "AKIDPOOLSTATIC000001", "AKIDPOOLPROFILE00002", "other-secret-pool-b", "other-secret-token-b"
		keyC, secretC, tokenC       = "ASIAPOOLROLE00000003", "other-secret-pool-c", "other-secret-token-c"
		keyBase, role               = "AKIDPOOLBASE00000004", "arn:aws:iam::123456789012:role/bedrock-pool"
	)
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, keyA+","+keyB+","+keyC, bedrockSecret+","+secretB+","+secretC, "-,"+tokenB+","+tokenC, keyA, keyB)
	stsURL, assumed := startFakeAssumeRole(t, role, keyBase, keyC, secretC, tokenC)
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[team-b]\naws_access_key_id = "+keyB+"\naws_secret_access_key = "+secretB+
		"\naws_session_token = "+tokenB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(awsEnv(dir, "POOL_AK_A="+keyA, "POOL_SK_A="+bedrockSecret), "AWS_SHARED_CREDENTIALS_FILE="+creds,
		"AWS_ACCESS_KEY_ID="+keyBase, "AWS_SECRET_ACCESS_KEY=other-secret-base", "AWS_ENDPOINT_URL_STS="+stsURL)
	auth := `{type: aws_sigv4, region: us-east-1, credentials: [{access_key_id_env: POOL_AK_A, secret_access_key_env: POOL_SK_A, weight: 1000000},
    {profile: team-b}, {role_arn: "` + role + `"}]}`
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, auth), gatewayOptions{extraEnv: env})

	hdr := map[string]string{"anthropic-version": "2023-06-01"}
	r := gw.do(t, "POST", "/v1/messages", hdr, `{"model":"claude-bedrock","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), mockllm.Answer) {
		t.Fatalf("first request over the pool: %d %s", r.status, r.body)
	}
	if got := strings.Join(signers(fake.requests(t)), ","); got != keyA+","+keyB+","+keyC {
		t.Fatalf("Bedrock got requests signed by %s, want each credential's in turn", got)
	}
	if assumed.Load() == 0 {
		t.Error("the role was never assumed")
	}
	waitMetric(t, gw, `switchyard_key_cooldowns_total{key="POOL_AK_A",provider="bedrock"}`, 1)
	waitMetric(t, gw, `switchyard_key_cooldowns_total{key="profile:team-b",provider="bedrock"}`, 1)

	for _, c := range []struct{ path, body, want string }{
		{"/v1/messages", `{"model":"claude-bedrock","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, "event: message_stop"},
		{"/v1/chat/completions", `{"model":"claude-bedrock","messages":[{"role":"user","content":"hi"}]}`, `"object":"chat.completion"`},
		{"/v1/chat/completions", `{"model":"claude-bedrock","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "data: [DONE]"},
	} {
		r := gw.do(t, "POST", c.path, hdr, c.body)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s with the first credentials resting: %d %s", c.path, c.body, r.status, r.body)
		}
	}
	if got := signers(fake.requests(t)[3:]); strings.Join(got, ",") != keyC+","+keyC+","+keyC {
		t.Errorf("with the first credentials resting Bedrock got requests signed by %v, want the role's only", got)
	}
	for what, text := range map[string]string{"extproc's log": gw.extprocOut.String(), "envoy's log": gw.envoyOut.String(), "the metrics": gw.metrics(t)} {
		for _, secret := range []string{secretB, tokenB, secretC, tokenC, bedrockSecret, "other-secret-base"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds a credential", what)
			}
		}
	}
}

func signers(reqs []map[string]any) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, signedBy(r))
	}
	return out
}

// pooledAccount is one more service account the fake Vertex trusts.
type pooledAccount struct {
	email string
	key   *rsa.PrivateKey
	entry map[string]any // for the fake's config
}

func newPooledAccount(t *testing.T, dir, name string, busy bool) *pooledAccount {
	t.Helper()
	key, certPEM := vertexKey(t)
	certFile := filepath.Join(dir, name+"-cert.pem")
	writeFile(t, certFile, string(certPEM))
	email := name + "@" + vertexProject + ".iam.gserviceaccount.com"
	return &pooledAccount{email: email, key: key, entry: map[string]any{"cert_file": certFile, "client_email": email, "busy": busy}}
}

// keyFile writes the account's key file for the gateway.
func (a *pooledAccount) keyFile(t *testing.T, dir, tokenURI string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": vertexProject, "private_key_id": a.email,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, a.key)})),
		"client_email": a.email, "client_id": "1", "token_uri": tokenURI})
	f := filepath.Join(dir, strings.ReplaceAll(a.email, "@", "-")+".json")
	writeFile(t, f, string(b))
	return f
}

// TestVertexCredentialPool: a Vertex provider with two service accounts'
// key files, the first weighted to be tried first and over its quota at
// the fake (429 RESOURCE_EXHAUSTED for its tokens). Each file's tokens
// come from the fake's token endpoint, which verified that account's
// signed assertion; the first request goes out with the first account's
// token, is throttled, and is answered with the second's; the first then
// rests, and the next requests go straight to the second.
func TestVertexCredentialPool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := newPooledAccount(t, dir, "pool-a", true), newPooledAccount(t, dir, "pool-b", false)
	f := startFakeVertex(t, a.entry, b.entry)
	poolKeyA, poolKeyB := a.keyFile(t, dir, f.URL+"/token"), b.keyFile(t, dir, f.URL+"/token")
	cfg := fmt.Sprintf(`providers:
  - name: pooled
    schema: vertex
    url: %[1]s
    project: %[2]s
    region: %[3]s
    publisher: anthropic
    auth:
      type: gcp_oauth
      credentials: [{credentials_file: %[4]s, weight: 1000000}, {credentials_file: %[5]s}]
  - {name: only-a, schema: vertex, url: %[1]s, project: %[2]s, region: %[3]s, publisher: anthropic, auth: {type: gcp_oauth, credentials_file: %[4]s}}
  - {name: only-b, schema: vertex, url: %[1]s, project: %[2]s, region: %[3]s, publisher: anthropic, auth: {type: gcp_oauth, credentials_file: %[5]s}}
routes:
  - {model: claude, provider: pooled, rewrite_model: claude-sonnet-4-5@20250929}
  - {model: probe-a, provider: only-a, rewrite_model: claude-sonnet-4-5@20250929}
  - {model: probe-b, provider: only-b, rewrite_model: claude-sonnet-4-5@20250929}
`, f.URL, vertexProject, vertexRegion, poolKeyA, poolKeyB)
	gw := startGateway(t, cfg, gatewayOptions{})
	hdr := map[string]string{"content-type": "application/json"}
	msg := func(model string, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"max_tokens":8,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, model, stream)
	}
	// The gateway holds both accounts' tokens once the probes (single
	// credential providers sharing the files) get past 503.
	for model, want := range map[string]int{"probe-a": http.StatusTooManyRequests, "probe-b": http.StatusOK} {
		deadline := time.Now().Add(20 * time.Second)
		for gw.do(t, "POST", "/v1/messages", hdr, msg(model, false)).status != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered %d: %+v", model, want, f.stats(t))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	before := len(f.stats(t).Requests)
	r := gw.do(t, "POST", "/v1/messages", hdr, msg("claude", false))
	if r.status != http.StatusOK || gjson.GetBytes(r.body, "content.0.text").String() != vertexAnswer {
		t.Fatalf("first request over the pool: %d %s", r.status, r.body)
	}
	reqs := f.stats(t).Requests[before:]
	if len(reqs) != 2 || reqs[0].Account != a.email || reqs[0].Status != 429 ||
		reqs[1].Account != b.email || reqs[1].Status != 200 {
		t.Fatalf("Vertex got %+v, want the first account's token throttled, then the second's answered", reqs)
	}
	waitMetric(t, gw, `switchyard_key_cooldowns_total{key="`+poolKeyA+`",provider="pooled"}`, 1)
	before += 2
	for _, c := range []struct{ path, body string }{
		{"/v1/messages", msg("claude", true)},
		{"/v1/chat/completions", `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`},
	} {
		if r := gw.do(t, "POST", c.path, hdr, c.body); r.status != http.StatusOK || !strings.Contains(string(r.body), "Hello") {
			t.Errorf("%s %s with the first account resting: %d %s", c.path, c.body, r.status, r.body)
		}
	}
	for _, r := range f.stats(t).Requests[before:] {
		if r.Account != b.email || r.Status != 200 {
			t.Errorf("with the first account resting Vertex got %+v", r)
		}
	}
}
