package e2e

import (
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const (
	entraTenant   = "tenant-e2e"
	entraClientID = "client-e2e"
	entraSecret   = "entra-SECRET-e2e-0001"
	// entraTokenLife is short so that the test sees the gateway replace
	// tokens in the background: the fake Azure refuses an expired one.
	entraTokenLife = 6 * time.Second
)

// fakeEntra is the part of Microsoft Entra ID that azidentity's client
// secret credential (MSAL) talks to: the tenant's OpenID discovery document
// and the token endpoint, which checks the client credentials grant (client
// id, secret, the Cognitive Services scope) and mints tokens that expire.
// It serves TLS (MSAL requires an https authority); certFile is its
// certificate, for the client's trust (SSL_CERT_FILE).
type fakeEntra struct {
	URL      string
	certFile string
	mu       sync.Mutex
	tokens   map[string]time.Time // token -> expiry
	issued   int
	refused  []string
	unknown  []string
}

func startFakeEntra(t testing.TB) *fakeEntra {
	t.Helper()
	f := &fakeEntra{tokens: map[string]time.Time{}}
	srv := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.certFile = filepath.Join(t.TempDir(), "entra-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(f.certFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeEntra) serve(w http.ResponseWriter, r *http.Request) {
	base := "https://" + r.Host + "/" + entraTenant
	w.Header().Set("content-type", "application/json; charset=utf-8")
	switch r.URL.Path {
	case "/" + entraTenant + "/v2.0/.well-known/openid-configuration":
		fmt.Fprintf(w, `{"token_endpoint":%q,"authorization_endpoint":%q,"issuer":%q,"token_endpoint_auth_methods_supported":["client_secret_post","private_key_jwt","client_secret_basic"],"response_types_supported":["code","id_token","code id_token","id_token token"],"scopes_supported":["openid","profile","email","offline_access"],"tenant_region_scope":"EU"}`,
			base+"/oauth2/v2.0/token", base+"/oauth2/v2.0/authorize", base+"/v2.0")
	case "/" + entraTenant + "/oauth2/v2.0/token":
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if why := f.checkGrant(r); why != "" {
			f.mu.Lock()
			f.refused = append(f.refused, why)
			f.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q,"error_codes":[7000215]}`, "AADSTS7000215: "+why)
			return
		}
		tok := "entra-token-" + rand.Text()
		f.mu.Lock()
		f.tokens[tok] = time.Now().Add(entraTokenLife)
		f.issued++
		f.mu.Unlock()
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"ext_expires_in":%d,"access_token":%q}`,
			int(entraTokenLife.Seconds()), int(entraTokenLife.Seconds()), tok)
	default:
		f.mu.Lock()
		f.unknown = append(f.unknown, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		http.NotFound(w, r)
	}
}

func (f *fakeEntra) checkGrant(r *http.Request) string {
	switch {
	case r.Method != http.MethodPost:
		return "the token endpoint takes POST"
	case r.PostForm.Get("grant_type") != "client_credentials":
		return "grant_type " + r.PostForm.Get("grant_type")
	case r.PostForm.Get("client_id") != entraClientID:
		return "unknown client_id"
	case r.PostForm.Get("client_secret") != entraSecret:
		return "Invalid client secret provided."
	case !slices.Contains(strings.Fields(r.PostForm.Get("scope")), "https://cognitiveservices.azure.com/.default"):
		return "scope " + r.PostForm.Get("scope")
	}
	return ""
}

// valid reports whether tok was issued here and has not expired.
func (f *fakeEntra) valid(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.tokens[tok]
	return ok && time.Now().Before(exp)
}

func (f *fakeEntra) stats() (issued int, refused, unknown []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued, append([]string(nil), f.refused...), append([]string(nil), f.unknown...)
}

// TestAzureEntra: an Azure OpenAI provider with Entra tokens from a client
// secret, through the real Envoy: extproc fetches tokens from the fake
// Entra ID in the background and replaces each before it expires, so a
// steady stream of requests, spanning several token lives, has no failure
// while Azure refuses expired tokens; a wrong client secret reaches the
// client as a 503 naming Entra's refusal, never the secret; neither the
// secret nor a token is logged.
func TestAzureEntra(t *testing.T) {
	t.Parallel()
	entra := startFakeEntra(t)
	az := startFakeAzure(t, "dep-gpt")
	az.entra = entra
	gw := startGateway(t, fmt.Sprintf(`providers:
  - name: azure-entra
    url: %[1]s
    schema: azure-openai
    api_version: 2024-10-21
    auth:
      type: entra
      entra: {tenant_id: %[2]s, client_id: %[3]s, client_secret_env: ENTRA_E2E_SECRET, authority_host: "%[4]s/"}
  - name: azure-entra-wrong
    url: %[1]s
    schema: azure-openai
    api_version: 2024-10-21
    auth:
      type: entra
      entra: {tenant_id: %[2]s, client_id: %[3]s, client_secret_env: ENTRA_E2E_WRONG, authority_host: "%[4]s/"}
routes:
  - {model: entra-gpt, provider: azure-entra, rewrite_model: dep-gpt}
  - {model: entra-wrong, provider: azure-entra-wrong, rewrite_model: dep-gpt}
`, az.URL, entraTenant, entraClientID, entra.URL), gatewayOptions{logLevel: "debug", extraEnv: []string{
		"ENTRA_E2E_SECRET=" + entraSecret, "ENTRA_E2E_WRONG=not-the-entra-secret", "SSL_CERT_FILE=" + entra.certFile,
		// azidentity's default chain must not find another identity.
		"AZURE_CLIENT_ID=", "AZURE_TENANT_ID=", "AZURE_CLIENT_SECRET="}})

	chat := `{"model":"entra-gpt","messages":[{"role":"user","content":"hi"}]}`
	hdr := map[string]string{"content-type": "application/json"}
	// The first token arrives in the background after start.
	deadline := time.Now().Add(20 * time.Second)
	for gw.do(t, "POST", "/v1/chat/completions", hdr, chat).status != http.StatusOK {
		if time.Now().After(deadline) {
			issued, refused, unknown := entra.stats()
			t.Fatalf("no request passed with an Entra token (issued %d, refused %v, unknown requests %v)", issued, refused, unknown)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Requests for three token lives: every one passes.
	end := time.Now().Add(2 * entraTokenLife)
	n := 0
	for time.Now().Before(end) {
		if res := gw.do(t, "POST", "/v1/chat/completions", hdr, chat); res.status != http.StatusOK {
			t.Fatalf("request %d failed while tokens were refreshed: %d %s", n, res.status, res.body)
		}
		n++
		time.Sleep(20 * time.Millisecond)
	}
	tokens := map[string]bool{}
	for _, r := range az.take() {
		if tok, ok := strings.CutPrefix(r.Header.Get("authorization"), "Bearer "); ok && r.Header.Get("api-key") == "" {
			tokens[tok] = true
		}
	}
	if len(tokens) < 3 {
		t.Errorf("Azure saw %d distinct tokens in %v of requests, want the token replaced at least twice", len(tokens), 3*entraTokenLife)
	}

	res := gw.do(t, "POST", "/v1/chat/completions", hdr, strings.Replace(chat, "entra-gpt", "entra-wrong", 1))
	if res.status != http.StatusServiceUnavailable || !strings.Contains(gjson.GetBytes(res.body, "error.message").String(), "Entra") ||
		strings.Contains(string(res.body), entra.URL) {
		t.Errorf("a wrong client secret: %d %s, want 503 naming Entra, without its address", res.status, res.body)
	}
	logs := gw.extprocOut.String()
	for _, secret := range []string{entraSecret, "not-the-entra-secret", "entra-token-"} {
		if strings.Contains(logs, secret) || strings.Contains(string(res.body), secret) {
			t.Errorf("%q appears in extproc's log or an answer", secret)
		}
	}
	t.Logf("%d requests over %v, %d tokens seen by Azure", n, 3*entraTokenLife, len(tokens))
}
