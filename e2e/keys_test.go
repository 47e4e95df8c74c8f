package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const e2eAdminKey = "e2e-admin-credential"

// keyStoreOptions runs extproc with a key store and the admin API.
func keyStoreOptions(store ...string) gatewayOptions {
	return gatewayOptions{extraEnv: []string{"SWITCHYARD_ADMIN_KEY=" + e2eAdminKey}, extprocArgs: store}
}

// admin calls extproc's admin API with cred and decodes the JSON answer.
func adminCall(t *testing.T, g *gateway, cred, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, g.metricsURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// createKey creates a key through the admin API and returns its secret.
func createKey(t *testing.T, g *gateway, body string) string {
	t.Helper()
	code, out := adminCall(t, g, e2eAdminKey, "POST", "/admin/v1/keys", body)
	secret, _ := out["secret"].(string)
	if code != 201 || secret == "" {
		t.Fatalf("creating key %s: %d %v", body, code, out)
	}
	return secret
}

func chat(t *testing.T, g *gateway, secret string) result {
	t.Helper()
	return g.do(t, "POST", "/v1/chat/completions", bearer(secret), goodBody)
}

// TestKeyStore: keys created through the admin API work on the next
// request through Envoy, a revoked one is refused with 401 on the next, a
// team's budget spent by one member refuses the other, and a restart keeps
// every key.
func TestKeyStore(t *testing.T) {
	t.Parallel()
	store := filepath.Join(t.TempDir(), "keys.json")
	s := startStandard(t, keyStoreOptions("-keys-file", store))
	gw := s.gw

	if r := chat(t, gw, clientKeyA); r.status != 200 {
		t.Fatalf("the config's key beside the store: %d %s", r.status, r.body)
	}
	solo := createKey(t, gw, `{"name":"solo"}`)
	r := chat(t, gw, solo)
	if r.status != 200 {
		t.Fatalf("a key created through the API, next request: %d %s", r.status, r.body)
	}
	// The upstream echoes what it received: the provider's key, not the client's.
	if strings.Contains(string(r.body), solo) {
		t.Errorf("the client key reached the upstream: %s", r.body)
	}

	// The team budget counts per calendar minute: start with most of one left.
	for time.Now().Second() > 40 {
		time.Sleep(200 * time.Millisecond)
	}
	if code, out := adminCall(t, gw, e2eAdminKey, "POST", "/admin/v1/teams", `{"name":"ml","limits":{"requests_per_minute":3}}`); code != 201 {
		t.Fatalf("creating team: %d %v", code, out)
	}
	dev1 := createKey(t, gw, `{"name":"dev-1","team":"ml"}`)
	dev2 := createKey(t, gw, `{"name":"dev-2","team":"ml"}`)
	var got []int
	for range 3 {
		got = append(got, chat(t, gw, dev1).status)
	}
	r = chat(t, gw, dev2)
	got = append(got, r.status)
	if fmtInts(got) != "[200 200 200 429]" {
		t.Errorf("dev-1 three times, then dev-2: %v, want the team budget to refuse dev-2", got)
	}
	if !strings.Contains(string(r.body), `team \"ml\"`) {
		t.Errorf("the 429 does not name the team: %s", r.body)
	}
	if r := chat(t, gw, solo); r.status != 200 {
		t.Errorf("a key outside the team is limited too: %d", r.status)
	}
	// The refusal's log line names the key and its team.
	if !slices.ContainsFunc(strings.Split(gw.extprocOut.String(), "\n"), func(line string) bool {
		return strings.Contains(line, `"request refused"`) && strings.Contains(line, `"key_name":"dev-2"`) && strings.Contains(line, `"team":"ml"`)
	}) {
		t.Error("no request log line names dev-2 and its team ml")
	}

	// Revoked: 401 on the next request.
	if code, _ := adminCall(t, gw, e2eAdminKey, "DELETE", "/admin/v1/keys/solo", ""); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if r := chat(t, gw, solo); r.status != 401 {
		t.Errorf("a revoked key, next request: %d %s", r.status, r.body)
	}
	// Disabled: 401 too, and enabled again.
	adminCall(t, gw, e2eAdminKey, "POST", "/admin/v1/keys/dev-2/disable", "")
	if r := chat(t, gw, dev2); r.status != 401 || !strings.Contains(string(r.body), "disabled") {
		t.Errorf("a disabled key: %d %s", r.status, r.body)
	}

	// A restart keeps every key (and the revocation).
	gw.stopExtproc()
	gw.startExtproc()
	if r := chat(t, gw, dev1); r.status != 200 {
		t.Errorf("dev-1 after a restart: %d %s", r.status, r.body)
	}
	if r := chat(t, gw, dev2); r.status != 401 {
		t.Errorf("dev-2 was disabled before the restart: %d", r.status)
	}
	if r := chat(t, gw, solo); r.status != 401 {
		t.Errorf("solo was revoked before the restart: %d", r.status)
	}
	_, list := adminCall(t, gw, e2eAdminKey, "GET", "/admin/v1/keys", "")
	if n := len(list["keys"].([]any)); n != 2 {
		t.Errorf("after a restart the store lists %d keys, want 2: %v", n, list)
	}
	if v := gw.metricOrFail(t, `switchyard_key_store_keys`); v != 2 {
		t.Errorf("switchyard_key_store_keys = %v, want 2", v)
	}
}

// TestKeyStoreBadAdminInput: a wrong credential, malformed JSON, a
// duplicate name and a million-character name get a clear JSON error from
// the real admin listener and change nothing.
func TestKeyStoreBadAdminInput(t *testing.T) {
	t.Parallel()
	s := startStandard(t, keyStoreOptions("-keys-file", filepath.Join(t.TempDir(), "keys.json")))
	gw := s.gw
	createKey(t, gw, `{"name":"taken"}`)
	huge := strings.Repeat("x", 1_000_000)
	for _, tc := range []struct {
		name, cred, method, path, body string
		status                         int
		code                           string
	}{
		{"wrong credential", "nope", "POST", "/admin/v1/keys", `{"name":"a"}`, 401, "invalid_admin_credential"},
		{"client key as credential", clientKeyA, "GET", "/admin/v1/keys", "", 401, "invalid_admin_credential"},
		{"malformed JSON", e2eAdminKey, "POST", "/admin/v1/keys", `{"name":"a",`, 400, "invalid_request"},
		{"duplicate name", e2eAdminKey, "POST", "/admin/v1/keys", `{"name":"taken"}`, 409, "duplicate_name"},
		{"config key's name", e2eAdminKey, "POST", "/admin/v1/keys", `{"name":"team-a"}`, 409, "duplicate_name"},
		{"million-character name", e2eAdminKey, "POST", "/admin/v1/keys", `{"name":"` + huge + `"}`, 400, "invalid_request"},
		{"million-character team", e2eAdminKey, "POST", "/admin/v1/teams", `{"name":"` + huge + `"}`, 400, "invalid_request"},
		{"million-character name in the path", e2eAdminKey, "DELETE", "/admin/v1/keys/" + huge, "", 400, "invalid_request"},
	} {
		code, out := adminCall(t, gw, tc.cred, tc.method, tc.path, tc.body)
		e, _ := out["error"].(map[string]any)
		msg, _ := e["message"].(string)
		if code != tc.status || e["code"] != tc.code || msg == "" || len(msg) > 500 {
			t.Errorf("%s: %d %v, want %d %s with a short message", tc.name, code, truncateAny(out), tc.status, tc.code)
		}
	}
	_, list := adminCall(t, gw, e2eAdminKey, "GET", "/admin/v1/keys", "")
	if keys := list["keys"].([]any); len(keys) != 1 {
		t.Errorf("bad input changed the store: %d keys", len(keys))
	}
	if v := gw.metricOrFail(t, `switchyard_admin_changes_total{action="create_key",result="refused"}`); v != 4 {
		t.Errorf("refused create_key changes = %v, want 4 (a wrong credential is refused before it can change anything)", v)
	}
	if strings.Contains(gw.extprocOut.String(), e2eAdminKey) {
		t.Error("the admin credential reached extproc's log")
	}
}

func truncateAny(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// TestKeyStoreReplicas: two gateways whose extprocs share the key store in
// Redis see a key created on one, and a key revoked on the other, within a
// second; while Redis is down they keep serving the keys last seen and say
// so in switchyard_key_store_up.
func TestKeyStoreReplicas(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	opts := keyStoreOptions("-keys-redis", "unix:"+redis.sock)
	opts.extraEnv = append(opts.extraEnv, testEnv...)
	gw1 := startGateway(t, standardConfig(a, b, ""), opts)
	gw2 := startGateway(t, standardConfig(a, b, ""), opts)

	within := func(g *gateway, secret string, want int) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			r := chat(t, g, secret)
			if r.status == want {
				return time.Since(start)
			}
			if time.Since(start) > time.Second {
				t.Fatalf("after %v the other replica still answers %d, want %d", time.Since(start), r.status, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	secret := createKey(t, gw1, `{"name":"shared"}`)
	seen := within(gw2, secret, 200)
	if code, _ := adminCall(t, gw2, e2eAdminKey, "DELETE", "/admin/v1/keys/shared", ""); code != 200 {
		t.Fatalf("revoke on the second replica: %d", code)
	}
	gone := within(gw1, secret, 401)
	t.Logf("a new key reached the other replica in %v, a revocation in %v", seen, gone)

	// Changes made on both replicas at once all land (WATCH/MULTI/EXEC).
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := []*gateway{gw1, gw2}[i%2]
			if code, out := adminCall(t, g, e2eAdminKey, "POST", "/admin/v1/keys", fmt.Sprintf(`{"name":"burst-%d"}`, i)); code != 201 {
				t.Errorf("concurrent create %d: %d %v", i, code, out)
			}
		}()
	}
	wg.Wait()
	_, list := adminCall(t, gw1, e2eAdminKey, "GET", "/admin/v1/keys", "")
	if n := len(list["keys"].([]any)); n != 10 {
		t.Errorf("after 10 concurrent creates on two replicas the store lists %d keys", n)
	}

	// Redis down: the keys last seen keep working; the metric says so.
	kept := createKey(t, gw1, `{"name":"kept"}`)
	within(gw2, kept, 200)
	redis.kill()
	waitMetric(t, gw2, "switchyard_key_store_up", 0)
	if r := chat(t, gw2, kept); r.status != 200 {
		t.Errorf("with Redis down a known key gets %d", r.status)
	}
	if code, out := adminCall(t, gw2, e2eAdminKey, "POST", "/admin/v1/keys", `{"name":"new"}`); code != 503 {
		t.Errorf("creating a key with Redis down: %d %v", code, out)
	}
}

// TestTeamBudgetAcrossReplicas: with the key store and the rate-limit
// service both on one Redis, a team budget spent by one member's key on
// one replica refuses another member's key on the other replica.
func TestTeamBudgetAcrossReplicas(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	rls := startRateLimit(t, redis)
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	cfg := globalConfig(t, a, b, rls, "deny", "{requests_per_minute: 100}", "")
	opts := keyStoreOptions("-keys-redis", "unix://"+redis.sock) // the URL form
	opts.extraEnv = append(opts.extraEnv, testEnv...)
	gw1, gw2 := startGateway(t, cfg, opts), startGateway(t, cfg, opts)
	waitMinuteHead(45)
	if code, out := adminCall(t, gw1, e2eAdminKey, "POST", "/admin/v1/teams", `{"name":"infra","limits":{"requests_per_minute":4}}`); code != 201 {
		t.Fatalf("creating team: %d %v", code, out)
	}
	dev1 := createKey(t, gw1, `{"name":"infra-1","team":"infra"}`)
	dev2 := createKey(t, gw1, `{"name":"infra-2","team":"infra"}`)
	var got []int
	for range 4 {
		got = append(got, chat(t, gw1, dev1).status)
	}
	// gw2 learns the keys within a second; the budget is already spent there.
	deadline := time.Now().Add(time.Second)
	r := chat(t, gw2, dev2)
	for r.status == 401 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		r = chat(t, gw2, dev2)
	}
	got = append(got, r.status)
	if fmtInts(got) != "[200 200 200 200 429]" {
		t.Errorf("infra-1 four times on one replica, then infra-2 on the other: %v (%s)", got, r.body)
	}
	if n := gw2.metricOrFail(t, `switchyard_rate_limited_total{key="team:infra",limit="requests_per_minute"}`); n != 1 {
		t.Errorf("team refusals on the second replica = %v, want 1", n)
	}
}

// TestKeyStoreRedisPassword: a Redis that requires a password serves the
// key store when extproc has it, and a wrong one shows in the metric and
// the log without the password.
func TestKeyStoreRedisPassword(t *testing.T) {
	t.Parallel()
	const password = "e2e-redis-password"
	redis := startRedis(t, password)
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	opts := keyStoreOptions("-keys-redis", "unix:"+redis.sock)
	opts.extraEnv = append(opts.extraEnv, testEnv...)
	good := opts
	good.extraEnv = append(slices.Clip(opts.extraEnv), "SWITCHYARD_KEYS_REDIS_PASSWORD="+password)
	gw := startGateway(t, standardConfig(a, b, ""), good)
	secret := createKey(t, gw, `{"name":"authed"}`)
	if r := chat(t, gw, secret); r.status != 200 {
		t.Fatalf("a key in a password-protected Redis: %d %s", r.status, r.body)
	}
	bad := opts
	bad.extraEnv = append(slices.Clip(opts.extraEnv), "SWITCHYARD_KEYS_REDIS_PASSWORD=wrong-password")
	wrong := startGateway(t, standardConfig(a, b, ""), bad)
	waitMetric(t, wrong, "switchyard_key_store_up", 0)
	if r := chat(t, wrong, secret); r.status != 401 {
		t.Errorf("with a wrong Redis password a key was accepted: %d", r.status)
	}
	if out := wrong.extprocOut.String(); !strings.Contains(out, "key store unreachable") || strings.Contains(out, "wrong-password") {
		t.Errorf("extproc log should say the store is unreachable, without the password:\n%s", tail(out, 2000))
	}
}
