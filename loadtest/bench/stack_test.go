package bench

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"switchyard/config"
	"switchyard/loadtest/mockllm"
)

func TestGatewayConfigDecodes(t *testing.T) {
	t.Parallel()
	for _, hooks := range []string{"", "/tmp/some dir/hooks"} {
		c, err := config.Decode([]byte(gatewayConfig("http://127.0.0.1:8081", hooks)))
		if err != nil {
			t.Fatalf("hooks %q: %v", hooks, err)
		}
		// The mock's OpenAI endpoints, and its Messages endpoint for the
		// agent stages' Messages bodies.
		if len(c.Providers) != 2 || c.Providers[0].URL != "http://127.0.0.1:8081" || c.Providers[1].Schema != "anthropic" ||
			c.Providers[1].URL != c.Providers[0].URL || c.Routes[0].Model != ModelAnthropic || c.Hooks.Dir != hooks {
			t.Errorf("hooks %q: decoded %+v", hooks, c)
		}
		if hooks != "" && (c.Hooks.Timeout != HookTimeout || c.Hooks.FailurePolicy != "fail_closed") {
			t.Errorf("hooks %+v, want timeout %s and fail_closed", c.Hooks, HookTimeout)
		}
	}
}

// TestFeatureConfigsDecode: every feature path's config is one the gateway
// takes, and the rewrite feature's rewrites the mock's models.
func TestFeatureConfigsDecode(t *testing.T) {
	t.Parallel()
	for name, f := range Features {
		c, err := config.Decode([]byte(f.config("http://127.0.0.1:8081")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "rewrite" && c.Routes[1].RewriteModel != rewrittenModel {
			t.Errorf("rewrite: routes %+v rewrite no model", c.Routes)
		}
	}
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		path    Path
		wantErr string
	}{
		{name: "direct", path: Path{Target: Target{Name: "direct", URL: srv.URL}}},
		{name: "hook path without a hook", path: Path{Target: Target{Name: "gateway_hook", URL: srv.URL, Headers: map[string]string{"x-team": "bench"}}},
			wantErr: `hook did not run: upstream saw x-team-seen ""`},
		{name: "hook header on a plain path", path: Path{Target: Target{Name: "gateway", URL: srv.URL, Headers: map[string]string{"x-team-seen": "x"}}},
			wantErr: "a hook ran on a path without hooks"},
		{name: "wrong status", path: Path{Target: Target{Name: "direct", URL: srv.URL + "/nope"}}, wantErr: "status 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Preflight(context.Background(), []Path{tt.path})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
