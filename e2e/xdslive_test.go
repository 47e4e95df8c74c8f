package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// liveTarget is one kind of request the live-change load sends.
type liveTarget struct {
	model  string
	stream bool
}

func (lt liveTarget) String() string {
	if lt.stream {
		return lt.model + " (SSE)"
	}
	return lt.model + " (JSON)"
}

// xdsLiveGrace is how long the clusters a reload removes stay in Envoy in
// TestXDSLiveChangesUnderLoad (-xds-removal-grace).
const xdsLiveGrace = 3 * time.Second

// TestXDSLiveChangesUnderLoad: Envoy on ADS, 50 clients in a closed loop
// sending JSON and SSE requests while the file changes four times: a new
// provider and route, a provider's url, the config's first fallback chain
// and first key pool, then a route and its provider removed. Each change is
// served within 2 s; every request not aimed at what was removed gets a
// 200 (a stream with its [DONE]); one aimed at the removed route gets a 200
// or, once the removal serves, the gateway's 404, never a 5xx (a request
// planned under the old config that met a cluster Envoy had dropped would
// get a 503); the removed cluster stays until the grace period has passed;
// and Envoy is the same process throughout.
func TestXDSLiveChangesUnderLoad(t *testing.T) {
	t.Parallel()
	a, b, c, d, e := startUpstream(t, "A"), startUpstream(t, "B"), startUpstream(t, "C"), startUpstream(t, "D"), startUpstream(t, "E")
	// slow fails each attempt after 150 ms: a request of the "chain" route
	// planned under one config retries on doomed's attempt cluster that long
	// after, which a reload removing doomed must not have dropped yet.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(slow.Close)
	doomed := fmt.Sprintf("  - {name: doomed, url: 'http://127.0.0.1:%d', schema: openai}\n", d.port())
	// Always attempted first: slow is never ejected.
	base := standardConfig(a, b, "  - {model: doomed-model, provider: doomed}\n") + "ejection: {consecutive_failures: 1000000}\n"
	base = strings.Replace(base, "providers:\n", "providers:\n"+doomed, 1)
	g := startGateway(t, base, gatewayOptions{extraEnv: testEnv,
		extprocArgs: []string{"-xds", "-xds-removal-grace", xdsLiveGrace.String()}, envoyConfigArgs: []string{"-xds"}})
	pid, uptime, began := g.envoyPID, envoyUptime(t, g), time.Now()

	var targets atomic.Pointer[[]liveTarget]
	addTargets := func(models ...string) {
		ts := append([]liveTarget(nil), *targets.Load()...)
		for _, m := range models {
			ts = append(ts, liveTarget{m, false}, liveTarget{m, true})
		}
		targets.Store(&ts)
	}
	targets.Store(&[]liveTarget{})
	addTargets("gpt-exact", "doomed-model")
	// The routes the last change removes.
	removed := map[string]bool{"doomed-model": true, "chain": true}
	var removedOK, removedGone atomic.Int64
	run := startLoad(load{workers: 50, timeout: 10 * time.Second}, func(ctx context.Context, i int64) (result, error) {
		ts := *targets.Load()
		lt := ts[int(i)%len(ts)]
		h := bearer(clientKeyA)
		if lt.stream {
			// 5 chunks 20 ms apart: streams are in flight across each change.
			h["x-test-chunks"], h["x-test-interval-ms"] = "5", "20"
		}
		r, err := g.try(ctx, "POST", "/v1/chat/completions", h, fmt.Sprintf(`{"model":%q,"stream":%t}`, lt.model, lt.stream))
		switch {
		case err != nil:
			return r, fmt.Errorf("%s: %w", lt, err)
		case removed[lt.model] && r.status == 404:
			removedGone.Add(1)
			return r, nil
		case r.status != 200:
			return r, fmt.Errorf("%s: status %d: %s", lt, r.status, r.body)
		case lt.stream && !bytes.HasSuffix(r.body, []byte("data: [DONE]\n\n")):
			return r, fmt.Errorf("%s: stream ended without [DONE]: %q", lt, tail(string(r.body), 200))
		}
		if removed[lt.model] {
			removedOK.Add(1)
		}
		return r, nil
	})
	defer run.stop()
	run.waitRequests(t, 300)

	config := base
	// change writes next and waits until each model's answers are the new
	// config's (served says so), within 2 s of the write.
	change := func(what, next string, served map[string]func(result) bool) {
		t.Helper()
		config = next
		written := time.Now()
		replaceFile(t, g.configPath, next)
		for model, ok := range served {
			took := servedWithin(t, g, written, 2*time.Second, model, ok)
			t.Logf("%s: %s served %v after the file changed", what, model, took.Round(time.Millisecond))
		}
		run.waitRequests(t, 300)
	}
	from := func(upstream string) func(result) bool {
		return func(r result) bool {
			return r.status == 200 && strings.Contains(string(r.body), `"upstream":"`+upstream+`"`)
		}
	}

	// A new provider and a route to it.
	next := strings.Replace(config, "providers:\n", fmt.Sprintf("providers:\n  - {name: gamma, url: 'http://127.0.0.1:%d', schema: openai}\n", c.port()), 1)
	next = strings.Replace(next, "routes:\n", "routes:\n  - {model: gamma-model, provider: gamma}\n", 1)
	change("new provider and route", next, map[string]func(result) bool{"gamma-model": from("C")})
	addTargets("gamma-model")

	// alpha's url: from A to E.
	next = strings.Replace(config, fmt.Sprintf("url: http://127.0.0.1:%d\n", a.port()), fmt.Sprintf("url: http://127.0.0.1:%d\n", e.port()), 1)
	change("provider url changed", next, map[string]func(result) bool{"gpt-exact": from("E")})

	// The first fallback chain and the first key pool.
	next = strings.Replace(config, "providers:\n", "providers:\n  - {name: slow, url: '"+slow.URL+"', schema: openai}\n"+
		fmt.Sprintf("  - {name: pooled, url: 'http://127.0.0.1:%d', schema: openai, auth: {type: bearer, keys: [{key_env: SWY_TEST_ALPHA_KEY}, {key_env: SWY_TEST_BETA_KEY}]}}\n", c.port()), 1)
	next = strings.Replace(next, "routes:\n", "routes:\n  - {model: chain, provider: slow, fallbacks: [{provider: doomed}]}\n  - {model: pooled-model, provider: pooled}\n", 1)
	change("first fallback chain and key pool", next, map[string]func(result) bool{"chain": from("D"), "pooled-model": from("C")})
	addTargets("chain", "pooled-model")

	// doomed and the routes to it removed: its clusters stay for the
	// requests planned before (a chain's retry comes 150 ms after), then go.
	next = strings.Replace(config, doomed, "", 1)
	next = strings.Replace(next, "  - {model: doomed-model, provider: doomed}\n", "", 1)
	next = strings.Replace(next, "  - {model: chain, provider: slow, fallbacks: [{provider: doomed}]}\n", "", 1)
	gone := func(r result) bool { return r.status == 404 }
	change("routes and provider removed", next, map[string]func(result) bool{"doomed-model": gone, "chain": gone})
	removedAt := time.Now()
	if !strings.Contains(g.envoyAdmin(t, "/clusters"), "\ndoomed::") && time.Since(removedAt) < xdsLiveGrace/2 {
		t.Errorf("the removed provider's cluster left Envoy before the grace period of %v", xdsLiveGrace)
	}
	for strings.Contains(g.envoyAdmin(t, "/clusters"), "\ndoomed::") {
		if time.Since(removedAt) > xdsLiveGrace+5*time.Second {
			t.Fatalf("the removed provider's cluster is still in Envoy %v after the removal", time.Since(removedAt).Round(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("removed cluster left Envoy %v after the removal served", time.Since(removedAt).Round(100*time.Millisecond))

	events := run.stop()
	var failures []error
	for _, ev := range events {
		if ev.err != nil {
			failures = append(failures, ev.err)
		}
	}
	t.Logf("%d requests, %d failed; to the removed routes: %d served before the removal, %d answered 404 after",
		len(events), len(failures), removedOK.Load(), removedGone.Load())
	if len(failures) > 0 {
		t.Errorf("%d requests failed across the changes, the first: %v", len(failures), errors.Join(failures[:min(3, len(failures))]...))
	}
	if removedOK.Load() == 0 || removedGone.Load() == 0 {
		t.Errorf("the removed routes answered %d before and %d after their removal: the load did not cross it", removedOK.Load(), removedGone.Load())
	}
	waitMetric(t, g, "switchyard_config_last_reload_successful", 1)
	if err := syscall.Kill(pid, 0); err != nil || g.envoyPID != pid {
		t.Errorf("envoy process %d is gone (%v): it was restarted", pid, err)
	}
	if now, want := envoyUptime(t, g), uptime+int(time.Since(began).Seconds())-1; now < want {
		t.Errorf("envoy uptime is %d s, want at least %d s: it was restarted", now, want)
	}
	if strings.Contains(g.extprocOut.String(), "rejected xds resources") {
		t.Errorf("envoy rejected a snapshot:\n%s", tail(g.extprocOut.String(), 3000))
	}
}

// servedWithin sends model's requests until served says an answer is the
// new config's, and returns how long after written that was; past within
// it fails the test.
func servedWithin(t *testing.T, g *gateway, written time.Time, within time.Duration, model string, served func(result) bool) time.Duration {
	t.Helper()
	for {
		r, err := g.try(t.Context(), "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"`+model+`"}`)
		if took := time.Since(written); err == nil && served(r) {
			if took > within {
				t.Errorf("%s: the change served %v after the file changed, want within %v", model, took.Round(time.Millisecond), within)
			}
			return took
		}
		if time.Since(written) > within {
			t.Fatalf("%s: the change is not served %v after the file changed: last answer %d %s (err %v)", model, within, r.status, r.body, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestXDSRejectedSnapshot: a config Switchyard accepts but Envoy rejects
// (the first https provider, while the CA bundle Envoy's bootstrap names
// does not exist on Envoy's host: Envoy NACKs the clusters) fails the
// reload: switchyard_xds_rejected_total rises, last_reload_successful is
// 0, and requests keep the old config (its url for alpha, no new route).
// A next good file serves.
func TestXDSRejectedSnapshot(t *testing.T) {
	t.Parallel()
	a, b, c := startUpstream(t, "A"), startUpstream(t, "B"), startUpstream(t, "C")
	base := standardConfig(a, b, "")
	g := startGateway(t, base, gatewayOptions{extraEnv: testEnv, extprocArgs: []string{"-xds"},
		envoyConfigArgs: []string{"-xds", "-ca-file", filepath.Join(t.TempDir(), "missing-ca.pem")}})
	moved := strings.Replace(base, fmt.Sprintf("url: http://127.0.0.1:%d\n", a.port()), fmt.Sprintf("url: http://127.0.0.1:%d\n", c.port()), 1)
	rejected := strings.Replace(moved, "providers:\n", "providers:\n  - {name: secure, url: 'https://127.0.0.1:9', schema: openai}\n", 1)
	rejected = strings.Replace(rejected, "routes:\n", "routes:\n  - {model: secure-model, provider: secure}\n", 1)

	replaceFile(t, g.configPath, rejected)
	waitMetricAtLeast(t, g, "switchyard_xds_rejected_total", 1)
	waitMetric(t, g, "switchyard_config_last_reload_successful", 0)
	if got := upstreamSaw(t, g.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)); got.Upstream != "A" {
		t.Errorf("after the rejected reload: gpt-exact routed to %q, want A (the old config's url)", got.Upstream)
	}
	if r := g.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"secure-model"}`); r.status != 404 {
		t.Errorf("after the rejected reload: the rejected config's route answered %d, want 404 (unknown to the old config): %s", r.status, r.body)
	}
	if out := g.extprocOut.String(); !strings.Contains(out, "envoy rejected xds resources") || !strings.Contains(out, "missing-ca.pem") {
		t.Errorf("the log does not say Envoy rejected the version and why:\n%s", tail(out, 3000))
	}

	replaceFile(t, g.configPath, moved)
	waitMetric(t, g, "switchyard_config_last_reload_successful", 1)
	if got := upstreamSaw(t, g.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)); got.Upstream != "C" {
		t.Errorf("after the next good file: gpt-exact routed to %q, want C", got.Upstream)
	}
}

// waitMetricAtLeast waits up to 5 s until series reaches want.
func waitMetricAtLeast(t *testing.T, g *gateway, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _ := metricValue(g.metrics(t), series)
		if v >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after 5 s, want at least %v", series, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestXDSBodyLimitLive: on ADS, max_body_bytes reloads live: raised, a body
// over the old limit passes whole (Envoy's buffers arrived over xDS before
// extproc took the new limit); lowered, a body over the new one gets 413.
// Requests sent meanwhile all succeed, and Envoy is the same process.
// In BUFFERED mode the limit also sizes the listener's per-connection
// buffer: Envoy gets a new listener and drains the old one's connections.
func TestXDSBodyLimitLive(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"BY_SIZE", "BUFFERED"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testBodyLimitLive(t, mode)
		})
	}
}

func testBodyLimitLive(t *testing.T, mode string) {
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	base := standardConfig(a, b, "")
	g := startGateway(t, base, gatewayOptions{extraEnv: testEnv, bodyMode: mode, extprocArgs: []string{"-xds"}, envoyConfigArgs: []string{"-xds"}})
	pid := g.envoyPID
	run := startLoad(load{workers: 8, timeout: 10 * time.Second}, func(ctx context.Context, i int64) (result, error) {
		r, err := g.try(ctx, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)
		if err == nil && r.status != 200 {
			err = fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return r, err
	})
	defer run.stop()
	body := func(n int) string { return `{"model":"gpt-exact","pad":"` + strings.Repeat("x", n) + `"}` }
	big := body(100 << 10)
	if r := g.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), big); r.status != 413 {
		t.Fatalf("a 100 KB body under a 64 KB limit: %d, want 413", r.status)
	}
	// wantStatus sends payload until it gets status, within 2 s of written.
	wantStatus := func(what string, written time.Time, payload string, status int) result {
		t.Helper()
		for {
			r, err := g.try(t.Context(), "POST", "/v1/chat/completions", bearer(clientKeyA), payload)
			if err == nil && r.status == status {
				t.Logf("%s: %d %v after the file changed", what, status, time.Since(written).Round(time.Millisecond))
				return r
			}
			if time.Since(written) > 2*time.Second {
				t.Fatalf("%s: not %d 2 s after the file changed: %d (err %v)", what, status, r.status, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	written := time.Now()
	replaceFile(t, g.configPath, strings.Replace(base, "max_body_bytes: 65536", "max_body_bytes: 262144", 1))
	if got := upstreamSaw(t, wantStatus("raised to 256 KB", written, big, 200)); got.BodyLen != len(big) {
		t.Errorf("upstream got %d bytes of %d", got.BodyLen, len(big))
	}
	run.waitRequests(t, 200)

	written = time.Now()
	replaceFile(t, g.configPath, strings.Replace(base, "max_body_bytes: 65536", "max_body_bytes: 1024", 1))
	wantStatus("lowered to 1 KB", written, body(5<<10), 413)
	run.waitRequests(t, 200)
	waitMetric(t, g, "switchyard_config_restart_required", 0)
	waitMetric(t, g, "switchyard_config_last_reload_successful", 1)

	events := run.stop()
	if n := reportFailures(t, events, "across the body limit changes"); n > 0 {
		t.Errorf("%d of %d requests failed", n, len(events))
	}
	if err := syscall.Kill(pid, 0); err != nil || g.envoyPID != pid {
		t.Errorf("envoy process %d is gone (%v): it was restarted", pid, err)
	}
}
