package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("providers: []\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	want := "decoding config " + bad + ": line 2: bogus: unknown field \"bogus\"\nline 1: providers: at least one provider is required"
	if err == nil || err.Error() != want {
		t.Errorf("Load(bad) error = %v\nwant %s", err, want)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want fs.ErrNotExist naming the path", err)
	}
}

func TestProblemHasLine(t *testing.T) {
	t.Parallel()
	cfg, err := Decode([]byte("providers:\n  - {name: p, url: 'http://p', schema: openai}\nclient_keys:\n  - name: a\n    key_env: A\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Problem("not set", "client_keys", 0, "key_env").Error()
	if want := "line 5: client_keys[0].key_env: not set"; got != want {
		t.Errorf("Problem = %q, want %q", got, want)
	}
	built := &Config{}
	if got, want := built.Problem("bad", "providers", 1).Error(), "providers[1]: bad"; got != want {
		t.Errorf("Problem without a document = %q, want %q", got, want)
	}
}

func TestKeyProblemsNeverHoldTheKey(t *testing.T) {
	t.Parallel()
	const secret = "sk-SECRET\x01tail"
	env := Env{
		Getenv:   func(string) (string, bool) { return secret, true },
		ReadFile: func(string) ([]byte, error) { return []byte(secret), nil },
	}
	for _, tc := range []struct{ env, file string }{{"K", ""}, {"", "/k"}} {
		key, problem := env.Key(tc.env, tc.file)
		if key != "" || problem == "" || strings.Contains(problem, "SECRET") {
			t.Errorf("Key(%q, %q) = %q, %q; want no key and a problem without it", tc.env, tc.file, key, problem)
		}
	}
	ok := Env{Getenv: func(string) (string, bool) { return "  k1 \n", true }}
	if key, problem := ok.Key("K", ""); key != "k1" || problem != "" {
		t.Errorf("Key = %q, %q; want the trimmed key", key, problem)
	}
}

// A key pasted where its variable's name belongs appears in no error: not
// when it is no valid name ("sk-..."), not when it is one ("gsk_...").
func TestPastedKeyInKeyEnvIsNotEchoed(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"sk-proj-Abc123SECRET", "gsk_Abc123SECRET"} {
		doc := "providers:\n  - {name: p, url: 'http://p', schema: openai, auth: {type: bearer, key_env: " + key + "}}\n" +
			"  - {name: b, url: 'https://bedrock-runtime.us-east-1.amazonaws.com', schema: bedrock,\n" +
			"     auth: {type: aws_sigv4, region: us-east-1, credentials: [{access_key_id_env: " + key + ", secret_access_key_env: S}]}}\n"
		_, err := Decode([]byte(doc))
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Decode with key_env %s: error holds the key: %v", key, err)
		}
		_, problem := Env{Getenv: func(string) (string, bool) { return "", false }}.Key(key, "")
		if problem == "" || strings.Contains(problem, "SECRET") {
			t.Errorf("Key(%q) problem = %q; want one without the name", key, problem)
		}
		// Where a pool tells its keys apart (metrics, logs, a duplicate).
		dup := "providers:\n  - {name: p, url: 'http://p', schema: openai, auth: {type: bearer, keys: [{key_env: " + key + "}, {key_env: " + key + "}]}}\n"
		if _, err := Decode([]byte(dup)); err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("a pool naming %s twice: %v; want refused without the name", key, err)
		}
		for _, src := range []string{(PoolKeyConfig{KeyEnv: key}).Source(), (CloudCredentialConfig{AccessKeyIDEnv: key}).Source()} {
			if strings.Contains(src, "SECRET") || src == "" {
				t.Errorf("Source of key_env %s = %q", key, src)
			}
		}
	}
	if _, err := Decode([]byte("providers:\n  - {name: p, url: 'http://p', schema: openai, auth: {type: bearer, key_env: sk-proj-SECRET}}\n")); err == nil ||
		!strings.Contains(err.Error(), "key_env: is not a valid environment variable name") {
		t.Errorf("Decode with an invalid key_env = %v; want it refused", err)
	}
	if _, problem := (Env{Getenv: func(string) (string, bool) { return "", false }}).Key("OPENAI_API_KEY", ""); problem != "environment variable OPENAI_API_KEY is not set" {
		t.Errorf("Key(OPENAI_API_KEY) problem = %q; want the name given", problem)
	}
}

// A vertex provider without a url reaches its region's endpoint; the
// multi-regions have hosts of their own.
func TestVertexURL(t *testing.T) {
	t.Parallel()
	for region, want := range map[string]string{
		"us-east5": "us-east5-aiplatform.googleapis.com",
		"global":   "aiplatform.googleapis.com",
		"us":       "aiplatform.us.rep.googleapis.com",
		"eu":       "aiplatform.eu.rep.googleapis.com",
	} {
		pc := ProviderConfig{Name: "v", Schema: APIVertex, Region: region, Project: "my-project", Publisher: VertexAnthropic}
		if got := pc.ParsedURL(); got.Host != want || got.Scheme != "https" {
			t.Errorf("region %s: %+v, want https://%s", region, got, want)
		}
	}
}

// anthropic_betas belongs to bedrock providers and Claude on Vertex, and
// holds flag names.
func TestAnthropicBetas(t *testing.T) {
	t.Parallel()
	const bedrockDoc = "providers:\n  - {name: b, schema: bedrock, auth: {type: aws_sigv4, region: us-east-1}, anthropic_betas: %s}\n"
	for list, want := range map[string]string{
		"[interleaved-thinking-2025-05-14]": "",
		"[]":                                "",
		`["two words"]`:                     `"two words" is not a beta flag name`,
	} {
		_, err := Decode([]byte(strings.Replace(bedrockDoc, "%s", list, 1)))
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("anthropic_betas %s: %v, want %q", list, err, want)
		}
	}
	const vertex = "providers:\n  - {name: v, schema: vertex, project: my-proj, region: us-east5, publisher: %s, auth: {type: gcp_oauth}, anthropic_betas: [x]}\n"
	if _, err := Decode([]byte(strings.Replace(vertex, "%s", "anthropic", 1))); err != nil {
		t.Errorf("anthropic_betas on Claude on Vertex: %v", err)
	}
	for _, doc := range []string{"providers:\n  - {name: p, url: 'http://p', schema: anthropic, anthropic_betas: [x]}\n", strings.Replace(vertex, "%s", "google", 1)} {
		if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), `anthropic_betas: is only used with schema "bedrock"`) {
			t.Errorf("anthropic_betas on %s: %v", doc, err)
		}
	}
}

// TestHostHeader: a name alone; an IP address with a port other than its
// scheme's; an IPv6 address in brackets, a mapped IPv4 one included.
func TestHostHeader(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		host string
		port int
		tls  bool
		want string
	}{
		{"api.openai.com", 443, true, "api.openai.com"},
		{"proxy.internal", 8443, true, "proxy.internal"},
		{"127.0.0.1", 8080, false, "127.0.0.1:8080"},
		{"127.0.0.1", 80, false, "127.0.0.1"},
		{"::1", 9443, true, "[::1]:9443"},
		{"::1", 443, true, "[::1]"},
		{"::ffff:10.0.0.5", 443, true, "[::ffff:10.0.0.5]"},
	} {
		if got := HostHeader(c.host, c.port, c.tls); got != c.want {
			t.Errorf("HostHeader(%s, %d, %v) = %q, want %q", c.host, c.port, c.tls, got, c.want)
		}
	}
}
