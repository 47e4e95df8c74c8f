package routing

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"switchyard/config"
)

const (
	secretPoolA = "sk-pool-a-SECRET-1111"
	secretPoolB = "sk-pool-b-SECRET-2222"
	secretPoolC = "sk-pool-c-SECRET-3333"
)

var poolEnv = config.Env{
	Getenv: func(name string) (string, bool) {
		v, ok := map[string]string{"POOL_A": secretPoolA, "POOL_B": secretPoolB, "POOL_C": secretPoolC, "OPENAI_API_KEY": secretOpenAI}[name]
		return v, ok
	},
	ReadFile: fakeEnv.ReadFile,
}

const poolYAML = `
providers:
  - name: pooled
    url: https://pooled.example
    schema: openai
    auth:
      type: bearer
      keys:
        - {key_env: POOL_A, weight: 3}
        - {key_env: POOL_B}
        - {key_env: POOL_C}
        - {key_env: POOL_UNSET}
  - {name: single, url: "https://single.example", schema: openai, auth: {type: bearer, keys: [{key_env: OPENAI_API_KEY}]}}
  - {name: backup, url: "https://backup.example", schema: openai, auth: {type: bearer, key_env: OPENAI_API_KEY}}
routes:
  - {model: pool, provider: pooled}
  - {model: one, provider: single}
  - model: chain
    provider: pooled
    fallbacks: [{provider: backup}]
`

func mustPoolRouter(t testing.TB) *Router {
	t.Helper()
	cfg, err := config.Decode([]byte(poolYAML))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(cfg, poolEnv)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var poolSecrets = map[string]string{"POOL_A": "Bearer " + secretPoolA, "POOL_B": "Bearer " + secretPoolB, "POOL_C": "Bearer " + secretPoolC}

// TestPoolAttemptsUseEachKeyOnce: a request to a pooled provider has one
// attempt per loaded key, each with its own credential, none twice, and
// moves on when a key answers 429.
func TestPoolAttemptsUseEachKeyOnce(t *testing.T) {
	t.Parallel()
	r := mustPoolRouter(t)
	for _, session := range []string{"", "sess-1"} {
		for _, model := range []string{"pool", "pooled/gpt-x"} {
			d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: model, Session: session})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Attempts) != 3 || d.Retry == nil || !d.Retry.Fails(429) || d.Retry.Fails(500) {
				t.Fatalf("%s: %d attempts, retry %+v; want 3 attempts moving on at 429 only", model, len(d.Attempts), d.Retry)
			}
			seen := map[string]bool{}
			for _, a := range d.Attempts {
				if seen[a.Key] || a.Credential == nil || a.Credential.Value != poolSecrets[a.Key] || a.Provider != "pooled" {
					t.Fatalf("%s: attempt %+v: key repeated or credential not its own", model, a)
				}
				seen[a.Key] = true
			}
			if d.Key != d.Attempts[0].Key || d.Credential != d.Attempts[0].Credential {
				t.Errorf("decision key %s is not its first attempt's %s", d.Key, d.Attempts[0].Key)
			}
			if d.KeyAffinity != (session != "") {
				t.Errorf("KeyAffinity = %t with session %q", d.KeyAffinity, session)
			}
		}
	}
	d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "chain"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range d.Attempts {
		got = append(got, a.Provider)
	}
	if strings.Join(got, ",") != "pooled,pooled,pooled,backup" {
		t.Errorf("chain attempts %v, want the pool's three keys then backup", got)
	}
	// A pool with one key is a provider with one key.
	d, err = r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "one", Session: "s"})
	if err != nil || d.Attempts != nil || d.Key != "" || d.Credential.Value != "Bearer "+secretOpenAI {
		t.Errorf("one-key pool: %+v, %v; want a plain decision", d, err)
	}
}

func TestPoolSpreadAndStickiness(t *testing.T) {
	t.Parallel()
	r := mustPoolRouter(t)
	first := func(session string) string {
		d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "pool", Session: session})
		if err != nil {
			t.Fatal(err)
		}
		return d.Key
	}
	for _, s := range []string{"a", "b", "c"} {
		k := first(s)
		for range 199 {
			if got := first(s); got != k {
				t.Fatalf("session %s moved from key %s to %s", s, k, got)
			}
		}
	}
	bySession, byRequest := map[string]int{}, map[string]int{}
	for i := range 1000 {
		bySession[first(fmt.Sprintf("session-%d", i))]++
		byRequest[first("")]++
	}
	// Weights 3:1:1 are 600:200:200 of 1000.
	for name, count := range map[string]map[string]int{"sessions": bySession, "requests": byRequest} {
		if count["POOL_A"] < 530 || count["POOL_A"] > 670 || count["POOL_B"] < 140 || count["POOL_C"] < 140 {
			t.Errorf("1000 %s over keys weighted 3:1:1 split %v", name, count)
		}
	}
}

func TestPoolRetryRoutesAndProblems(t *testing.T) {
	t.Parallel()
	r := mustPoolRouter(t)
	var keys []string
	for _, rr := range r.RetryRoutes() {
		keys = append(keys, fmt.Sprintf("%v:%d", rr.Policy.Statuses, rr.Attempts))
	}
	// The pool's own policy (429) up to 3 keys; the chain route's default
	// policy up to 3 keys + 1 fallback.
	if got := strings.Join(keys, " "); !strings.Contains(got, "[429]:2 [429]:3") || !strings.Contains(got, ":4") {
		t.Errorf("retry routes %s, want the pool policy for 2 and 3 attempts and the chain's for 4", got)
	}
	problems := strings.Join(r.CredentialProblems(), "\n")
	if !strings.Contains(problems, `provider "pooled": a key is left out of its pool: environment variable POOL_UNSET is not set`) {
		t.Errorf("credential problems %q do not name the missing pool key", problems)
	}
	d, err := r.Attempt("pooled", "m", config.APIOpenAI, "POOL_B")
	if err != nil || d.Credential.Value != "Bearer "+secretPoolB || d.Key != "POOL_B" {
		t.Errorf("Attempt(POOL_B) = %+v, %v", d, err)
	}
	if d, _ := r.Attempt("pooled", "m", config.APIOpenAI, "GONE"); d.Credential.Value != "Bearer "+secretPoolA {
		t.Error("Attempt with a key no longer in the pool did not fall back to the pool's first key")
	}
}

// TestPoolNoSecretsInOutput formats a pooled decision, its attempts, the
// router and the credential problems: no pool key appears.
func TestPoolNoSecretsInOutput(t *testing.T) {
	t.Parallel()
	r := mustPoolRouter(t)
	d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: "chain", Session: "s"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{r, d.Attempts, d.Credential} {
			out = append(out, fmt.Sprintf(verb, v))
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "decision", d, "attempts", d.Attempts, "router", r)
	out = append(out, buf.String(), strings.Join(r.CredentialProblems(), "\n"))
	all := strings.Join(out, "\n")
	for _, s := range []string{secretPoolA, secretPoolB, secretPoolC} {
		if strings.Contains(all, s) {
			t.Errorf("a pool key appears in the output:\n%s", all)
		}
	}
}

func TestDecideAllocsWithPoolsConfigured(t *testing.T) {
	r := mustPoolRouter(t)
	req := Request{API: config.APIOpenAI, Model: "backup/gpt-4o"}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.Decide(context.Background(), &req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decide for a provider without a pool allocates %v times, want 0", allocs)
	}
}

// TestPoolReloadNeedsEnvoyEntries: a reload that adds a provider's first
// key pool, or makes a pool larger than any Envoy has entries for, needs a
// restart; changing the keys of a pool of the same size, or a key that
// could not be loaded loading, does not.
func TestPoolReloadNeedsEnvoyEntries(t *testing.T) {
	t.Parallel()
	compile := func(keys ...string) *Router {
		var list []string
		for _, k := range keys {
			list = append(list, "{key_env: "+k+"}")
		}
		auth := "{type: bearer, key_env: OPENAI_API_KEY}"
		if len(keys) > 0 {
			auth = "{type: bearer, keys: [" + strings.Join(list, ", ") + "]}"
		}
		cfg, err := config.Decode([]byte("providers: [{name: p, url: 'http://p.example', schema: openai, auth: " + auth + "}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := Compile(cfg, poolEnv)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	plain, two, otherTwo, three := compile(), compile("POOL_A", "POOL_B"), compile("POOL_B", "POOL_C"), compile("POOL_A", "POOL_B", "POOL_C")
	for _, tc := range []struct {
		name          string
		running, next *Router
		restart       bool
	}{
		{"first pool", plain, two, true},
		{"larger pool", two, three, true},
		{"other keys, same size", two, otherTwo, false},
		{"smaller pool", three, two, false},
		{"pool removed", two, plain, false},
		{"a missing key loads", compile("POOL_A", "POOL_B", "POOL_UNSET"), three, false},
	} {
		if got := len(MissingRetryRoutes(tc.running, tc.next)) > 0; got != tc.restart {
			t.Errorf("%s: restart needed = %t, want %t", tc.name, got, tc.restart)
		}
	}
}
