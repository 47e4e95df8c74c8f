package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"switchyard/loadtest/mockllm"
)

// azureKey is the fake Azure OpenAI resource's api-key.
const azureKey = "azure-KEY-e2e-0001"

// azureAPIVersions are the api-versions the fake accepts.
var azureAPIVersions = map[string]bool{"2024-10-21": true, "2025-04-01-preview": true}

// fakeAzure is an Azure OpenAI resource: it checks what Azure checks (the
// api-key header, the path, the deployment, api-version) and refuses in
// Azure's error shape, then lets the mock answer as OpenAI would. It records
// what it received.
type fakeAzure struct {
	URL         string
	deployments map[string]bool
	// entra, when set, also admits the bearer tokens it issued.
	entra *fakeEntra
	requestLog
}

func startFakeAzure(t testing.TB, deployments ...string) *fakeAzure {
	t.Helper()
	f := &fakeAzure{deployments: map[string]bool{}}
	for _, d := range deployments {
		f.deployments[d] = true
	}
	mock := mockllm.New(mockllm.Options{Latency: -1, ChunkInterval: -1})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		f.record(r, body)
		status, code, msg, openaiPath, model := f.check(r, body)
		if status != 0 {
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
			return
		}
		body, _ = sjson.SetBytes(body, "model", model)
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawQuery, r2.RequestURI = openaiPath, "", ""
		r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		mock.ServeHTTP(w, r2)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// check refuses what Azure refuses; otherwise it returns the OpenAI path
// and the deployment (the model) the request is for.
func (f *fakeAzure) check(r *http.Request, body []byte) (status int, code, msg, openaiPath, model string) {
	bearer, isBearer := strings.CutPrefix(r.Header.Get("authorization"), "Bearer ")
	switch {
	case isBearer && f.entra != nil:
		if !f.entra.valid(bearer) {
			return http.StatusUnauthorized, "401", "Access denied due to invalid token or the token has expired.", "", ""
		}
	case r.Header.Get("api-key") != azureKey:
		return http.StatusUnauthorized, "401", "Access denied due to invalid subscription key or wrong API endpoint. " +
			"Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.", "", ""
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/openai/v1/"); ok {
		model = gjson.GetBytes(body, "model").String()
		if !f.deployments[model] {
			return http.StatusNotFound, "DeploymentNotFound", "The API deployment for this resource does not exist.", "", ""
		}
		return 0, "", "", "/v1/" + rest, model
	}
	switch v := r.URL.Query().Get("api-version"); {
	case v == "":
		return http.StatusNotFound, "404", "Resource not found", "", ""
	case !azureAPIVersions[v]:
		return http.StatusBadRequest, "BadRequest", "API version not supported", "", ""
	}
	if r.URL.Path == "/openai/responses" { // the model (deployment) in the body
		model = gjson.GetBytes(body, "model").String()
		if !f.deployments[model] {
			return http.StatusNotFound, "DeploymentNotFound", "The API deployment for this resource does not exist.", "", ""
		}
		return 0, "", "", "/v1/responses", model
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/")
	dep, op, _ := strings.Cut(rest, "/")
	if !ok || (op != "chat/completions" && op != "embeddings") {
		return http.StatusNotFound, "404", "Resource not found", "", ""
	}
	if !f.deployments[dep] {
		return http.StatusNotFound, "DeploymentNotFound", "The API deployment for this resource does not exist.", "", ""
	}
	return 0, "", "", "/v1/" + op, dep
}

// azureConfig serves the OpenAI SDK's models through the deployments paths
// and the Anthropic SDK's through the v1 paths (translated); "bad-*" go to
// providers Azure refuses: a wrong key, an unknown api-version.
func azureConfig(url string) string {
	return fmt.Sprintf(`providers:
  - name: azure
    url: %[1]s
    schema: azure-openai
    api_version: 2024-10-21
    auth: {type: header, header: api-key, key_env: AZURE_E2E_KEY}
  - name: azure-v1
    url: %[1]s
    schema: azure-openai
    api_version: v1
    auth: {type: header, header: api-key, key_env: AZURE_E2E_KEY}
  - name: azure-wrong-key
    url: %[1]s
    schema: azure-openai
    api_version: 2024-10-21
    auth: {type: header, header: api-key, key_env: AZURE_E2E_WRONG}
  - name: azure-old
    url: %[1]s
    schema: azure-openai
    api_version: 2023-01-01
    auth: {type: header, header: api-key, key_env: AZURE_E2E_KEY}
usage: {enabled: true}
routes:
  - {model: mock-gpt, provider: azure, rewrite_model: dep-gpt}
  - {model: m, provider: azure, rewrite_model: dep-gpt}
  - {model: mock-claude, provider: azure-v1, rewrite_model: dep-gpt}
  - {model: c, provider: azure-v1, rewrite_model: dep-gpt}
  - {model: bad-key, provider: azure-wrong-key, rewrite_model: dep-gpt}
  - {model: bad-version, provider: azure-old, rewrite_model: dep-gpt}
`, url)
}

// TestAzureOpenAI: the official SDKs through the real Envoy to a fake Azure
// OpenAI resource: chat completions on a deployment path with api-version,
// Messages translated onto the v1 path, text and tools, streamed and not;
// Azure's refusals reach each client in its API's shape; tokens are
// counted; the key is never logged.
func TestAzureOpenAI(t *testing.T) {
	t.Parallel()
	py := sdkPython(t)
	az := startFakeAzure(t, "dep-gpt")
	gw := startGateway(t, azureConfig(az.URL), gatewayOptions{logLevel: "debug",
		extraEnv: []string{"AZURE_E2E_KEY=" + azureKey, "AZURE_E2E_WRONG=not-the-key"}})

	runSDKTranslate(t, py, gw.url, "mock-gpt", "mock-claude", "through Azure")
	reqs := az.take()
	if len(reqs) == 0 {
		t.Fatal("the fake Azure received nothing")
	}
	for _, r := range reqs {
		switch {
		case strings.HasPrefix(r.URI, "/openai/deployments/dep-gpt/chat/completions?api-version=2024-10-21"):
		case r.URI == "/openai/v1/chat/completions" && gjson.GetBytes(r.Body, "model").String() == "dep-gpt":
		default:
			t.Errorf("Azure got %s %s (model %q)", r.Method, r.URI, gjson.GetBytes(r.Body, "model").String())
		}
		for _, h := range []string{"authorization", "x-api-key"} {
			if r.Header.Get(h) != "" {
				t.Errorf("%s: the client's %s reached Azure", r.URI, h)
			}
		}
	}

	chat := `{"model":"bad-key","messages":[{"role":"user","content":"hi"}]}`
	msgs := `{"model":"bad-key","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`
	res := gw.do(t, "POST", "/v1/chat/completions", map[string]string{"content-type": "application/json"}, chat)
	if res.status != http.StatusUnauthorized || !strings.Contains(gjson.GetBytes(res.body, "error.message").String(), "Access denied") {
		t.Errorf("chat with a wrong Azure key: %d %s, want 401 with Azure's message in OpenAI's shape", res.status, res.body)
	}
	res = gw.do(t, "POST", "/v1/messages", map[string]string{"content-type": "application/json", "anthropic-version": "2023-06-01"}, msgs)
	if res.status != http.StatusUnauthorized || gjson.GetBytes(res.body, "type").String() != "error" ||
		gjson.GetBytes(res.body, "error.type").String() != "authentication_error" {
		t.Errorf("messages with a wrong Azure key: %d %s, want 401 authentication_error in Anthropic's shape", res.status, res.body)
	}
	res = gw.do(t, "POST", "/v1/chat/completions", map[string]string{"content-type": "application/json"}, strings.Replace(chat, "bad-key", "bad-version", 1))
	if res.status != http.StatusBadRequest || !bytes.Contains(res.body, []byte("API version not supported")) {
		t.Errorf("an api-version Azure does not know: %d %s, want its 400", res.status, res.body)
	}

	waitFor(t, "Azure's tokens counted", func() bool {
		return metricSum(gw.metrics(t), `switchyard_tokens_total`, `provider="azure-v1"`) > 0 &&
			metricSum(gw.metrics(t), `switchyard_tokens_total`, `provider="azure"`) > 0
	})
	if logs := gw.extprocOut.String(); strings.Contains(logs, azureKey) || strings.Contains(logs, "not-the-key") {
		t.Error("a provider key appears in extproc's log")
	}
}

// metricSum adds up the series of a metric whose line holds every label.
func metricSum(exposition, name string, labels ...string) float64 {
	total := 0.0
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if i := strings.LastIndexByte(line, ' '); match && i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			total += v
		}
	}
	return total
}

// TestClaudeCodeOnAzure: Claude Code, with the README's settings, completes
// a prompt on an Azure OpenAI deployment: its Messages requests are
// translated to chat completions at the deployment's path with api-version
// and the api-key, and the answers back.
func TestClaudeCodeOnAzure(t *testing.T) {
	t.Parallel()
	az := startFakeAzure(t, "dep-cc")
	keyFile := filepath.Join(t.TempDir(), "azure-key")
	writeFile(t, keyFile, azureKey)
	c := startClaude(t, "az-cc", func(cfg string) string {
		cfg = strings.Replace(cfg, "\nproviders:\n", fmt.Sprintf(`
providers:
  - name: azure
    url: %s
    schema: azure-openai
    api_version: 2024-10-21
    auth: {type: header, header: api-key, key_file: %s}
`, az.URL, keyFile), 1)
		cfg = strings.Replace(cfg, "\nroutes:\n", "\nroutes:\n  - {model: az-cc, provider: azure, rewrite_model: dep-cc}\n", 1)
		return withAgentKey(cfg)
	})
	run := runAgent(t, c.bin, []string{"--settings", c.settings, "-p", "Reply with one short sentence."}, c.env)
	checkAgentOutput(t, run, mockllm.Answer, c.guard)
	reqs := az.take()
	if len(reqs) == 0 {
		t.Fatal("the fake Azure received nothing")
	}
	for i, r := range reqs {
		if r.URI != "/openai/deployments/dep-cc/chat/completions?api-version=2024-10-21" {
			t.Errorf("request %d: %s %s, want the deployment's chat completions", i, r.Method, r.URI)
		}
	}
}

// TestCodexOnAzure: Codex, with the README's config, completes a prompt
// through the Responses API of an Azure OpenAI resource: its requests reach
// /openai/responses?api-version= with the deployment as the model and the
// api-key, untranslated.
func TestCodexOnAzure(t *testing.T) {
	t.Parallel()
	az := startFakeAzure(t, "dep-codex")
	keyFile := filepath.Join(t.TempDir(), "azure-key")
	writeFile(t, keyFile, azureKey)
	c := startCodex(t, func(cfg string) string {
		cfg = strings.Replace(cfg, "\nproviders:\n", fmt.Sprintf(`
providers:
  - name: azure
    url: %s
    schema: azure-openai
    api_version: 2025-04-01-preview
    auth: {type: header, header: api-key, key_file: %s}
`, az.URL, keyFile), 1)
		cfg = strings.Replace(cfg, "\nroutes:\n", "\nroutes:\n  - {model: mock-gpt, provider: azure, rewrite_model: dep-codex}\n", 1)
		return withAgentKey(cfg)
	})
	run := runAgent(t, c.bin, []string{"exec", "--skip-git-repo-check", "Reply with one short sentence."}, c.env)
	checkAgentOutput(t, run, mockllm.Answer, c.guard)
	reqs := az.take()
	if len(reqs) == 0 {
		t.Fatal("the fake Azure received nothing")
	}
	for i, r := range reqs {
		if r.URI != "/openai/responses?api-version=2025-04-01-preview" || gjson.GetBytes(r.Body, "model").String() != "dep-codex" {
			t.Errorf("request %d: %s %s for %q, want /openai/responses for dep-codex", i, r.Method, r.URI, gjson.GetBytes(r.Body, "model").String())
		}
	}
	if leaked := c.mock.take(); len(leaked) > 0 {
		t.Errorf("%d requests reached the mock instead of Azure", len(leaked))
	}
}
