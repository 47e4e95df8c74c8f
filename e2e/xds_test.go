package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestXDSLiveProviderAndRoute: with Envoy on a minimal bootstrap taking its
// listener, routes and clusters from extproc over ADS, a provider and a
// route added to the file are served within 2 s, and so is the config's
// first fallback chain, with the same Envoy process (no restart).
func TestXDSLiveProviderAndRoute(t *testing.T) {
	t.Parallel()
	a, b, c := startUpstream(t, "A"), startUpstream(t, "B"), startUpstream(t, "C")
	opts := gatewayOptions{extraEnv: testEnv, extprocArgs: []string{"-xds"}, envoyConfigArgs: []string{"-xds"}}
	base := standardConfig(a, b, "")
	g := startGateway(t, base, opts)
	if got := upstreamSaw(t, g.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)); got.Upstream != "A" {
		t.Fatalf("before the change: routed to %q, want A", got.Upstream)
	}
	pid, uptime := g.envoyPID, envoyUptime(t, g)

	// gamma is a new provider; "chain" fails over from a provider that
	// refuses connections to it: the first fallback chain of the config.
	next := strings.Replace(base, "providers:\n", fmt.Sprintf("providers:\n  - {name: gamma, url: 'http://127.0.0.1:%d', schema: openai}\n  - {name: down, url: 'http://127.0.0.1:9', schema: openai}\n", c.port()), 1)
	next = strings.Replace(next, "routes:\n", "routes:\n  - {model: gamma-model, provider: gamma}\n  - {model: chain, provider: down, fallbacks: [{provider: gamma}]}\n", 1)
	written := time.Now()
	replaceFile(t, g.configPath, next)

	for _, model := range []string{"gamma-model", "chain"} {
		var last result
		for {
			r, err := g.try(t.Context(), "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"`+model+`"}`)
			if err == nil && r.status == 200 {
				if got := upstreamSaw(t, r); got.Upstream != "C" {
					t.Logf("clusters:\n%s", g.envoyAdmin(t, "/clusters"))
					t.Fatalf("%s: routed to %q, want C", model, got.Upstream)
				}
				break
			}
			last = r
			if time.Since(written) > 2*time.Second {
				t.Fatalf("%s not served 2 s after the change: last status %d %s (err %v)", model, last.status, last.body, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s served %v after the change", model, time.Since(written).Round(time.Millisecond))
	}
	if got := upstreamSaw(t, g.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)); got.Upstream != "A" {
		t.Errorf("after the change: routed to %q, want A", got.Upstream)
	}
	waitMetric(t, g, "switchyard_config_last_reload_successful", 1)
	waitMetric(t, g, "switchyard_config_restart_required", 0)
	if err := syscall.Kill(pid, 0); err != nil || g.envoyPID != pid {
		t.Errorf("envoy process %d is gone (%v): it was restarted", pid, err)
	}
	if now := envoyUptime(t, g); now < uptime {
		t.Errorf("envoy uptime went from %d s to %d s: it was restarted", uptime, now)
	}
	if strings.Contains(g.extprocOut.String(), "rejected xds resources") {
		t.Errorf("envoy rejected a snapshot:\n%s", tail(g.extprocOut.String(), 3000))
	}
}

// envoyUptime is Envoy's uptime across hot restarts, in seconds.
func envoyUptime(t *testing.T, g *gateway) int {
	t.Helper()
	var info struct {
		UptimeAllEpochs string `json:"uptime_all_epochs"`
	}
	if err := json.Unmarshal([]byte(g.envoyAdmin(t, "/server_info")), &info); err != nil {
		t.Fatalf("reading /server_info: %v", err)
	}
	d, err := time.ParseDuration(info.UptimeAllEpochs)
	if err != nil {
		t.Fatalf("uptime %q: %v", info.UptimeAllEpochs, err)
	}
	return int(d.Seconds())
}

// TestXDSURLChangeUnderTraffic: a provider's url (and its key) changed in
// the file moves its traffic to the new upstream, live, while requests keep
// flowing: none of them fails, none planned with the old key reaches the
// new upstream, and Envoy is the same process.
func TestXDSURLChangeUnderTraffic(t *testing.T) {
	t.Parallel()
	a, b, c := startUpstream(t, "A"), startUpstream(t, "B"), startUpstream(t, "C")
	base := standardConfig(a, b, "")
	g := startGateway(t, base, gatewayOptions{extraEnv: testEnv, extprocArgs: []string{"-xds"}, envoyConfigArgs: []string{"-xds"}})
	pid := g.envoyPID

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		fails  []string
		leaked int // requests C got with A's key
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := g.try(t.Context(), "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)
				mu.Lock()
				var rep upstreamReply
				switch {
				case err != nil:
					fails = append(fails, err.Error())
				case r.status != 200 || json.Unmarshal(r.body, &rep) != nil:
					fails = append(fails, fmt.Sprintf("%d %s", r.status, r.body))
				default:
					counts[rep.Seen.Upstream]++
					if rep.Seen.Upstream == "C" && strings.Contains(rep.Seen.Headers["authorization"], alphaKey) {
						leaked++
					}
				}
				mu.Unlock()
			}
		}()
	}
	served := func(upstream string) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[upstream]
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("traffic to A", func() bool { return served("A") >= 50 })
	moved := strings.Replace(base, fmt.Sprintf("url: http://127.0.0.1:%d\n", a.port()), fmt.Sprintf("url: http://127.0.0.1:%d\n", c.port()), 1)
	moved = strings.Replace(moved, "key_env: SWY_TEST_ALPHA_KEY", "key_env: SWY_TEST_BETA_KEY", 1)
	replaceFile(t, g.configPath, moved)
	waitFor("traffic moved to C", func() bool { return served("C") >= 50 })
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("served: %v, failed: %d", counts, len(fails))
	if len(fails) > 0 {
		t.Errorf("%d requests failed across the url change, first: %s", len(fails), fails[0])
	}
	if leaked > 0 {
		t.Errorf("the new upstream got %d requests with the old upstream's key", leaked)
	}
	if g.envoyPID != pid || syscall.Kill(pid, 0) != nil {
		t.Errorf("envoy was restarted")
	}
}
