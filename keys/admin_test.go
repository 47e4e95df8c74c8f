package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"switchyard/config"
	"switchyard/routing"
)

const adminKey = "admin-secret-for-tests"

type fixture struct {
	t     *testing.T
	path  string
	store *Store
	h     http.Handler
	log   *bytes.Buffer
	r     *routing.Router
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "keys.json"), log: &bytes.Buffer{}}
	f.open()
	cfg, err := config.Decode([]byte(`
providers:
  - {name: p, url: "http://p.example", schema: openai}
client_keys:
  - {name: from-config, key_env: CONFIG_KEY}
`))
	if err != nil {
		t.Fatal(err)
	}
	f.r, err = routing.Compile(cfg, config.Env{Getenv: func(string) (string, bool) { return "config-key-value", true }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) open() {
	s, err := Open(context.Background(), NewFile(f.path), Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		f.t.Fatal(err)
	}
	f.store = s
	f.h = s.Handler(AdminOptions{Credential: adminKey, Logger: slog.New(slog.NewJSONHandler(f.log, nil)),
		Reserved: func(name string) bool { return name == "from-config" }})
}

// do sends an admin request and decodes the JSON answer.
func (f *fixture) do(method, path, body, cred string) (int, map[string]any) {
	f.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	req.Header.Set(ActorHeader, "alice")
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		f.t.Fatalf("%s %s: answer is not JSON: %q", method, path, w.Body.String())
	}
	return w.Code, out
}

func (f *fixture) auth(secret string) (routing.Principal, error) {
	return f.r.AuthenticateWith(f.store.Keys(), secret)
}

func TestAdminKeyLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, _ := f.do("POST", "/admin/v1/teams", `{"name":"ml","limits":{"requests_per_minute":5,"usd_per_month":250}}`, adminKey); code != 201 {
		t.Fatalf("create team: %d", code)
	}
	code, out := f.do("POST", "/admin/v1/keys", `{"name":"ci-1","team":"ml","models":["gpt-*"],"limits":{"tokens_per_day":1000}}`, adminKey)
	if code != 201 {
		t.Fatalf("create key: %d %v", code, out)
	}
	secret, _ := out["secret"].(string)
	if !strings.HasPrefix(secret, SecretPrefix) {
		t.Fatalf("secret = %q", secret)
	}
	p, err := f.auth(secret)
	if err != nil || p.Name != "ci-1" || p.Team != "ml" || p.TeamBudget != "team:ml" || p.TeamLimits.RequestsPerMinute != 5 || p.TeamLimits.USDPerMonth != 250 || p.Limits.TokensPerDay != 1000 {
		t.Fatalf("new key authenticates as %+v, %v", p, err)
	}
	if p.Allows("claude-x") || !p.Allows("gpt-4o") {
		t.Error("the key's models are not applied")
	}

	// An MCP tool allow-list applies to the next lookup.
	if code, out := f.do("PATCH", "/admin/v1/keys/ci-1", `{"mcp_tools":["github/search_*"]}`, adminKey); code != 200 {
		t.Fatalf("set mcp_tools: %d %v", code, out)
	}
	if p, _ = f.auth(secret); !p.AllowsMCPTool("github", "search_code") || p.AllowsMCPTool("github", "delete_repo") || p.AllowsMCPServer("db") {
		t.Error("the key's mcp_tools are not applied")
	}
	if _, err := f.auth("config-key-value"); err != nil {
		t.Errorf("the config's key stops working beside the store: %v", err)
	}

	// Updated limits apply to the next lookup.
	if code, out := f.do("PATCH", "/admin/v1/keys/ci-1", `{"limits":{"requests_per_minute":1}}`, adminKey); code != 200 {
		t.Fatalf("update: %d %v", code, out)
	}
	if p, _ := f.auth(secret); p.Limits.RequestsPerMinute != 1 {
		t.Errorf("after update limits = %+v", p.Limits)
	}

	// Disable, enable.
	f.do("POST", "/admin/v1/keys/ci-1/disable", "", adminKey)
	if _, err := f.auth(secret); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("disabled key: %v", err)
	}
	f.do("POST", "/admin/v1/keys/ci-1/enable", "", adminKey)
	if _, err := f.auth(secret); err != nil {
		t.Errorf("enabled key: %v", err)
	}

	// Rotate: the old secret stops, the new one works.
	code, out = f.do("POST", "/admin/v1/keys/ci-1/rotate", "", adminKey)
	rotated, _ := out["secret"].(string)
	if code != 200 || rotated == "" || rotated == secret {
		t.Fatalf("rotate: %d %v", code, out)
	}
	if _, err := f.auth(secret); err == nil {
		t.Error("the old secret still works after rotate")
	}
	if _, err := f.auth(rotated); err != nil {
		t.Errorf("rotated secret: %v", err)
	}

	// A restart (a new store over the same file) keeps the key.
	f.open()
	if p, err := f.auth(rotated); err != nil || p.Name != "ci-1" {
		t.Errorf("after reopening: %+v, %v", p, err)
	}

	// The list shows no digest and no secret.
	_, list := f.do("GET", "/admin/v1/keys", "", adminKey)
	b, _ := json.Marshal(list)
	if !strings.Contains(string(b), `"ci-1"`) || strings.Contains(string(b), "digest") || strings.Contains(string(b), rotated) {
		t.Errorf("list = %s", b)
	}

	// A loop guard replaces the config's; an expiry in the past refuses the key.
	if code, out := f.do("PATCH", "/admin/v1/keys/ci-1", `{"loop_guard":{"max_repeats":4,"window":"30s"}}`, adminKey); code != 200 {
		t.Fatalf("loop guard: %d %v", code, out)
	}
	if p, _ := f.auth(rotated); p.LoopGuard() == nil || p.LoopGuard().MaxRepeats != 4 || p.LoopGuard().Window != 30*time.Second {
		t.Errorf("loop guard = %+v", p.LoopGuard())
	}
	f.do("PATCH", "/admin/v1/keys/ci-1", `{"expires_at":"2001-01-01T00:00:00Z"}`, adminKey)
	if _, err := f.auth(rotated); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired key: %v", err)
	}

	// Revoke.
	if code, _ := f.do("DELETE", "/admin/v1/keys/ci-1", "", adminKey); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if _, err := f.auth(rotated); err == nil {
		t.Error("a revoked key still works")
	}

	// The audit log names who and what, never a secret.
	logs := f.log.String()
	for _, want := range []string{`"actor":"alice"`, `"action":"create_key"`, `"action":"rotate_key"`, `"action":"revoke_key"`, `"target":"ci-1"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, rotated) || strings.Contains(logs, adminKey) {
		t.Error("a secret reached the audit log")
	}
	if n := testutil.ToFloat64(f.store.m.changes.WithLabelValues("revoke_key", "ok")); n != 1 {
		t.Errorf("revoke_key changes = %v, want 1", n)
	}
}

func TestAdminBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.do("POST", "/admin/v1/keys", `{"name":"taken"}`, adminKey)
	before := mustState(t, f.store)
	huge := strings.Repeat("a", 1_000_000)
	for _, tc := range []struct {
		name, method, path, body, cred string
		status                         int
		code                           string
	}{
		{"no credential", "POST", "/admin/v1/keys", `{"name":"x"}`, "", 401, "invalid_admin_credential"},
		{"wrong credential", "POST", "/admin/v1/keys", `{"name":"x"}`, "wrong", 401, "invalid_admin_credential"},
		{"wrong credential on list", "GET", "/admin/v1/keys", "", "wrong", 401, "invalid_admin_credential"},
		{"malformed JSON", "POST", "/admin/v1/keys", `{"name":`, adminKey, 400, "invalid_request"},
		{"unknown field", "POST", "/admin/v1/keys", `{"name":"x","admin":true}`, adminKey, 400, "invalid_request"},
		{"two values", "POST", "/admin/v1/keys", `{"name":"x"}{}`, adminKey, 400, "invalid_request"},
		{"duplicate name", "POST", "/admin/v1/keys", `{"name":"taken"}`, adminKey, 409, "duplicate_name"},
		{"config key name", "POST", "/admin/v1/keys", `{"name":"from-config"}`, adminKey, 409, "duplicate_name"},
		{"million-character name", "POST", "/admin/v1/keys", `{"name":"` + huge + `"}`, adminKey, 400, "invalid_request"},
		{"name with a colon", "POST", "/admin/v1/keys", `{"name":"team:x"}`, adminKey, 400, "invalid_request"},
		{"body over the limit", "POST", "/admin/v1/keys", `{"name":"` + huge + huge + `"}`, adminKey, 413, "body_too_large"},
		{"unknown team", "POST", "/admin/v1/keys", `{"name":"y","team":"nope"}`, adminKey, 404, "not_found"},
		{"negative limit", "POST", "/admin/v1/keys", `{"name":"y","limits":{"requests_per_minute":-1}}`, adminKey, 400, "invalid_request"},
		{"negative money", "POST", "/admin/v1/keys", `{"name":"y","limits":{"usd_per_day":-0.5}}`, adminKey, 400, "invalid_request"},
		{"too much money", "POST", "/admin/v1/teams", `{"name":"y","limits":{"usd_per_month":1e12}}`, adminKey, 400, "invalid_request"},
		{"mcp tool without a server", "POST", "/admin/v1/keys", `{"name":"y","mcp_tools":["search_*"]}`, adminKey, 400, "invalid_request"},
		{"bad loop guard", "POST", "/admin/v1/keys", `{"name":"y","loop_guard":{"max_repeats":0}}`, adminKey, 400, "invalid_request"},
		{"update unknown key", "PATCH", "/admin/v1/keys/nope", `{}`, adminKey, 404, "not_found"},
		{"revoke million-character name", "DELETE", "/admin/v1/keys/" + huge, "", adminKey, 400, "invalid_request"},
		{"unknown endpoint", "GET", "/admin/v1/nothing", "", adminKey, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := f.do(tc.method, tc.path, tc.body, tc.cred)
			e, _ := out["error"].(map[string]any)
			if code != tc.status || e["code"] != tc.code || e["message"] == "" {
				t.Errorf("%d %v, want %d %s", code, out, tc.status, tc.code)
			}
			if msg, _ := e["message"].(string); len(msg) > 1000 {
				t.Errorf("the error message is %d bytes long", len(msg))
			}
		})
	}
	after := mustState(t, f.store)
	if len(after.Keys) != len(before.Keys) || len(after.Teams) != len(before.Teams) {
		t.Errorf("bad input changed the store: %d keys, %d teams; want %d, %d", len(after.Keys), len(after.Teams), len(before.Keys), len(before.Teams))
	}
}

func TestConfigKeyWinsOnNameClash(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Written behind the API's back, as an older store might hold it.
	secret, digest := newSecret()
	_, err := f.store.Update(context.Background(), func(st *State) error {
		st.Keys["from-config"] = Key{Name: "from-config", Digest: digest}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := f.auth("config-key-value"); err != nil || p.Name != "from-config" {
		t.Errorf("config key: %+v, %v", p, err)
	}
	if _, err := f.auth(secret); err == nil {
		t.Error("a store key with a config key's name was accepted")
	}
}

// FuzzAdminCreate: whatever body a create request carries, the answer is
// JSON with a 2xx or 4xx status, and a refused request changes nothing.
func FuzzAdminCreate(f *testing.F) {
	for _, seed := range []string{`{"name":"a"}`, `{"name":"a","team":"t","models":["x*"],"limits":{"requests_per_minute":1}}`,
		`{"name":`, `[]`, `{"name":"a","loop_guard":{"max_repeats":2,"window":"-1s"}}`, `{"name":"a","expires_at":"x"}`, ``} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		s, err := Open(context.Background(), NewFile(filepath.Join(t.TempDir(), "keys.json")), Options{})
		if err != nil {
			t.Fatal(err)
		}
		h := s.Handler(AdminOptions{Credential: adminKey, Logger: slog.New(slog.DiscardHandler)})
		req := httptest.NewRequest("POST", "/admin/v1/keys", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 || !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%d %q", w.Code, w.Body.String())
		}
		if w.Code >= 400 && len(mustState(t, s).Keys) != 0 {
			t.Fatalf("a refused create (%d) stored a key", w.Code)
		}
	})
}

func mustState(t testing.TB, s *Store) State {
	t.Helper()
	st, err := s.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
