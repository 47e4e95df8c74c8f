package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestXDSHooksSectionLive: on ADS the hooks section reloads live: hooks
// turned on from none (on_request and on_response), their failure policy
// and timeout changed, and turned off again, each seen by requests within
// 2 s of the file changing, and one that cannot be built refused, while 8
// clients send requests on kept-alive connections: none fails, and Envoy is
// the same process throughout.
func TestXDSHooksSectionLive(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	base := standardConfig(a, b, "")
	g := startGateway(t, base, gatewayOptions{extraEnv: testEnv, extprocArgs: []string{"-xds"}, envoyConfigArgs: []string{"-xds"}})
	pid, uptime := g.envoyPID, envoyUptime(t, g)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "live.lua"), `function on_request(req)
  if req:header("x-fail") then error("asked to fail") end
  req:set_header("x-live-hook", "on")
end
function on_response(res)
  res:set_header("x-live-resp", "on")
end
`)
	withHooks := func(timeout, policy string) string {
		return base + fmt.Sprintf("hooks:\n  dir: %s\n  timeout: %s\n  failure_policy: %s\n", dir, timeout, policy)
	}

	run := startLoad(load{workers: 8, timeout: 10 * time.Second}, func(ctx context.Context, i int64) (result, error) {
		r, err := g.try(ctx, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`)
		if err == nil && r.status != 200 {
			err = fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return r, err
	})
	defer run.stop()
	run.waitRequests(t, 100)

	// within polls until a request with headers h shows ok, 2 s at most
	// after written.
	within := func(what string, written time.Time, h map[string]string, ok func(result) bool) {
		t.Helper()
		for {
			r, err := g.try(t.Context(), "POST", "/v1/chat/completions", h, `{"model":"gpt-exact"}`)
			if err == nil && ok(r) {
				t.Logf("%s: %v after the file changed", what, time.Since(written).Round(time.Millisecond))
				return
			}
			if time.Since(written) > 2*time.Second {
				t.Fatalf("%s: not seen 2 s after the file changed: status %d, headers %v (err %v)", what, r.status, r.header, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	hooked := func(r result) bool {
		return r.status == 200 && upstreamSaw(t, r).Headers["x-live-hook"] == "on" && r.header.Get("x-live-resp") == "on"
	}
	failing := bearer(clientKeyA)
	failing["x-fail"] = "1"

	written := time.Now()
	replaceFile(t, g.configPath, withHooks("250ms", "fail_closed"))
	within("hooks on", written, bearer(clientKeyA), hooked)
	if r := g.do(t, "POST", "/v1/chat/completions", failing, `{"model":"gpt-exact"}`); r.status == 200 {
		t.Errorf("a failing hook under fail_closed: 200, want an error")
	}
	run.waitRequests(t, 100)

	written = time.Now()
	replaceFile(t, g.configPath, withHooks("100ms", "fail_open"))
	within("fail_open", written, failing, func(r result) bool { return r.status == 200 })
	waitMetric(t, g, "switchyard_hooks_version", 2)
	run.waitRequests(t, 100)

	// A hooks section that cannot be built refuses the reload: the running
	// hooks keep serving.
	replaceFile(t, g.configPath, base+"hooks:\n  dir: "+filepath.Join(dir, "missing")+"\n")
	waitMetric(t, g, "switchyard_config_last_reload_successful", 0)
	if r := g.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`); !hooked(r) {
		t.Errorf("after a refused hooks section: status %d, upstream saw x-live-hook %q, x-live-resp %q", r.status, upstreamSaw(t, r).Headers["x-live-hook"], r.header.Get("x-live-resp"))
	}

	written = time.Now()
	replaceFile(t, g.configPath, base)
	within("hooks off", written, bearer(clientKeyA), func(r result) bool {
		return r.status == 200 && upstreamSaw(t, r).Headers["x-live-hook"] == "" && r.header.Get("x-live-resp") == ""
	})
	run.waitRequests(t, 100)
	waitMetric(t, g, "switchyard_config_last_reload_successful", 1)
	waitMetric(t, g, "switchyard_config_restart_required", 0)

	events := run.stop()
	if n := reportFailures(t, events, "across the hooks changes"); n > 0 {
		t.Errorf("%d of %d requests failed", n, len(events))
	}
	t.Logf("%d requests, 0 failed", len(events))
	if err := syscall.Kill(pid, 0); err != nil || g.envoyPID != pid {
		t.Errorf("envoy process %d is gone (%v): it was restarted", pid, err)
	}
	if now := envoyUptime(t, g); now < uptime {
		t.Errorf("envoy uptime went from %d s to %d s: it was restarted", uptime, now)
	}
}
