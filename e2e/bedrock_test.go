package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/loadtest/mockllm"
)

// The fake Bedrock's test credentials.
const (
	bedrockKeyID  = "AKIDSWITCHYARDTEST01"
	bedrockSecret = "bedrock-test-secret-9f8e7d6c5b4a"
	bedrockToken  = "bedrock-test-session-token-0a1b2c3d"
	bedrockRegion = "us-east-1"
	bedrockModel  = "anthropic.claude-sonnet-4-5-20250929-v1:0"
)

// fakeBedrock is e2e/testdata/fake_bedrock.py, running.
type fakeBedrock struct {
	URL string
}

// startFakeBedrock starts the fake Bedrock, which checks every signature
// for keyID/secret/token (token "-": none; several credentials as
// comma-separated lists) and answers with the Go mock at upstream; the
// requests signed by a throttled key id get 429 ThrottlingException.
func startFakeBedrock(t *testing.T, upstream, keyID, secret, token string, throttled ...string) *fakeBedrock {
	t.Helper()
	py := sdkPython(t)
	if out, err := exec.Command(py, "-c", "import botocore").CombinedOutput(); err != nil {
		t.Fatalf("the fake Bedrock needs botocore: run `make sdks`: %v\n%s", err, out)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "fake_bedrock.py"), upstream, keyID, secret, token, bedrockRegion, strings.Join(throttled, ","))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the fake Bedrock: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if err != nil || !ok {
		t.Fatalf("the fake Bedrock did not listen: %q %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &fakeBedrock{URL: "http://" + addr}
}

// requests returns the InvokeModel requests the fake has had.
func (f *fakeBedrock) requests(t *testing.T) []map[string]any {
	t.Helper()
	resp, err := http.Get(f.URL + "/_requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// bedrockConfig routes sdk_streams.py's and sdk_tools.py's models ("m" for
// chat, "c" for Messages) to Bedrock's Anthropic model, and "throttled" to
// a Bedrock model that is always throttled, falling back to the mock.
func bedrockConfig(fakeURL, mockURL, auth string) string {
	return bedrockConfigFor(fakeURL, mockURL, auth, bedrockModel)
}

// bedrockConfigFor is bedrockConfig with its main routes on model.
func bedrockConfigFor(fakeURL, mockURL, auth, model string) string {
	return fmt.Sprintf(`providers:
  - name: bedrock
    schema: bedrock
    url: %[1]s
    auth: %[3]s
  - name: mock-anthropic
    url: %[2]s
    schema: anthropic
routes:
  - model: claude-bedrock
    provider: bedrock
    rewrite_model: %[4]s
  - model: m
    provider: bedrock
    rewrite_model: %[4]s
  - model: c
    provider: bedrock
    rewrite_model: %[4]s
  - model: throttled
    targets: [{provider: bedrock, model: "us.anthropic.throttled-v1:0"}]
    fallbacks: [{provider: mock-anthropic, model: mock-claude}]
  - model: midstream
    provider: bedrock
    rewrite_model: us.anthropic.midstream-v1:0
  - model: nova
    provider: bedrock
    rewrite_model: us.amazon.nova-pro-v1:0
  - model: throttled-bedrock
    targets: [{provider: bedrock, model: "us.anthropic.throttled-v1:0"}]
    fallbacks: [{provider: bedrock, model: "%[4]s"}]
usage: {enabled: true}
`, fakeURL, mockURL, auth, model)
}

// awsEnv isolates the AWS default chain from the machine's: no shared
// files, no instance metadata; extra sets the credentials.
func awsEnv(dir string, extra ...string) []string {
	return append([]string{
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
	}, extra...)
}

// TestBedrockSDKs: the official OpenAI and Anthropic SDKs through Envoy to
// a fake Bedrock that checks every signature with botocore: text and tool
// calls, streamed (event-stream frames turned into SSE) and not, with
// session credentials from the environment. Bedrock gets InvokeModel
// bodies (no model or stream, anthropic_version), tokens are counted, and
// no secret reaches the logs.
func TestBedrockSDKs(t *testing.T) {
	t.Parallel()
	py := sdkPython(t)
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, bedrockToken)
	env := awsEnv(t.TempDir(), "AWS_ACCESS_KEY_ID="+bedrockKeyID, "AWS_SECRET_ACCESS_KEY="+bedrockSecret, "AWS_SESSION_TOKEN="+bedrockToken)
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1}`),
		gatewayOptions{extraEnv: env, logLevel: "debug"})

	runSDKTranslate(t, py, gw.url, "claude-bedrock", "claude-bedrock", "from Bedrock through the gateway")

	reqs := fake.requests(t)
	streams := 0
	for _, r := range reqs {
		path, _ := r["path"].(string)
		body, _ := r["body"].(map[string]any)
		if !strings.HasPrefix(path, "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke") {
			t.Errorf("Bedrock got %s", path)
		}
		if strings.HasSuffix(path, "-with-response-stream") {
			streams++
		}
		if _, has := body["model"]; has || body["anthropic_version"] != "bedrock-2023-05-31" || body["max_tokens"] == nil {
			t.Errorf("Bedrock got the body %v", body)
		}
	}
	if len(reqs) < 8 || streams == 0 || streams == len(reqs) {
		t.Errorf("Bedrock got %d requests, %d streamed", len(reqs), streams)
	}
	if n := len(mock.take()); n != len(reqs) {
		t.Errorf("the mock behind the fake got %d requests, the fake %d", n, len(reqs))
	}
	waitMetric(t, gw, `switchyard_tokens_total{key="",model="claude-bedrock",provider="bedrock",type="output"}`, 1)
	waitMetric(t, gw, `switchyard_tokens_total{key="",model="claude-bedrock",provider="bedrock",type="input"}`, 1)
	assertNoSecrets(t, gw)
}

// TestBedrockByHostName: a Bedrock url naming a host, on a port of its
// own (a proxy or a VPC endpoint), is signed for the Host Envoy sends: its
// routes rewrite it to the name the DNS cluster resolved, without the port.
func TestBedrockByHostName(t *testing.T) {
	t.Parallel()
	py := sdkPython(t)
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, bedrockToken)
	url := strings.Replace(fake.URL, "127.0.0.1", "localhost", 1)
	env := awsEnv(t.TempDir(), "AWS_ACCESS_KEY_ID="+bedrockKeyID, "AWS_SECRET_ACCESS_KEY="+bedrockSecret, "AWS_SESSION_TOKEN="+bedrockToken)
	gw := startGateway(t, bedrockConfig(url, mock.URL, `{type: aws_sigv4, region: us-east-1}`), gatewayOptions{extraEnv: env})
	runSDKTranslate(t, py, gw.url, "claude-bedrock", "claude-bedrock", "from Bedrock by its host name through the gateway")
	if len(fake.requests(t)) == 0 {
		t.Error("the fake Bedrock got no request")
	}
}

// assertNoSecrets fails when the gateway's logs or metrics hold a
// credential of the fake.
func assertNoSecrets(t *testing.T, gw *gateway) {
	t.Helper()
	for what, text := range map[string]string{"extproc's log": gw.extprocOut.String(), "envoy's log": gw.envoyOut.String(), "the metrics": gw.metrics(t)} {
		for _, secret := range []string{bedrockSecret, bedrockToken, "other-secret"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds a credential", what)
			}
		}
	}
}

// TestBedrockRefusesWrongSecret: with a wrong secret key the fake refuses
// the signature as Bedrock does; the client gets a clear 502 in its own
// API's shape that names the AWS error, and neither the answer nor the
// logs hold the session token the refusal quoted back.
func TestBedrockRefusesWrongSecret(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, bedrockToken)
	env := awsEnv(t.TempDir(), "AWS_ACCESS_KEY_ID="+bedrockKeyID, "AWS_SECRET_ACCESS_KEY=other-secret", "AWS_SESSION_TOKEN="+bedrockToken)
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1}`), gatewayOptions{extraEnv: env})

	for _, c := range []struct{ path, body, wantType string }{
		{"/v1/messages", `{"model":"claude-bedrock","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, `"type":"error"`},
		{"/v1/messages", `{"model":"claude-bedrock","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, `"type":"error"`},
		{"/v1/chat/completions", `{"model":"claude-bedrock","messages":[{"role":"user","content":"hi"}]}`, `"error":{"message"`},
	} {
		r := gw.do(t, "POST", c.path, map[string]string{"anthropic-version": "2023-06-01"}, c.body)
		body := string(r.body)
		if r.status != 502 || !strings.Contains(body, c.wantType) || !strings.Contains(body, "InvalidSignatureException") ||
			!strings.Contains(body, "signature we calculated does not match") {
			t.Errorf("%s with a wrong secret: %d %s", c.path, r.status, body)
		}
		if strings.Contains(body, bedrockToken) || strings.Contains(body, "Canonical String") {
			t.Errorf("%s: the client got AWS's canonical request: %s", c.path, body)
		}
	}
	if len(fake.requests(t)) != 0 {
		t.Error("the fake took a request signed with the wrong secret")
	}
	assertNoSecrets(t, gw)
}

// TestBedrockProfileFile: credentials from a shared credentials file and the
// provider's profile (static keys, no session token).
func TestBedrockProfileFile(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, "AKIDPROFILETEST00001", bedrockSecret, "-")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	content := "[default]\naws_access_key_id = AKIDWRONGDEFAULT0001\naws_secret_access_key = wrong\n\n" +
		"[team]\naws_access_key_id = AKIDPROFILETEST00001\naws_secret_access_key = " + bedrockSecret + "\n"
	if err := os.WriteFile(creds, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(awsEnv(dir), "AWS_SHARED_CREDENTIALS_FILE="+creds)
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1, profile: team}`), gatewayOptions{extraEnv: env})
	r := gw.do(t, "POST", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
		`{"model":"claude-bedrock","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 200 || !strings.Contains(string(r.body), mockllm.Answer) {
		t.Fatalf("Bedrock with a profile's credentials: %d %s", r.status, r.body)
	}
}

// TestBedrockFallback: Bedrock throttles (429 ThrottlingException); the
// request falls back to another provider, streamed and not, for both APIs.
func TestBedrockFallback(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, "-")
	env := awsEnv(t.TempDir(), "AWS_ACCESS_KEY_ID="+bedrockKeyID, "AWS_SECRET_ACCESS_KEY="+bedrockSecret)
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1}`), gatewayOptions{extraEnv: env})
	hdr := map[string]string{"anthropic-version": "2023-06-01"}
	for _, c := range []struct{ path, body, want string }{
		{"/v1/messages", `{"model":"throttled","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, `"type":"message"`},
		{"/v1/messages", `{"model":"throttled","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, "event: message_stop"},
		{"/v1/chat/completions", `{"model":"throttled","messages":[{"role":"user","content":"hi"}]}`, `"object":"chat.completion"`},
		{"/v1/chat/completions", `{"model":"throttled","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "data: [DONE]"},
	} {
		r := gw.do(t, "POST", c.path, hdr, c.body)
		if r.status != 200 || !strings.Contains(string(r.body), c.want) || !strings.Contains(string(r.body), " mock") {
			t.Errorf("%s %s after Bedrock's 429: %d %s", c.path, c.body, r.status, r.body)
		}
	}
	waitMetric(t, gw, `switchyard_fallbacks_total{from="bedrock",reason="429",to="mock-anthropic"}`, 4)
	if n := len(fake.requests(t)); n != 4 {
		t.Errorf("Bedrock got %d requests, want 4 (each throttled once)", n)
	}

	// From one Bedrock model to another: the attempt filter signs the
	// second attempt itself and converts its event stream.
	for _, c := range []struct{ path, body, want string }{
		{"/v1/messages", `{"model":"throttled-bedrock","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, "event: message_stop"},
		{"/v1/chat/completions", `{"model":"throttled-bedrock","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "data: [DONE]"},
		{"/v1/chat/completions", `{"model":"throttled-bedrock","messages":[{"role":"user","content":"hi"}]}`, `"object":"chat.completion"`},
	} {
		r := gw.do(t, "POST", c.path, hdr, c.body)
		if r.status != 200 || !strings.Contains(string(r.body), c.want) || !strings.Contains(string(r.body), " mock") {
			t.Errorf("%s %s, Bedrock after Bedrock: %d %s", c.path, c.body, r.status, r.body)
		}
	}
	reqs := fake.requests(t)[4:]
	if len(reqs) != 6 {
		t.Fatalf("Bedrock got %d requests, want 6 (three throttled, three answered)", len(reqs))
	}
	for i, r := range reqs {
		path, _ := r["path"].(string)
		if throttled := strings.Contains(path, "throttled"); throttled != (i%2 == 0) {
			t.Errorf("request %d went to %s", i, path)
		}
	}
	waitMetric(t, gw, `switchyard_tokens_total{key="",model="throttled-bedrock",provider="bedrock",type="output"}`, 1)
}

// TestClaudeCodeOnBedrock: Claude Code, with the README's settings, on a
// model served by Bedrock: its Messages requests become signed InvokeModel
// calls that keep Claude Code's fields, its streams come back from event
// stream frames, and /context is answered with the gateway's estimate.
func TestClaudeCodeOnBedrock(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, bedrockToken)
	addBedrock := func(cfg string) string {
		cfg = strings.Replace(cfg, "\nproviders:\n", "\nproviders:\n  - {name: bedrock, schema: bedrock, url: '"+fake.URL+"', auth: {type: aws_sigv4, region: us-east-1}}\n", 1)
		cfg = strings.Replace(cfg, "\nroutes:\n", "\nroutes:\n  - {model: claude-bedrock, provider: bedrock, rewrite_model: '"+bedrockModel+"'}\n", 1)
		return withAgentKey(cfg)
	}
	c := startClaude(t, "claude-bedrock", addBedrock,
		awsEnv(t.TempDir(), "AWS_ACCESS_KEY_ID="+bedrockKeyID, "AWS_SECRET_ACCESS_KEY="+bedrockSecret, "AWS_SESSION_TOKEN="+bedrockToken)...)
	for _, tc := range []struct{ name, prompt, want string }{
		{name: "prompt", prompt: "Reply with one short sentence.", want: mockllm.Answer},
		{name: "context", prompt: "/context", want: "Context Usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := runAgent(t, c.bin, []string{"--settings", c.settings, "-p", tc.prompt}, c.env)
			checkAgentOutput(t, run, tc.want, c.guard)
		})
	}
	reqs := fake.requests(t)
	if len(reqs) == 0 {
		t.Fatal("Bedrock received nothing")
	}
	betas := 0
	for i, r := range reqs {
		body, _ := r["body"].(map[string]any)
		headers, _ := r["headers"].(map[string]any)
		if b, _ := body["anthropic_beta"].([]any); len(b) > 0 {
			betas++
		}
		path, _ := r["path"].(string)
		if !strings.HasPrefix(path, "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke") || body["messages"] == nil || body["model"] != nil {
			t.Errorf("request %d: %s %v", i, path, body)
		}
		for name := range headers {
			if n := strings.ToLower(name); n == "anthropic-beta" || n == "x-api-key" || n == "anthropic-version" {
				t.Errorf("request %d carried %s", i, name)
			}
		}
		if i == 0 {
			t.Logf("Claude Code's first request reached Bedrock as %s with fields %v", path, keys(body))
		}
	}
	if betas == 0 {
		t.Error("Claude Code's anthropic-beta header reached Bedrock's body in no request")
	}
	if n := len(c.mock.take()); n != 0 {
		t.Errorf("%d requests went to the example's mock instead of Bedrock", n)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBedrockFailsMidStream: an exception message in the middle of
// Bedrock's event stream reaches the client as its API's stream error, after
// the events before it.
func TestBedrockFailsMidStream(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, "-")
	env := awsEnv(t.TempDir(), "AWS_ACCESS_KEY_ID="+bedrockKeyID, "AWS_SECRET_ACCESS_KEY="+bedrockSecret)
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1}`), gatewayOptions{extraEnv: env})
	r := gw.do(t, "POST", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
		`{"model":"midstream","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	body := string(r.body)
	if r.status != 200 || !strings.HasPrefix(body, "event: message_start\n") || strings.Contains(body, "message_stop") ||
		!strings.HasSuffix(body, `event: error`+"\n"+`data: {"type":"error","error":{"type":"rate_limit_error","message":"Too many tokens, please wait before trying again."}}`+"\n\n") {
		t.Errorf("Messages client: %d %s", r.status, body)
	}
	r = gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"midstream","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	body = string(r.body)
	if r.status != 200 || !strings.Contains(body, `"object":"chat.completion.chunk"`) || !strings.Contains(body, "Too many tokens") || strings.Contains(body, `"finish_reason":"stop"`) {
		t.Errorf("chat client: %d %s", r.status, body)
	}
}

// fakeSTS answers AssumeRoleWithWebIdentity for the service account token
// in token, with the fake Bedrock's keys and a new session token each time,
// valid for lifetime.
type fakeSTS struct {
	mu     sync.Mutex
	tokens []string // the session tokens handed out
}

func startFakeSTS(t *testing.T, token string, lifetime time.Duration) (*fakeSTS, string) {
	s := &fakeSTS{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("WebIdentityToken") != token {
			t.Errorf("STS got %s %v", r.URL, r.Form)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		session := fmt.Sprintf("web-identity-session-%d", len(s.tokens)+1)
		s.tokens = append(s.tokens, session)
		s.mu.Unlock()
		w.Header().Set("content-type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>
<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/gateway/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
			bedrockKeyID, bedrockSecret, session, time.Now().Add(lifetime).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *fakeSTS) issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokens)
}

// TestBedrockWebIdentityRefresh: credentials from a Kubernetes service
// account (web identity through STS) that expire in five minutes and two
// seconds are replaced before they expire, off the request path: requests
// before and after the rollover succeed, signed with the first session and
// then the second.
func TestBedrockWebIdentityRefresh(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, "-")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("service-account-jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	sts, stsURL := startFakeSTS(t, "service-account-jwt", 5*time.Minute+2*time.Second)
	env := awsEnv(dir, "AWS_WEB_IDENTITY_TOKEN_FILE="+tokenFile, "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/gateway",
		"AWS_ROLE_SESSION_NAME=gateway", "AWS_ENDPOINT_URL_STS="+stsURL)
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1}`), gatewayOptions{extraEnv: env})
	ask := func() {
		t.Helper()
		r := gw.do(t, "POST", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
			`{"model":"claude-bedrock","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`)
		if r.status != 200 {
			t.Fatalf("Bedrock with web identity credentials: %d %s", r.status, r.body)
		}
	}
	// Requests go on, every one answered, until one is signed with the
	// second session.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ask()
		reqs := fake.requests(t)
		if tokenOf(reqs[len(reqs)-1]["headers"].(map[string]any)) == "web-identity-session-2" {
			if first := tokenOf(reqs[0]["headers"].(map[string]any)); first != "web-identity-session-1" {
				t.Errorf("the first request was signed with %q", first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the credentials were not refreshed: STS issued %v", sts.issued())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(sts.issued()); n != 2 {
		t.Errorf("STS was asked %d times, want 2", n)
	}
}

func tokenOf(headers map[string]any) string {
	for k, v := range headers {
		if strings.EqualFold(k, "x-amz-security-token") {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// TestBedrockWithoutCredentials: with nothing in the AWS default chain,
// Bedrock requests get a clear 503 in the client's shape, and the log says
// what the chain lacked.
func TestBedrockWithoutCredentials(t *testing.T) {
	t.Parallel()
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, "-")
	gw := startGateway(t, bedrockConfig(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1}`), gatewayOptions{extraEnv: awsEnv(t.TempDir())})
	r := gw.do(t, "POST", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
		`{"model":"claude-bedrock","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 503 || !strings.Contains(string(r.body), `"type":"error"`) || !strings.Contains(string(r.body), "no AWS credentials") {
		t.Errorf("without credentials: %d %s", r.status, r.body)
	}
	if log := gw.extprocOut.String(); !strings.Contains(log, "no AWS credentials for Bedrock") {
		t.Errorf("the log does not say why:\n%s", log)
	}
	if len(fake.requests(t)) != 0 {
		t.Error("an unsigned request reached Bedrock")
	}
}

// TestBedrockConverseSDKs: the same SDK checks as TestBedrockSDKs on a model
// of another maker (Amazon Nova), reached through Converse and
// ConverseStream: text and tool calls, streamed and not, for both APIs.
func TestBedrockConverseSDKs(t *testing.T) {
	t.Parallel()
	py := sdkPython(t)
	mock := startMock(t)
	fake := startFakeBedrock(t, mock.URL, bedrockKeyID, bedrockSecret, "-")
	env := awsEnv(t.TempDir(), "AWS_ACCESS_KEY_ID="+bedrockKeyID, "AWS_SECRET_ACCESS_KEY="+bedrockSecret)
	gw := startGateway(t, bedrockConfigFor(fake.URL, mock.URL, `{type: aws_sigv4, region: us-east-1}`, "us.amazon.nova-pro-v1:0"),
		gatewayOptions{extraEnv: env})

	runSDKTranslate(t, py, gw.url, "claude-bedrock", "claude-bedrock", "from Converse through the gateway")
	streams := 0
	for _, r := range fake.requests(t) {
		path, _ := r["path"].(string)
		if !strings.HasPrefix(path, "/model/us.amazon.nova-pro-v1%3A0/converse") {
			t.Errorf("Bedrock got %s", path)
		}
		if strings.HasSuffix(path, "/converse-stream") {
			streams++
		}
	}
	if streams == 0 {
		t.Error("no ConverseStream call")
	}
	waitMetric(t, gw, `switchyard_tokens_total{key="",model="claude-bedrock",provider="bedrock",type="output"}`, 1)

	// What Converse cannot carry is refused, in the client's shape.
	r := gw.do(t, "POST", "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
		`{"model":"claude-bedrock","max_tokens":16,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 400 || !strings.Contains(string(r.body), "thinking is not supported") || !strings.Contains(string(r.body), `"type":"error"`) {
		t.Errorf("thinking on Converse: %d %s", r.status, r.body)
	}
}
