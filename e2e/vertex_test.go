package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const (
	vertexProject = "switchyard-e2e"
	vertexRegion  = "us-east5"
	vertexEmail   = "gateway@switchyard-e2e.iam.gserviceaccount.com"
	// vertexTokenLife is short so that the test sees the gateway replace
	// tokens in the background: the fake Vertex refuses an expired one.
	vertexTokenLife = 6 * time.Second
	vertexAnswer    = "Hello from the fake Vertex."
)

// fakeVertex is testdata/fake_vertex.py: a Google token endpoint that
// verifies service account assertions with google-auth, and Vertex AI's
// Claude and Gemini endpoints, which take only the tokens it minted.
type fakeVertex struct {
	URL string
	// keyFile is a service account key file whose key the fake trusts;
	// wrongKeyFile names the same account with another key.
	keyFile, wrongKeyFile string
	// privateKey is the trusted key's PEM, to look for in logs.
	privateKey string
}

// vertexPython is the SDK venv's python, with google-auth (make e2e
// installs it: the google-auth-py target).
func vertexPython(t *testing.T) string {
	t.Helper()
	py := sdkPython(t)
	if out, err := exec.Command(py, "-c", "import google.auth.jwt, cryptography").CombinedOutput(); err != nil {
		t.Fatalf("the fake Vertex needs google-auth and cryptography in %s: run `make google-auth-py`: %v\n%s", pySDK, err, out)
	}
	return py
}

// startFakeVertex starts the fake, trusting the main service account and
// more accounts (pooledAccount.entry).
func startFakeVertex(t *testing.T, more ...map[string]any) *fakeVertex {
	t.Helper()
	py := vertexPython(t)
	dir := t.TempDir()
	key, certPEM := vertexKey(t)
	certFile := filepath.Join(dir, "sa-cert.pem")
	writeFile(t, certFile, string(certPEM))
	conf := map[string]any{"cert_file": certFile, "client_email": vertexEmail, "project": vertexProject,
		"region": vertexRegion, "token_life": int(vertexTokenLife.Seconds()), "answer": vertexAnswer,
		"trigger": geminiToolTrigger, "arg": geminiArg, "result_prefix": geminiResultHead}
	if len(more) > 0 {
		conf["accounts"] = more
	}
	cfg, _ := json.Marshal(conf)
	cfgFile := filepath.Join(dir, "fake.json")
	writeFile(t, cfgFile, string(cfg))

	port := startListening(t, exec.Command(py, filepath.Join("testdata", "fake_vertex.py"), cfgFile))
	f := &fakeVertex{URL: "http://127.0.0.1:" + port}
	f.privateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, key)}))
	f.keyFile = filepath.Join(dir, "sa.json")
	writeFile(t, f.keyFile, string(serviceAccountJSON(f.privateKey, f.URL+"/token")))
	other, _ := vertexKey(t)
	f.wrongKeyFile = filepath.Join(dir, "sa-wrong.json")
	writeFile(t, f.wrongKeyFile, string(serviceAccountJSON(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, other)})), f.URL+"/token")))
	return f
}

// vertexKey is a new service account key and its self-signed certificate,
// as Google publishes for each key.
func vertexKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: vertexEmail},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func mustPKCS8(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serviceAccountJSON(privateKey, tokenURI string) []byte {
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": vertexProject, "private_key_id": "e2e-key-1",
		"private_key": privateKey, "client_email": vertexEmail, "client_id": "1234567890", "token_uri": tokenURI})
	return b
}

// vertexStats is what the fake saw.
type vertexStats struct {
	Minted        int      `json:"minted"`
	RefusedGrants []string `json:"refused_grants"`
	Unauthorized  int      `json:"unauthorized"`
	Requests      []struct {
		Path             string  `json:"path"`
		Token            string  `json:"token"`
		Status           int     `json:"status"`
		AnthropicVersion *string `json:"anthropic_version_header"`
		Account          string  `json:"account"`
		XAPIKey          bool    `json:"x_api_key"`
	} `json:"requests"`
}

func (f *fakeVertex) stats(t *testing.T) vertexStats {
	t.Helper()
	res, err := http.Get(f.URL + "/_stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var s vertexStats
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("fake Vertex stats %s: %v", b, err)
	}
	return s
}

func vertexConfig(f *fakeVertex) string {
	return fmt.Sprintf(`providers:
  - name: vertex-claude
    schema: vertex
    url: %[1]s
    project: %[2]s
    region: %[3]s
    publisher: anthropic
    auth: {type: gcp_oauth, credentials_file: %[4]s}
  - name: vertex-gemini
    schema: vertex
    url: %[1]s
    project: %[2]s
    region: %[3]s
    publisher: google
    auth: {type: gcp_oauth, credentials_file: %[4]s}
  - name: vertex-wrong-key
    schema: vertex
    url: %[1]s
    project: %[2]s
    region: %[3]s
    publisher: anthropic
    auth: {type: gcp_oauth, credentials_file: %[5]s}
routes:
  - {model: claude-chat, provider: vertex-claude, rewrite_model: claude-sonnet-4-5@20250929}
  - {model: claude-msgs, provider: vertex-claude, rewrite_model: claude-opus-4-1@20250805}
  - {model: gemini-chat, provider: vertex-gemini, rewrite_model: gemini-3-flash-preview}
  - {model: gemini-msgs, provider: vertex-gemini, rewrite_model: gemini-3-pro-preview}
  - {model: wrong-key, provider: vertex-wrong-key, rewrite_model: claude-sonnet-4-5@20250929}
  - {model: busy, provider: vertex-claude, rewrite_model: claude-sonnet-4-5-busy}
  - model: claude-fb
    targets: [{provider: vertex-claude, model: claude-sonnet-4-5-busy}]
    fallbacks: [{provider: vertex-claude, model: claude-sonnet-4-5@20250929}]
`, f.URL, vertexProject, vertexRegion, f.keyFile, f.wrongKeyFile)
}

// waitVertexToken waits for the gateway's first token: it is fetched in
// the background after start, and until then requests get 503.
func waitVertexToken(t *testing.T, gw *gateway, f *fakeVertex) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for f.stats(t).Minted == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway fetched no Google token: %+v", f.stats(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A token minted is held by the gateway a moment later.
	for gw.do(t, "POST", "/v1/messages", map[string]string{"content-type": "application/json"},
		`{"model":"claude-msgs","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("no request passed with a Google token")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVertexSDKs: the official SDKs through the real Envoy to Claude and
// Gemini on the fake Vertex AI, with tokens the gateway got from a service
// account key file (the fake verified the signed assertion): chat
// completions and Messages, streamed and not, text and tools; Claude
// through rawPredict and streamRawPredict with the Messages body, Gemini
// through generateContent and streamGenerateContent?alt=sse; every request
// carries a live token and none of the client's key or version headers.
func TestVertexSDKs(t *testing.T) {
	t.Parallel()
	f := startFakeVertex(t)
	gw := startGateway(t, vertexConfig(f), gatewayOptions{logLevel: "debug"})
	py := vertexPython(t)
	waitVertexToken(t, gw, f)

	for _, tc := range []struct{ name, chat, msgs string }{
		{"claude", "claude-chat", "claude-msgs"},
		{"gemini", "gemini-chat", "gemini-msgs"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "sdk_gemini.py"),
			gw.url, tc.chat, tc.msgs, vertexAnswer, geminiToolTrigger, geminiArg, geminiResultHead).CombinedOutput()
		cancel()
		t.Logf("sdk_gemini.py for %s on Vertex:\n%s", tc.name, out)
		if err != nil || !strings.Contains(string(out), `{"passed": 2}`) {
			t.Fatalf("the SDKs failed through %s on Vertex: %v", tc.name, err)
		}
	}

	checkVertexErrors(t, gw)

	s := f.stats(t)
	methods := map[string]int{}
	for _, r := range s.Requests {
		if r.Status != http.StatusOK && !strings.Contains(r.Path, "-busy:") {
			t.Errorf("Vertex answered %d to %s", r.Status, r.Path)
		}
		if r.AnthropicVersion != nil || r.XAPIKey {
			t.Errorf("%s: the client's anthropic-version or x-api-key reached Vertex", r.Path)
		}
		prefix := "/v1/projects/" + vertexProject + "/locations/" + vertexRegion + "/publishers/"
		rest, ok := strings.CutPrefix(r.Path, prefix)
		if !ok {
			t.Errorf("Vertex got path %s", r.Path)
			continue
		}
		methods[rest]++
	}
	for _, want := range []string{
		"anthropic/models/claude-sonnet-4-5@20250929:rawPredict", "anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
		"anthropic/models/claude-opus-4-1@20250805:rawPredict", "anthropic/models/claude-opus-4-1@20250805:streamRawPredict",
		"google/models/gemini-3-flash-preview:generateContent", "google/models/gemini-3-flash-preview:streamGenerateContent?alt=sse",
		"google/models/gemini-3-pro-preview:generateContent", "google/models/gemini-3-pro-preview:streamGenerateContent?alt=sse",
	} {
		if methods[want] == 0 {
			t.Errorf("no request reached %s (got %v)", want, methods)
		}
	}
}

// checkVertexErrors: Vertex's 429 (a model over quota) reaches a chat
// client in OpenAI's shape with Google's message and a Messages client with
// its status; on a route with fallbacks it moves the request on to the next
// model, streamed or not, from either client API.
func checkVertexErrors(t *testing.T, gw *gateway) {
	t.Helper()
	hdr := map[string]string{"content-type": "application/json"}
	res := gw.do(t, "POST", "/v1/chat/completions", hdr, `{"model":"busy","messages":[{"role":"user","content":"hi"}]}`)
	if res.status != http.StatusTooManyRequests || gjson.GetBytes(res.body, "error.type").String() != "rate_limit_error" ||
		!strings.Contains(gjson.GetBytes(res.body, "error.message").String(), "Quota exceeded") {
		t.Errorf("chat to a model over quota: %d %s, want 429 rate_limit_error with Google's message", res.status, res.body)
	}
	res = gw.do(t, "POST", "/v1/messages", hdr, `{"model":"busy","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`)
	if res.status != http.StatusTooManyRequests {
		t.Errorf("Messages to a model over quota: %d %s, want 429", res.status, res.body)
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"claude-fb","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/chat/completions", `{"model":"claude-fb","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"claude-fb","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"claude-fb","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		res := gw.do(t, "POST", tc.path, hdr, tc.body)
		text := sseText(res.body) + gjson.GetBytes(res.body, "choices.0.message.content").String() + gjson.GetBytes(res.body, "content.0.text").String()
		if res.status != http.StatusOK || text != vertexAnswer {
			t.Errorf("%s %s over a fallback: %d %s", tc.path, tc.body, res.status, res.body)
		}
	}
}

// TestVertexTokens: tokens live 6 s at the fake; the gateway replaces each
// in the background before it expires, so a steady stream of requests over
// several token lives, streamed and not, has no failure and Vertex sees
// several tokens; a key file whose key Google does not know reaches the
// client as a clear 503, the log says why, and neither the key nor a
// token is ever logged or answered.
func TestVertexTokens(t *testing.T) {
	t.Parallel()
	f := startFakeVertex(t)
	gw := startGateway(t, vertexConfig(f), gatewayOptions{logLevel: "debug"})
	waitVertexToken(t, gw, f)

	hdr := map[string]string{"content-type": "application/json"}
	bodies := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"claude-chat","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"claude-msgs","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/chat/completions", `{"model":"gemini-chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
	}
	end := time.Now().Add(2 * vertexTokenLife)
	n := 0
	for time.Now().Before(end) {
		b := bodies[n%len(bodies)]
		if res := gw.do(t, "POST", b.path, hdr, b.body); res.status != http.StatusOK || !strings.Contains(string(res.body), "Hello") {
			t.Fatalf("request %d failed while tokens were refreshed: %d %s", n, res.status, res.body)
		}
		n++
		time.Sleep(20 * time.Millisecond)
	}
	s := f.stats(t)
	tokens := map[string]bool{}
	for _, r := range s.Requests {
		tokens[r.Token] = true
	}
	if len(tokens) < 3 || s.Unauthorized != 0 {
		t.Errorf("Vertex saw %d distinct tokens and %d unauthorized requests in %v of requests; want the token replaced at least twice and none refused",
			len(tokens), s.Unauthorized, 3*vertexTokenLife)
	}

	res := gw.do(t, "POST", "/v1/messages", hdr, `{"model":"wrong-key","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`)
	msg := gjson.GetBytes(res.body, "error.message").String()
	if res.status != http.StatusServiceUnavailable || !strings.Contains(msg, "Google access token") || gjson.GetBytes(res.body, "type").String() != "error" {
		t.Errorf("a key file Google does not know: %d %s, want 503 in Anthropic's shape naming the Google token", res.status, res.body)
	}
	if len(f.stats(t).RefusedGrants) == 0 {
		t.Error("the fake token endpoint refused no grant for the wrong key")
	}
	logs := gw.extprocOut.String()
	if !strings.Contains(logs, "Invalid JWT Signature") {
		t.Errorf("the log does not say why the wrong key got no token:\n%s", tail(logs, 3000))
	}
	keyBody := strings.Split(f.privateKey, "\n")[3] // a line of the key's base64
	for _, secret := range []string{keyBody, "ya29.fake-"} {
		if strings.Contains(logs, secret) || strings.Contains(gw.envoyOut.String(), secret) || strings.Contains(string(res.body), secret) {
			t.Errorf("%q appears in a log or an answer", secret)
		}
	}
	t.Logf("%d requests over %v, %d tokens minted, %d seen by Vertex", n, 3*vertexTokenLife, s.Minted, len(tokens))
}

// TestClaudeCodeOnVertex: Claude Code, with the README's settings,
// completes a prompt on Claude served by the fake Vertex AI: its Messages
// requests (a long system prompt, dozens of tools, betas, thinking) reach
// rawPredict or streamRawPredict as bodies Vertex accepts, with a Google
// token, and the answers come back as they are.
func TestClaudeCodeOnVertex(t *testing.T) {
	t.Parallel()
	f := startFakeVertex(t)
	c := startClaude(t, "vx-cc", func(cfg string) string {
		cfg = strings.Replace(cfg, "\nproviders:\n", fmt.Sprintf(`
providers:
  - name: vertex-claude
    schema: vertex
    url: %s
    project: %s
    region: %s
    publisher: anthropic
    auth: {type: gcp_oauth, credentials_file: %s}
`, f.URL, vertexProject, vertexRegion, f.keyFile), 1)
		cfg = strings.Replace(cfg, "\nroutes:\n", "\nroutes:\n  - {model: vx-cc, provider: vertex-claude, rewrite_model: claude-sonnet-4-5@20250929}\n", 1)
		return withAgentKey(cfg)
	})
	deadline := time.Now().Add(20 * time.Second)
	for c.gw.do(t, "POST", "/v1/messages", map[string]string{"content-type": "application/json", "authorization": "Bearer " + c.token},
		`{"model":"vx-cc","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("no request passed with a Google token: %+v", f.stats(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := len(f.stats(t).Requests)
	run := runAgent(t, c.bin, []string{"--settings", c.settings, "-p", "Reply with one short sentence."}, c.env)
	checkAgentOutput(t, run, vertexAnswer, c.guard)
	reqs := f.stats(t).Requests[before:]
	if len(reqs) == 0 {
		t.Fatal("the fake Vertex received nothing from Claude Code")
	}
	for i, r := range reqs {
		if r.Status != http.StatusOK || !strings.Contains(r.Path, "/publishers/anthropic/models/claude-sonnet-4-5@20250929:") {
			t.Errorf("request %d: %s answered %d", i, r.Path, r.Status)
		}
	}
	if leaked := c.mock.take(); len(leaked) > 0 {
		t.Errorf("%d requests reached the mock instead of Vertex", len(leaked))
	}
}
