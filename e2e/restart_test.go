package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestReloadNeedingRestartIsRefused: a config push that changes a field
// applying only at start is refused whole and says so; the running config
// keeps serving until the file is changed back.
func TestReloadNeedingRestartIsRefused(t *testing.T) {
	t.Parallel()
	s := startStandard(t, gatewayOptions{})
	good, err := os.ReadFile(s.gw.configPath)
	if err != nil {
		t.Fatal(err)
	}
	push := func(content string) {
		t.Helper()
		replaceFile(t, s.gw.configPath, content)
	}
	big := `{"model":"gpt-exact","pad":"` + strings.Repeat("x", 40000) + `"}`
	for _, change := range []struct {
		name, content string
		liveWithXDS   bool // Envoy on ADS takes it without a restart
	}{
		{"max_body_bytes", strings.Replace(string(good), "max_body_bytes: 65536", "max_body_bytes: 1024", 1), true},
		// Over the gRPC message limit extproc -xds started with.
		{"max_body_bytes over 1 GiB", strings.Replace(string(good), "max_body_bytes: 65536", "max_body_bytes: 2147483648", 1), false},
		{"new provider", strings.Replace(string(good), "providers:\n", "providers:\n  - {name: gamma, url: 'http://127.0.0.1:9', schema: openai}\n", 1), true},
	} {
		t.Run(change.name, func(t *testing.T) {
			if allXDS && change.liveWithXDS {
				const reloads = `switchyard_config_reloads_total{result="success"}`
				before, _ := metricValue(s.gw.metrics(t), reloads)
				push(change.content)
				waitMetric(t, s.gw, reloads, before+1)
				waitMetric(t, s.gw, "switchyard_config_restart_required", 0)
				waitMetric(t, s.gw, "switchyard_config_last_reload_successful", 1)
				deadline := time.Now().Add(2 * time.Second)
				for change.name == "new provider" && !strings.Contains(s.gw.envoyAdmin(t, "/clusters"), "\ngamma::") {
					if time.Now().After(deadline) {
						t.Fatal("envoy has no cluster for the new provider 2 s after the reload")
					}
					time.Sleep(20 * time.Millisecond)
				}
				push(string(good))
				waitMetric(t, s.gw, reloads, before+2)
				return
			}
			push(change.content)
			waitMetric(t, s.gw, "switchyard_config_restart_required", 1)
			waitMetric(t, s.gw, "switchyard_config_last_reload_successful", 0)
			// Still the running config: a 40 kB body passes the old limit.
			if got := upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), big)); got.BodyLen != len(big) {
				t.Errorf("upstream got %d bytes of %d", got.BodyLen, len(big))
			}
			push(string(good))
			waitMetric(t, s.gw, "switchyard_config_restart_required", 0)
			waitMetric(t, s.gw, "switchyard_config_last_reload_successful", 1)
		})
	}
	if out := s.gw.extprocOut.String(); !strings.Contains(out, "max_body_bytes changed") || !allXDS && !strings.Contains(out, `new provider \"gamma\"`) {
		t.Errorf("the log does not name the fields that need a restart:\n%s", tail(out, 3000))
	}
}
