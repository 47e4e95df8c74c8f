package routing

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"switchyard/config"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// compiledSummary is what a valid config's golden file records.
type compiledSummary struct {
	MaxBodyBytes       int64
	ClientKeysEnabled  bool
	Providers          []Provider
	Models             []Model
	CredentialProblems []string
	RetryRoutes        []string `json:",omitempty"`
	Hooks              struct {
		Dir      string
		Files    []string
		Timeout  string
		FailOpen bool
	}
}

func summarize(r *Router) string {
	s := compiledSummary{
		MaxBodyBytes:       r.MaxBodyBytes(),
		ClientKeysEnabled:  r.ClientKeysEnabled(),
		Providers:          r.Providers(),
		Models:             r.Models(),
		CredentialProblems: r.CredentialProblems(),
	}
	for _, rr := range r.RetryRoutes() {
		p := rr.Policy
		s.RetryRoutes = append(s.RetryRoutes, fmt.Sprintf("%s: %d attempts on %s %v, first byte timeout %v", rr.Key(), rr.Attempts, p.RetryOn(), p.Statuses, p.FirstByteTimeout))
	}
	h := r.Hooks()
	s.Hooks.Dir, s.Hooks.Files, s.Hooks.Timeout, s.Hooks.FailOpen = h.Dir, h.Files, h.Timeout.String(), h.FailOpen
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(out) + "\n"
}

func decodeAndCompile(data []byte) (*Router, error) {
	cfg, err := config.Decode(data)
	if err != nil {
		return nil, err
	}
	return Compile(cfg, fakeEnv)
}

// TestConfigGolden decodes and compiles every testdata/config/*.yaml. Files
// named err_* must fail and their .golden holds the error text; files named
// ok_* must compile and their .golden holds a summary of the Router.
func TestConfigGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no config test files")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r, err := decodeAndCompile(data)
			var got string
			switch {
			case strings.HasPrefix(name, "err_"):
				if err == nil {
					t.Fatalf("config compiled, want an error")
				}
				got = err.Error() + "\n"
			case strings.HasPrefix(name, "ok_"):
				if err != nil {
					t.Fatalf("config failed: %v", err)
				}
				got = summarize(r)
			default:
				t.Fatalf("config test file %s must be named err_* or ok_*", file)
			}
			for _, secret := range secrets {
				if strings.Contains(got, secret) {
					t.Errorf("output contains secret %q", secret)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./routing -update): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(routerYAML))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeAndCompile(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// A compiled router must answer every question without panicking.
		_ = r.Models()
		_ = r.Providers()
		_ = r.Hooks()
		_ = r.String()
		if r.MaxBodyBytes() <= 0 {
			t.Fatalf("MaxBodyBytes = %d", r.MaxBodyBytes())
		}
		if r.Hooks().Timeout <= 0 {
			t.Fatalf("hook timeout = %v", r.Hooks().Timeout)
		}
		_, _ = r.Authenticate("k")
		models := []string{"", "m", "gpt-4o", "a/b", "claude-x", "openai/x", "é"}
		for _, m := range r.Models() {
			models = append(models, m.ID)
		}
		for _, p := range r.Providers() {
			models = append(models, p.Name+"/x")
		}
		for _, m := range models {
			for _, api := range []config.API{config.APIOpenAI, config.APIAnthropic} {
				for _, pick := range []func(int) int{nil, func(int) int { return 0 }, func(n int) int { return n - 1 }} {
					d, err := r.Decide(ctx, &Request{API: api, Model: m, Pick: pick})
					if err == nil && (d.Provider == "" || d.Cluster == "" || d.Model == "") {
						t.Fatalf("Decide(%q, %q) = %+v: empty field in a successful decision", api, m, d)
					}
					if err == nil && !r.HasProvider(d.Provider) {
						t.Fatalf("Decide chose unknown provider %q", d.Provider)
					}
					if err == nil {
						checkAttempts(t, d, api)
					}
				}
			}
		}
	})
}

// checkAttempts holds for every decision: the attempts start with the
// decision itself, all speak the client's API through a known cluster, and
// their number stays within the policy's bound and Envoy's retry entries.
func checkAttempts(t *testing.T, d Decision, api config.API) {
	t.Helper()
	if len(d.Attempts) == 0 {
		return
	}
	if d.Retry == nil || d.Attempts[0].Provider != d.Provider || d.Attempts[0].Model != d.Model {
		t.Fatalf("attempts %+v do not start with the decision %+v (retry %v)", d.Attempts, d, d.Retry)
	}
	if d.Retry.Attempts > 0 && len(d.Attempts) > d.Retry.Attempts {
		t.Fatalf("%d attempts over the bound of %d", len(d.Attempts), d.Retry.Attempts)
	}
	for _, a := range d.Attempts {
		if a.API != api || a.Cluster == "" || a.Model == "" || a.Attempts != nil {
			t.Fatalf("attempt %+v for a %s client", a, api)
		}
	}
}
