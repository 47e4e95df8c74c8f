package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"switchyard/envoy"
	"switchyard/internal/launch"
	"switchyard/internal/testkit"
	"switchyard/routing"
)

const minimalConfig = `providers:
  - name: mock
    url: http://127.0.0.1:8081
    schema: openai
routes:
  - model: "mock-*"
    provider: mock
`

func TestServeFlagErrorsAreCollected(t *testing.T) {
	t.Parallel()
	_, err := parseServeFlags([]string{"-config", "", "-grpc", "", "-log-level", "loud", "-log-format", "xml", "-drain-timeout", "0s", "-drain-quiet", "-1s", "extra"}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("parseServeFlags accepted bad flags")
	}
	for _, want := range []string{"unexpected arguments", "-config is required", "-grpc is required", "-log-level", "-log-format", "-drain-timeout", "-drain-quiet"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRunFailsOnBadFirstConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("providers: []\nbogus: 1\n"), 0o600)
	err := run(context.Background(), []string{"-config", path, "-grpc", "unix:" + filepath.Join(dir, "s.sock"), "-metrics", ""}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("run with an invalid config: %v, want an error naming the unknown field", err)
	}
}

func TestEnvoyConfigCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(minimalConfig), 0o600)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-listen", "12345", "-extproc", "unix:/run/x.sock"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"port_value: 12345", "path: /run/x.sock", "cluster_header: x-switchyard-cluster", "name: mock"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rendered config lacks %q", want)
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-upstream-idle-timeout", "7s", "-stream-idle-timeout", "9s", "-message-timeout", "3s"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"idle_timeout: 7s", "stream_idle_timeout: 9s", "message_timeout: 3s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("timeout flag not applied: rendered config lacks %q", want)
		}
	}
	// Longer than extproc keeps a request's plan: refused when printed;
	// over xDS (an Envoy printed before) built with the bound.
	long := []string{"-config", path, "-upstream-idle-timeout", "11m"}
	if err := run(context.Background(), append([]string{"envoy-config"}, long...), &out, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), "at most 10m") {
		t.Errorf("-upstream-idle-timeout 11m: %v, want it refused", err)
	}
	if _, err := buildXDS(append(long, "-extproc", "unix:/run/x.sock"), mustLoad(t, path), nil); err != nil {
		t.Errorf("xDS resources for an Envoy printed with -upstream-idle-timeout 11m: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-no-extproc"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "envoy.filters.http.ext_proc") || !strings.Contains(out.String(), "cluster: mock") {
		t.Errorf("-no-extproc config still has ext_proc or lacks the direct route:\n%s", out.String())
	}
	if strings.Contains(out.String(), "envoy.filters.http.buffer") {
		t.Error("-no-extproc config holds the body without -hold-body")
	}
	out.Reset()
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-no-extproc", "-hold-body"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "envoy.filters.http.buffer") {
		t.Errorf("-hold-body config lacks the buffer filter:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-hold-body"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("-hold-body with ext_proc rendered")
	}
	out.Reset()
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-no-extproc", "-body-module", "/opt/libswitchyard_body.so"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "/opt/libswitchyard_body.so") || strings.Contains(out.String(), "envoy.filters.http.ext_proc") {
		t.Errorf("-no-extproc -body-module config lacks the module or has ext_proc:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-listen", "0", "-admin", "0"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "port_value: 0}"); n != 2 {
		t.Errorf("-listen 0 -admin 0: %d ports rendered as 0, want the listener's and the admin's:\n%s", n, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"envoy-config", "-config", path, "-xds", "-body-mode", "BUFFERED"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dynamic_resources:", "cluster_name: switchyard_xds", envoy.NodeArgsKey + ":", "- BUFFERED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-xds: the bootstrap lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "name: mock") {
		t.Errorf("-xds: the bootstrap holds a provider's cluster, which comes over ADS:\n%s", out.String())
	}
	// extproc builds this Envoy's resources from the flags in its metadata.
	res, err := buildXDS([]string{"-config", path, "-xds", "-body-mode", "BUFFERED"}, mustLoad(t, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Listeners) != 1 || len(res.Routes) != 1 || len(res.Clusters) == 0 || res.ExtProc == nil {
		t.Errorf("xds resources: %d listeners, %d routes, %d clusters, ext_proc %v", len(res.Listeners), len(res.Routes), len(res.Clusters), res.ExtProc != nil)
	}
}

// TestConfigReload: a broken file keeps the running snapshot and flips the
// gauge; a good one swaps in and restores it; a change that needs a restart
// is refused and named.
func TestConfigReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(minimalConfig), 0o600)
	reg := prometheus.NewRegistry()
	var logs testkit.SyncBuffer
	h, err := newConfigHolder(path, slog.New(slog.NewJSONHandler(&logs, nil)), reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := h.Current()
	gauge := func(name string) float64 {
		t.Helper()
		v, err := testutil.GatherAndCount(reg, name)
		if err != nil || v != 1 {
			t.Fatalf("%s: %d series, %v", name, v, err)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}

	os.WriteFile(path, []byte("providers: [\n"), 0o600)
	if h.Reload() == nil || h.Current() != first {
		t.Error("a failed reload replaced the running config")
	}
	if got := gauge("switchyard_config_last_reload_successful"); got != 0 {
		t.Errorf("last_reload_successful = %v after a failure, want 0", got)
	}
	if !strings.Contains(logs.String(), "config reload refused") {
		t.Errorf("failure not logged: %s", logs.String())
	}

	os.WriteFile(path, []byte(minimalConfig+"  - model: extra\n    provider: mock\n"), 0o600)
	if err := h.Reload(); err != nil || h.Current() == first {
		t.Errorf("a good reload did not swap the config: %v", err)
	}
	if got := gauge("switchyard_config_last_reload_successful"); got != 1 {
		t.Errorf("last_reload_successful = %v after a good reload, want 1", got)
	}
	good := h.Current()

	os.WriteFile(path, []byte("max_body_bytes: 5\n"+minimalConfig), 0o600)
	err = h.Reload()
	if err == nil || !strings.Contains(err.Error(), "max_body_bytes") || h.Current() != good {
		t.Errorf("a body-limit change reloaded live (err %v)", err)
	}
	if got := gauge("switchyard_config_restart_required"); got != 1 {
		t.Errorf("restart_required = %v after a restart-only change, want 1", got)
	}
	if got := gauge("switchyard_config_last_reload_successful"); got != 0 {
		t.Errorf("last_reload_successful = %v after a refused reload, want 0", got)
	}
	if !strings.Contains(logs.String(), "max_body_bytes changed") {
		t.Errorf("the field that needs a restart is not logged: %s", logs.String())
	}

	os.WriteFile(path, []byte(minimalConfig), 0o600)
	if err := h.Reload(); err != nil || gauge("switchyard_config_restart_required") != 0 {
		t.Errorf("reverting the change: err %v, restart_required %v", err, gauge("switchyard_config_restart_required"))
	}
}

func TestLoggerRedactsCredentials(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log := newLogger(&b, serveFlags{logLevel: "debug", logFormat: "json"})
	log.Info("x", "authorization", "Bearer sk-secret", "X-Api-Key", "sk-2", "api-key", "sk-3", "model", "m")
	for _, secret := range []string{"sk-secret", "sk-2", "sk-3"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("log leaks %q: %s", secret, b.String())
		}
	}
	if !strings.Contains(b.String(), `"model":"m"`) {
		t.Errorf("ordinary attributes lost: %s", b.String())
	}
}

func TestRecoverStreamTurnsPanicIntoError(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	ic := recoverStream(slog.New(slog.NewJSONHandler(&logs, nil)))
	err := ic(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Process"}, func(any, grpc.ServerStream) error { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Errorf("error %v, want Internal", err)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

// TestServeHealthAndShutdown starts the server for real: the health service
// answers SERVING on the ext_proc socket, and cancelling the context drains
// and returns cleanly.
func TestServeHealthAndShutdown(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "swy") // short path: socket names are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(minimalConfig), 0o600)
	sock := filepath.Join(dir, "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var logs testkit.SyncBuffer
	done := make(chan error, 1)
	exited := make(chan struct{})
	addrFile := filepath.Join(dir, "addrs.json")
	go func() {
		done <- run(ctx, []string{"-config", cfg, "-grpc", "unix:" + sock, "-metrics", "", "-addr-file", addrFile}, &bytes.Buffer{}, &logs)
		close(exited)
	}()
	// The socket file appears at bind, before the socket listens: wait for
	// the address file, written once it does.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if _, err := launch.WaitExtproc(wctx, addrFile, exited); err != nil {
		t.Fatalf("server did not listen: %v\n%s", err, logs.String())
	}
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "envoy.service.ext_proc.v3.ExternalProcessor"} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, resp, err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
	if !strings.Contains(logs.String(), "extproc stopped") {
		t.Errorf("no orderly stop in the log: %s", logs.String())
	}
}

// TestServeReportsBoundAddresses: asked for port 0 on both listeners,
// extproc writes the ports it got to -addr-file and names them in its
// "serving" log line, and both answer there.
func TestServeReportsBoundAddresses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(minimalConfig), 0o600)
	addrFile := filepath.Join(dir, "addrs.json")
	ctx, cancel := context.WithCancel(context.Background())
	var logs testkit.SyncBuffer
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- run(ctx, []string{"-config", cfg, "-grpc", "127.0.0.1:0", "-metrics", "127.0.0.1:0", "-addr-file", addrFile}, &bytes.Buffer{}, &logs)
		close(exited)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	got, err := launch.WaitExtproc(wctx, addrFile, exited)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	for _, a := range []string{got.GRPC, got.Metrics} {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":0") {
			t.Fatalf("addresses %+v: want loopback ports the kernel picked", got)
		}
	}
	// The line is logged once serving starts, just after the file is written.
	want := fmt.Sprintf(`"msg":"extproc serving","grpc":%q,"metrics":%q`, got.GRPC, got.Metrics)
	for !strings.Contains(logs.String(), want) {
		if wctx.Err() != nil {
			t.Fatalf("log lacks %s:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	conn, err := grpc.NewClient(got.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(wctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health at %s: %v %v", got.GRPC, resp, err)
	}
	hr, err := http.Get("http://" + got.Metrics + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		t.Errorf("/healthz at %s: %d", got.Metrics, hr.StatusCode)
	}
}

func TestRateLimitConfigCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(minimalConfig+"rate_limit_service: {address: 'unix:/run/rls.sock'}\n"), 0o600)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"ratelimit-config", "-config", path}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\ndomain: switchyard\n") || errOut.Len() != 0 {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(minimalConfig+"rate_limit_service: {address: nowhere}\n"), 0o600)
	if err := run(context.Background(), []string{"ratelimit-config", "-config", bad}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "rate_limit_service.address") {
		t.Errorf("invalid config: %v", err)
	}
}

func mustLoad(t *testing.T, path string) *routing.Router {
	t.Helper()
	r, err := routing.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAdminDefaultsToLoopback: the admin address (the status page,
// /metrics, pprof) listens on loopback unless -metrics says otherwise.
func TestAdminDefaultsToLoopback(t *testing.T) {
	t.Parallel()
	f, err := parseServeFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(f.metricsAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		t.Errorf("default -metrics %q is not a loopback address", f.metricsAddr)
	}
}
