package routing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"switchyard/config"
)

// scaleRouter compiles a config with n client keys, n exact routes and n
// glob routes ("family-<i>-*"), built in Go: YAML for a million of each
// would measure the decoder, not the router.
func scaleRouter(tb testing.TB, n int) *Router {
	tb.Helper()
	cfg := &config.Config{Providers: []config.ProviderConfig{{Name: "p", URL: "http://p.example", Schema: config.APIOpenAI}}}
	for i := range n {
		s := strconv.Itoa(i)
		cfg.Routes = append(cfg.Routes, config.RouteConfig{Model: "model-" + s, Provider: "p"})
		cfg.ClientKeys = append(cfg.ClientKeys, config.ClientKeyConfig{Name: "key-" + s, KeyEnv: "K" + s})
	}
	for i := range n {
		cfg.Routes = append(cfg.Routes, config.RouteConfig{Model: "family-" + strconv.Itoa(i) + "-*", Provider: "p"})
	}
	env := config.Env{Getenv: func(name string) (string, bool) { return scaleKey(strings.TrimPrefix(name, "K")), true }}
	r, err := Compile(cfg, env)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func scaleKey(i string) string { return "sk-scale-0123456789abcdef0123456789abcdef-" + i }

func TestScaleRouter(t *testing.T) {
	// Not parallel: AllocsPerRun needs the test alone.
	r := scaleRouter(t, 1000)
	for _, i := range []string{"0", "500", "999"} {
		p, err := r.Authenticate(scaleKey(i))
		if err != nil || p.Name != "key-"+i {
			t.Errorf("Authenticate(key %s) = %q, %v; want key-%s", i, p.Name, err, i)
		}
	}
	if _, err := r.Authenticate(scaleKey("1000")); err == nil {
		t.Error("an unknown key was accepted")
	}
	ctx := context.Background()
	for model, want := range map[string]string{"model-999": "model-999", "family-7-x": "family-7-*", "family-999-mini": "family-999-*"} {
		d, err := r.Decide(ctx, &Request{API: config.APIOpenAI, Model: model})
		if err != nil || d.Route != want {
			t.Errorf("Decide(%s) = route %q, %v; want %q", model, d.Route, err, want)
		}
	}
	if _, err := r.Decide(ctx, &Request{API: config.APIOpenAI, Model: "family-1000-x"}); err == nil {
		t.Error("family-1000-x matched a glob")
	}
	key, req := scaleKey("999"), Request{API: config.APIOpenAI, Model: "family-999-mini"}
	if n := testing.AllocsPerRun(100, func() { _, _ = r.Authenticate(key); _, _ = r.Decide(ctx, &req) }); n != 0 {
		t.Errorf("Authenticate and Decide allocate %v times, want 0", n)
	}
}

// TestGlobOrder: among globs matching a model, the first in config order
// wins, whatever their literal prefixes.
func TestGlobOrder(t *testing.T) {
	t.Parallel()
	r := mustRouter(t, `
providers:
  - {name: p, url: "http://p.example", schema: openai}
routes:
  - {model: "gpt-4*", provider: p, name: second}
  - {model: "*", provider: p, name: catchall}
  - {model: "gpt-4o-*", provider: p, name: never}
`)
	for model, want := range map[string]string{"gpt-4o-mini": "second", "claude": "catchall", "gpt-4": "second"} {
		d, err := r.Decide(context.Background(), &Request{API: config.APIOpenAI, Model: model})
		if err != nil || d.Route != want {
			t.Errorf("Decide(%s) = route %q, %v; want %q", model, d.Route, err, want)
		}
	}
}

// BenchmarkScale measures one request's key lookup and route decision with
// 10, 10,000 and 1,000,000 keys, exact routes and glob routes; the key, the
// route and the glob looked for are the last ones configured.
func BenchmarkScale(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 10_000, 1_000_000} {
		r := scaleRouter(b, n)
		last := strconv.Itoa(n - 1)
		b.Run(fmt.Sprintf("n=%d/authenticate", n), func(b *testing.B) {
			key := scaleKey(last)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Authenticate(key); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, bc := range []struct{ name, model string }{
			{"exact", "model-" + last},
			{"glob", "family-" + last + "-mini"},
			{"not_found", "unknown-model"},
		} {
			req := Request{API: config.APIOpenAI, Model: bc.model}
			b.Run(fmt.Sprintf("n=%d/decide_%s", n, bc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, _ = r.Decide(ctx, &req)
				}
			})
		}
	}
}
