package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/config"
)

// Secret values used by the tests; none may ever show up in output.
const (
	secretOpenAI    = "sk-openai-SECRET-0001"
	secretAzure     = "azure-SECRET-0002"
	secretAnthropic = "sk-ant-SECRET-0003"
	secretTeamA     = "team-a-SECRET-0004"
	secretTeamB     = "team-b-SECRET-0005"
)

var secrets = []string{secretOpenAI, secretAzure, secretAnthropic, secretTeamA, secretTeamB}

// fakeEnv serves the test secrets without touching the process.
var fakeEnv = config.Env{
	Getenv: func(name string) (string, bool) {
		v, ok := map[string]string{
			"OPENAI_API_KEY":        secretOpenAI,
			"AZURE_KEY":             "  " + secretAzure + "\n",
			"SWITCHYARD_KEY_TEAM_A": secretTeamA,
			"EMPTY_VAR":             " \n",
		}[name]
		return v, ok
	},
	ReadFile: func(name string) ([]byte, error) {
		v, ok := map[string]string{
			"/run/secrets/anthropic": secretAnthropic + "\n",
			"/run/secrets/team-b":    secretTeamB + "\r\n",
			"/run/secrets/empty":     "\n",
			"/run/secrets/two-lines": "line-one\nline-two\n",
		}[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(v), nil
	},
}

const routerYAML = `
providers:
  - name: openai
    url: https://api.openai.com
    schema: openai
    auth: {type: bearer, key_env: OPENAI_API_KEY}
  - name: anthropic
    url: https://api.anthropic.com/
    schema: anthropic
    auth: {type: header, header: x-api-key, key_file: /run/secrets/anthropic}
  - name: azure
    url: https://example.openai.azure.com:8443
    cluster: azure_eu
    schema: openai
    path_prefix: /openai/deployments/x
    auth: {type: header, header: Api-Key, key_env: AZURE_KEY}
  - name: local
    url: http://127.0.0.1:11434
    schema: openai
  - name: nokey
    url: https://nokey.example
    schema: openai
    auth: {type: bearer, key_env: NOKEY_UNSET}
  - name: nofile
    url: https://nofile.example
    schema: anthropic
    auth: {type: bearer, key_file: /run/secrets/missing}
routes:
  - model: gpt-4o
    provider: openai
  - model: fast
    provider: local
    rewrite_model: llama3.2
  - model: gpt-4o
    name: gpt-4o-azure
    provider: azure
  - model: claude-sonnet
    provider: anthropic
  - model: mixed
    targets:
      - {provider: openai, model: gpt-4o-mini, weight: 3}
      - {provider: azure, weight: 1}
      - {provider: anthropic, model: claude-haiku}
  - model: gpt-4*
    provider: openai
  - model: claude-*
    provider: anthropic
  - model: "*-broken"
    provider: nokey
  - model: file-?
    provider: nofile
  - model: openai/special
    provider: local
client_keys:
  - name: team-a
    key_env: SWITCHYARD_KEY_TEAM_A
    models: ["gpt-4*", fast]
  - name: team-b
    key_file: /run/secrets/team-b
`

func mustRouter(t testing.TB, yml string) *Router {
	t.Helper()
	cfg, err := config.Decode([]byte(yml))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	r, err := Compile(cfg, fakeEnv)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

func mustPrincipal(t testing.TB, r *Router, key string) Principal {
	t.Helper()
	p, err := r.Authenticate(key)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// pickFixed returns a Pick that always answers n and records the total.
func pickFixed(n int, total *int) func(int) int {
	return func(t int) int {
		if total != nil {
			*total = t
		}
		return n
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, routerYAML)
	teamA := mustPrincipal(t, r, secretTeamA)
	teamB := mustPrincipal(t, r, secretTeamB)

	openaiCred := &Header{Name: "authorization", Value: "Bearer " + secretOpenAI}
	azureCred := &Header{Name: "api-key", Value: secretAzure}
	anthropicCred := &Header{Name: "x-api-key", Value: secretAnthropic}
	mustNotPick := func(int) int { panic("Pick called with a single candidate") }

	tests := []struct {
		name    string
		req     Request
		want    Decision
		wantErr *Error
	}{
		{
			name: "exact model",
			req:  Request{API: config.APIOpenAI, Model: "gpt-4o"},
			want: Decision{Provider: "openai", Cluster: "openai", Model: "gpt-4o", Credential: openaiCred, Route: "gpt-4o"},
		},
		{
			name: "exact model with rewrite and no credential",
			req:  Request{API: config.APIOpenAI, Model: "fast"},
			want: Decision{Provider: "local", Cluster: "local", Model: "llama3.2", RewriteModel: true, Route: "fast"},
		},
		{
			name: "glob route",
			req:  Request{API: config.APIOpenAI, Model: "gpt-4-turbo"},
			want: Decision{Provider: "openai", Cluster: "openai", Model: "gpt-4-turbo", Credential: openaiCred, Route: "gpt-4*"},
		},
		{
			name: "glob route anthropic header credential",
			req:  Request{API: config.APIAnthropic, Model: "claude-3-opus"},
			want: Decision{Provider: "anthropic", Cluster: "anthropic", Model: "claude-3-opus", Credential: anthropicCred, Route: "claude-*"},
		},
		{
			name: "question mark glob matches one character",
			req:  Request{API: config.APIOpenAI, Model: "gpt-4"},
			want: Decision{Provider: "openai", Cluster: "openai", Model: "gpt-4", Credential: openaiCred, Route: "gpt-4*"},
		},
		{
			name: "provider slash model",
			req:  Request{API: config.APIAnthropic, Model: "anthropic/claude-x"},
			want: Decision{Provider: "anthropic", Cluster: "anthropic", Model: "claude-x", RewriteModel: true, Credential: anthropicCred},
		},
		{
			name: "provider slash model keeps later slashes",
			req:  Request{API: config.APIOpenAI, Model: "azure/org/model"},
			want: Decision{Provider: "azure", Cluster: "azure_eu", Model: "org/model", RewriteModel: true, PathPrefix: "/openai/deployments/x", Credential: azureCred},
		},
		{
			name: "exact route beats provider slash model",
			req:  Request{API: config.APIOpenAI, Model: "openai/special"},
			want: Decision{Provider: "local", Cluster: "local", Model: "openai/special", Route: "openai/special"},
		},
		{
			name:    "unknown provider prefix is not found",
			req:     Request{API: config.APIOpenAI, Model: "meta/llama"},
			wantErr: Errorf(KindNotFound, `model "meta/llama" is not served by this gateway`),
		},
		{
			name:    "provider prefix without model is not found",
			req:     Request{API: config.APIOpenAI, Model: "openai/"},
			wantErr: Errorf(KindNotFound, `model "openai/" is not served by this gateway`),
		},
		{
			name:    "no route matches",
			req:     Request{API: config.APIOpenAI, Model: "mistral-large"},
			wantErr: Errorf(KindNotFound, `model "mistral-large" is not served by this gateway`),
		},
		{
			name:    "empty model",
			req:     Request{API: config.APIOpenAI},
			wantErr: Errorf(KindInvalidRequest, "the request names no model"),
		},
		{
			name:    "unsupported api",
			req:     Request{API: "gemini", Model: "gpt-4o"},
			wantErr: Errorf(KindInvalidRequest, `unsupported API "gemini"`),
		},
		{
			name: "weighted pick first target",
			req:  Request{API: config.APIOpenAI, Model: "mixed", Pick: pickFixed(0, nil)},
			want: Decision{Provider: "openai", Cluster: "openai", Model: "gpt-4o-mini", RewriteModel: true, Credential: openaiCred, Route: "mixed"},
		},
		{
			name: "weighted pick last unit of first target",
			req:  Request{API: config.APIOpenAI, Model: "mixed", Pick: pickFixed(2, nil)},
			want: Decision{Provider: "openai", Cluster: "openai", Model: "gpt-4o-mini", RewriteModel: true, Credential: openaiCred, Route: "mixed"},
		},
		{
			name: "weighted pick second target keeps model",
			req:  Request{API: config.APIOpenAI, Model: "mixed", Pick: pickFixed(3, nil)},
			want: Decision{Provider: "azure", Cluster: "azure_eu", Model: "mixed", PathPrefix: "/openai/deployments/x", Credential: azureCred, Route: "mixed"},
		},
		{
			name: "weighted route filtered by schema",
			req:  Request{API: config.APIAnthropic, Model: "mixed", Pick: mustNotPick},
			want: Decision{Provider: "anthropic", Cluster: "anthropic", Model: "claude-haiku", RewriteModel: true, Credential: anthropicCred, Route: "mixed"},
		},
		{
			name:    "weighted pick out of range",
			req:     Request{API: config.APIOpenAI, Model: "mixed", Pick: pickFixed(4, nil)},
			wantErr: Errorf(KindAPI, "weighted pick returned 4, outside [0, 4)"),
		},
		{
			name: "allow-list glob permits",
			req:  Request{API: config.APIOpenAI, Model: "gpt-4o", Principal: teamA},
			want: Decision{Provider: "openai", Cluster: "openai", Model: "gpt-4o", Credential: openaiCred, Route: "gpt-4o"},
		},
		{
			name: "allow-list exact permits",
			req:  Request{API: config.APIOpenAI, Model: "fast", Principal: teamA},
			want: Decision{Provider: "local", Cluster: "local", Model: "llama3.2", RewriteModel: true, Route: "fast"},
		},
		{
			name:    "allow-list denies",
			req:     Request{API: config.APIAnthropic, Model: "claude-sonnet", Principal: teamA},
			wantErr: Errorf(KindPermission, `model "claude-sonnet" is not allowed for key "team-a"`),
		},
		{
			name:    "allow-list applies to hook-forced provider",
			req:     Request{API: config.APIAnthropic, Model: "claude-sonnet", Provider: "anthropic", Principal: teamA},
			wantErr: Errorf(KindPermission, `model "claude-sonnet" is not allowed for key "team-a"`),
		},
		{
			name: "key without allow-list may use any model",
			req:  Request{API: config.APIAnthropic, Model: "claude-sonnet", Principal: teamB},
			want: Decision{Provider: "anthropic", Cluster: "anthropic", Model: "claude-sonnet", Credential: anthropicCred, Route: "claude-sonnet"},
		},
		{
			name:    "schema mismatch on single target",
			req:     Request{API: config.APIOpenAI, Model: "claude-sonnet"},
			wantErr: Errorf(KindInvalidRequest, `model "claude-sonnet" is served with the anthropic API, not the openai API; call the anthropic endpoint`),
		},
		{
			name:    "schema mismatch on provider slash model",
			req:     Request{API: config.APIOpenAI, Model: "anthropic/claude-x"},
			wantErr: Errorf(KindInvalidRequest, `provider "anthropic" serves the anthropic API, not the openai API; call the anthropic endpoint for model "anthropic/claude-x"`),
		},
		{
			name:    "missing credentials from environment",
			req:     Request{API: config.APIOpenAI, Model: "x-broken"},
			wantErr: Errorf(KindUnavailable, `provider "nokey" has no credentials: environment variable NOKEY_UNSET is not set`),
		},
		{
			name:    "missing credentials from file",
			req:     Request{API: config.APIAnthropic, Model: "file-1"},
			wantErr: Errorf(KindUnavailable, `provider "nofile" has no credentials: key file /run/secrets/missing could not be read`),
		},
		{
			name: "hook-forced provider sends model unchanged",
			req:  Request{API: config.APIAnthropic, Model: "gpt-4o", Provider: "anthropic"},
			want: Decision{Provider: "anthropic", Cluster: "anthropic", Model: "gpt-4o", Credential: anthropicCred},
		},
		{
			name:    "hook-forced unknown provider",
			req:     Request{API: config.APIOpenAI, Model: "gpt-4o", Provider: "nope"},
			wantErr: Errorf(KindInvalidRequest, `unknown provider "nope"`),
		},
		{
			name: "hook-forced route by name",
			req:  Request{API: config.APIOpenAI, Model: "gpt-4o", Route: "gpt-4o-azure"},
			want: Decision{Provider: "azure", Cluster: "azure_eu", Model: "gpt-4o", PathPrefix: "/openai/deployments/x", Credential: azureCred, Route: "gpt-4o-azure"},
		},
		{
			name: "hook-forced route rewrites",
			req:  Request{API: config.APIOpenAI, Model: "anything", Route: "fast"},
			want: Decision{Provider: "local", Cluster: "local", Model: "llama3.2", RewriteModel: true, Route: "fast"},
		},
		{
			name: "hook-forced route beats forced provider",
			req:  Request{API: config.APIOpenAI, Model: "gpt-4o", Route: "fast", Provider: "openai"},
			want: Decision{Provider: "local", Cluster: "local", Model: "llama3.2", RewriteModel: true, Route: "fast"},
		},
		{
			name:    "hook-forced unknown route",
			req:     Request{API: config.APIOpenAI, Model: "gpt-4o", Route: "nope"},
			wantErr: Errorf(KindInvalidRequest, `unknown route "nope"`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := r.Decide(context.Background(), &tt.req)
			if tt.wantErr != nil {
				var gotErr *Error
				if !errors.As(err, &gotErr) {
					t.Fatalf("Decide error = %v, want *Error %v", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
					t.Errorf("Decide error (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(Decision{}, got); diff != "" {
					t.Errorf("Decide decision on error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			// Without translation the upstream speaks the client's API.
			tt.want.API = tt.req.API
			// The client key headers to strip are all but the credential's.
			for _, h := range ClientKeyHeaders {
				if tt.want.Credential == nil || tt.want.Credential.Name != h {
					tt.want.Strip = append(tt.want.Strip, h)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideWeightedTotalAndSpread(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, routerYAML)
	var total int
	counts := map[string]int{}
	for n := range 4 {
		d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "mixed", Pick: pickFixed(n, &total)})
		if err != nil {
			t.Fatal(err)
		}
		counts[d.Provider]++
	}
	if total != 4 {
		t.Errorf("Pick total = %d, want 4 (openai 3 + azure 1; anthropic filtered out)", total)
	}
	if diff := cmp.Diff(map[string]int{"openai": 3, "azure": 1}, counts); diff != "" {
		t.Errorf("picks per provider (-want +got):\n%s", diff)
	}

	// Without Pick, math/rand/v2 must reach both targets and stay in range.
	seen := map[string]bool{}
	for range 200 {
		d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "mixed"})
		if err != nil {
			t.Fatal(err)
		}
		seen[d.Provider] = true
	}
	if !seen["openai"] || !seen["azure"] {
		t.Errorf("random picks reached %v, want openai and azure", seen)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	withKeys := mustRouter(t, routerYAML)
	noKeys := mustRouter(t, "providers: [{name: p, url: 'http://p', schema: openai}]")
	oneByte := []byte(secretTeamA)
	oneByte[len(oneByte)-1] ^= 1

	tests := []struct {
		name      string
		r         *Router
		presented string
		want      Principal
		wantErr   *Error
	}{
		{name: "none configured", r: noKeys, presented: "", want: Principal{}},
		{name: "none configured ignores any key", r: noKeys, presented: "whatever", want: Principal{}},
		{name: "missing", r: withKeys, presented: "", wantErr: Errorf(KindAuthentication, "missing API key: send it as a bearer token or in the x-api-key header")},
		{name: "wrong", r: withKeys, presented: "nope", wantErr: Errorf(KindAuthentication, "invalid API key")},
		{name: "differs by one byte", r: withKeys, presented: string(oneByte), wantErr: Errorf(KindAuthentication, "invalid API key")},
		{name: "prefix of a key", r: withKeys, presented: secretTeamA[:len(secretTeamA)-1], wantErr: Errorf(KindAuthentication, "invalid API key")},
		{name: "untrimmed key", r: withKeys, presented: secretTeamA + " ", wantErr: Errorf(KindAuthentication, "invalid API key")},
		{name: "right first key", r: withKeys, presented: secretTeamA, want: Principal{Name: "team-a", models: []pattern{newPattern("gpt-4*"), newPattern("fast")}}},
		{name: "right second key from file", r: withKeys, presented: secretTeamB, want: Principal{Name: "team-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.r.Authenticate(tt.presented)
			var gotErr *Error
			if err != nil && !errors.As(err, &gotErr) {
				t.Fatalf("Authenticate error %v is not *Error", err)
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("Authenticate error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Principal{}, pattern{})); diff != "" {
				t.Errorf("Authenticate principal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"gpt-4o", "gpt-4o", true},
		{"gpt-4o", "gpt-4o-mini", false},
		{"gpt-4*", "gpt-4", true},
		{"gpt-4*", "gpt-4o-mini", true},
		{"gpt-4*", "gpt-3.5", false},
		{"*", "", true},
		{"*", "anything", true},
		{"?", "", false},
		{"?", "é", true},
		{"??", "é", false},
		{"*??", "é", false},
		{"*??", "éé", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"*-mini", "gpt-4o-mini", true},
		{"*-mini", "gpt-4o-mini-2", false},
		{"claude-?-*", "claude-3-opus", true},
		{"claude-?-*", "claude-35-opus", false},
		{"a*a*a*a*b", strings.Repeat("a", 40), false},
		{"[ab]", "a", false},
		{"[ab]", "[ab]", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"/"+tt.name, func(t *testing.T) {
			t.Parallel()
			if got := newPattern(tt.pattern).match(tt.name); got != tt.want {
				t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
			}
		})
	}
}

func TestRouterAccessors(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, routerYAML)
	wantModels := []Model{
		{ID: "claude-sonnet", OwnedBy: "anthropic"},
		{ID: "fast", OwnedBy: "local"},
		{ID: "gpt-4o", OwnedBy: "openai"},
		{ID: "mixed", OwnedBy: "openai"},
		{ID: "openai/special", OwnedBy: "local"},
	}
	if diff := cmp.Diff(wantModels, r.Models()); diff != "" {
		t.Errorf("Models (-want +got):\n%s", diff)
	}
	wantProviders := []Provider{
		{Name: "openai", Cluster: "openai", ConfigCluster: "openai", Schema: config.APIOpenAI, Scheme: "https", Host: "api.openai.com", Port: 443, TLS: true},
		{Name: "anthropic", Cluster: "anthropic", ConfigCluster: "anthropic", Schema: config.APIAnthropic, Scheme: "https", Host: "api.anthropic.com", Port: 443, TLS: true},
		{Name: "azure", Cluster: "azure_eu", ConfigCluster: "azure_eu", Schema: config.APIOpenAI, Scheme: "https", Host: "example.openai.azure.com", Port: 8443, TLS: true, PathPrefix: "/openai/deployments/x"},
		{Name: "local", Cluster: "local", ConfigCluster: "local", Schema: config.APIOpenAI, Scheme: "http", Host: "127.0.0.1", Port: 11434},
		{Name: "nokey", Cluster: "nokey", ConfigCluster: "nokey", Schema: config.APIOpenAI, Scheme: "https", Host: "nokey.example", Port: 443, TLS: true},
		{Name: "nofile", Cluster: "nofile", ConfigCluster: "nofile", Schema: config.APIAnthropic, Scheme: "https", Host: "nofile.example", Port: 443, TLS: true},
	}
	if diff := cmp.Diff(wantProviders, r.Providers()); diff != "" {
		t.Errorf("Providers (-want +got):\n%s", diff)
	}
	wantProblems := []string{
		`provider "nokey" has no credentials: environment variable NOKEY_UNSET is not set`,
		`provider "nofile" has no credentials: key file /run/secrets/missing could not be read`,
	}
	if diff := cmp.Diff(wantProblems, r.CredentialProblems()); diff != "" {
		t.Errorf("CredentialProblems (-want +got):\n%s", diff)
	}
	if got := r.MaxBodyBytes(); got != config.DefaultMaxBodyBytes {
		t.Errorf("MaxBodyBytes = %d, want %d", got, config.DefaultMaxBodyBytes)
	}
	if !r.ClientKeysEnabled() {
		t.Error("ClientKeysEnabled = false, want true")
	}
	if diff := cmp.Diff(config.HooksConfig{Timeout: config.DefaultHookTimeout}, r.Hooks()); diff != "" {
		t.Errorf("Hooks (-want +got):\n%s", diff)
	}
	for name, want := range map[string]bool{"openai": true, "azure": true, "azure_eu": false, "": false} {
		if got := r.HasProvider(name); got != want {
			t.Errorf("HasProvider(%q) = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]bool{"gpt-4o": true, "gpt-4o-azure": true, "gpt-4*": true, "gpt-4-turbo": false} {
		if got := r.HasRoute(name); got != want {
			t.Errorf("HasRoute(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestHooksReturnsCopy(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, `
providers: [{name: p, url: 'http://p', schema: openai}]
hooks: {dir: ./hooks, files: [a.lua, b.lua], timeout: 20ms, failure_policy: fail_open}
`)
	h := r.Hooks()
	want := config.HooksConfig{Dir: "./hooks", Files: []string{"a.lua", "b.lua"}, Timeout: 20 * time.Millisecond, FailOpen: true}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Hooks (-want +got):\n%s", diff)
	}
	h.Files[0] = "changed.lua"
	if diff := cmp.Diff(want, r.Hooks()); diff != "" {
		t.Errorf("Hooks after caller changed its copy (-want +got):\n%s", diff)
	}
}

// TestNoSecretsInOutput formats everything that might reach a log or a
// client and checks that no key value appears.
func TestNoSecretsInOutput(t *testing.T) {
	t.Parallel()
	cfg, err := config.Decode([]byte(routerYAML))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(cfg, fakeEnv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "gpt-4o"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Credential == nil || d.Credential.Value != "Bearer "+secretOpenAI {
		t.Fatalf("Credential = %#v, want the bearer credential (the test would prove nothing)", d.Credential)
	}
	p := mustPrincipal(t, r, secretTeamA)

	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for _, v := range []any{r, *r, cfg, *cfg, d, *d.Credential, d.Credential, p} {
			out = append(out, fmt.Sprintf(verb, v))
		}
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "router", r, "decision", d, "credential", d.Credential, "config", cfg, "principal", p)
	log.Info("x", slog.Any("decision_struct", struct{ D Decision }{d}))
	out = append(out, buf.String())

	// Every error path that mentions a key source.
	for _, req := range []Request{
		{API: config.APIOpenAI, Model: "x-broken"},
		{API: config.APIAnthropic, Model: "file-1"},
		{API: config.APIAnthropic, Model: "claude-sonnet", Principal: p},
	} {
		if _, err := r.Decide(context.Background(), &req); err != nil {
			out = append(out, err.Error())
		} else {
			t.Errorf("Decide(%s) succeeded, want an error", req.Model)
		}
	}
	for _, k := range []string{secretTeamA + "x", "", secretOpenAI} {
		if _, err := r.Authenticate(k); err != nil {
			out = append(out, err.Error())
		}
	}
	dupEnv := fakeEnv
	dupEnv.Getenv = func(string) (string, bool) { return secretTeamA, true }
	dupEnv.ReadFile = func(string) ([]byte, error) { return []byte(secretTeamA), nil }
	if _, err := Compile(cfg, dupEnv); err != nil {
		out = append(out, err.Error())
	} else {
		t.Error("Compile with equal client keys succeeded, want an error")
	}

	for _, s := range out {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("output contains secret %q:\n%s", secret, s)
			}
		}
	}
}

func TestCompileWithoutDocumentHasNoLines(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		Providers: []config.ProviderConfig{{Name: "p", URL: "http://p", Schema: config.APIOpenAI}},
		Routes:    []config.RouteConfig{{Model: "m", Provider: "missing"}},
	}
	_, err := Compile(cfg, fakeEnv)
	want := `routes[0].provider: unknown provider "missing"`
	if err == nil || err.Error() != want {
		t.Errorf("Compile error = %v, want %s", err, want)
	}
	if _, err := Compile(nil, fakeEnv); err == nil {
		t.Error("Compile(nil) succeeded, want an error")
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "client.key")
	if err := os.WriteFile(keyFile, []byte("client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(`
providers: [{name: local, url: 'http://127.0.0.1:8080', schema: openai}]
routes: [{model: m, provider: local}]
client_keys: [{name: ci, key_file: `+keyFile+`}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if p, err := r.Authenticate("client-secret"); err != nil || p.Name != "ci" {
		t.Errorf("Authenticate = %v, %v; want principal ci", p, err)
	}

	noKey := filepath.Join(dir, "nokey.yaml")
	if err := os.WriteFile(noKey, []byte(`
providers: [{name: local, url: 'http://127.0.0.1:8080', schema: openai}]
client_keys: [{name: ci, key_file: `+filepath.Join(dir, "absent")+`}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(noKey)
	if err == nil || !strings.HasPrefix(err.Error(), "compiling config "+noKey+": line 3: client_keys[0].key_file: ") {
		t.Errorf("Load(nokey) error = %v, want a compile error naming the path", err)
	}
}

func TestDecideAllocs(t *testing.T) {
	r := mustRouter(t, routerYAML)
	ctx := context.Background()
	pick := func(int) int { return 3 }
	for _, req := range []Request{
		{API: config.APIOpenAI, Model: "gpt-4o"},
		{API: config.APIOpenAI, Model: "gpt-4-turbo"},
		{API: config.APIAnthropic, Model: "anthropic/claude-x"},
		{API: config.APIOpenAI, Model: "mixed", Pick: pick},
		{API: config.APIOpenAI, Model: "mixed"},
		{API: config.APIOpenAI, Model: "mixed", Session: "0194e0b2-7a53-7c1d-9d61-4b1f0c2d9e77"},
	} {
		var err error
		allocs := testing.AllocsPerRun(100, func() {
			_, err = r.Decide(ctx, &req)
		})
		if err != nil {
			t.Fatalf("Decide(%s): %v", req.Model, err)
		}
		if allocs != 0 {
			t.Errorf("Decide(%s) allocates %v times per call, want 0", req.Model, allocs)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	r := mustRouter(b, routerYAML)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{"exact", Request{API: config.APIOpenAI, Model: "gpt-4o"}},
		{"provider_slash_model", Request{API: config.APIAnthropic, Model: "anthropic/claude-x"}},
		{"glob", Request{API: config.APIAnthropic, Model: "claude-3-opus"}},
		{"weighted", Request{API: config.APIOpenAI, Model: "mixed"}},
		{"not_found", Request{API: config.APIOpenAI, Model: "mistral-large"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = r.Decide(ctx, &bc.req)
			}
		})
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	r := mustRouter(b, routerYAML)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = r.Authenticate(secretTeamB)
	}
}
