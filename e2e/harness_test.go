// Package e2e proves the gateway's Envoy-dependent behaviour end to end: the
// real Envoy binary, the real extproc binary and fake upstreams on loopback.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchyard/envoy"
	"switchyard/internal/launch"
	"switchyard/internal/testkit"
)

var (
	envoyBin   string
	extprocBin string
	// binDir holds what the tests build: extproc, and Envoy's body module
	// when a test asks for it.
	binDir string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	envoyBin, err = launch.FindEnvoy("", envoy.Version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the end-to-end tests never skip:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "switchyard-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if extprocBin, err = testkit.BuildExtproc(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// child is a started process; done closes once it has exited and been
// reaped, and err is its exit error from then on.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(cmd *exec.Cmd) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

// stop sends sig and waits for the exit, killing the process after grace.
func (c *child) stop(sig os.Signal, grace time.Duration) {
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// allXDS runs every gateway with Envoy on ADS (SWY_E2E_XDS=1): the suite
// that must pass before -xds can become the default.
var allXDS = os.Getenv("SWY_E2E_XDS") == "1"

type gatewayOptions struct {
	bodyMode   string // "" = default (full duplex)
	failOpen   bool
	extraEnv   []string // extproc's and Envoy's
	logLevel   string
	noExtProc  bool // do not start extproc (it may be started later)
	hooksDir   string
	configFile string // written by the caller instead of config text
	// envoyConfigArgs are extra `extproc envoy-config` flags, e.g.
	// {"-upstream-idle-timeout", "1s"}.
	envoyConfigArgs []string
	// extprocArgs are extra extproc serve flags, e.g. {"-max-streams", "8"};
	// they come after the harness's own, so a repeated flag overrides it.
	extprocArgs []string
	// check decides bodies the module kept over extproc's check listener
	// (extproc and envoy-config -check).
	check bool
}

// gateway is one Envoy + extproc pair on loopback. Every process binds
// port 0 and reports the port it got: nothing is picked in advance.
type gateway struct {
	t          testing.TB
	dir        string
	configPath string
	sock       string
	url        string // Envoy's gateway listener
	adminAddr  string // Envoy's admin interface, host:port
	opts       gatewayOptions

	mu          sync.Mutex
	extproc     *child
	starts      int                 // extproc starts so far
	metricsAddr string              // the admin address of the latest extproc; a restart changes it
	extprocOut  *testkit.SyncBuffer // every extproc start's output, for failure messages and log checks
	envoyOut    *testkit.SyncBuffer
	envoyPID    int
}

// startGateway writes config, starts extproc and Envoy and waits until a
// request can pass.
func startGateway(t testing.TB, config string, opts gatewayOptions) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{
		t: t, dir: dir, opts: opts,
		configPath: filepath.Join(dir, "switchyard.yaml"),
		sock:       filepath.Join(dir, "extproc.sock"),
		extprocOut: &testkit.SyncBuffer{},
		envoyOut:   &testkit.SyncBuffer{},
	}
	if opts.configFile != "" {
		g.configPath = opts.configFile
	} else if err := os.WriteFile(g.configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered before anything starts, so a start that fails half-way
	// leaves no extproc running.
	t.Cleanup(func() {
		g.stopExtproc()
		if t.Failed() {
			t.Logf("extproc output:\n%s", tail(g.extprocOut.String(), 4000))
			t.Logf("envoy output:\n%s", tail(g.envoyOut.String(), 4000))
		}
	})
	if !opts.noExtProc {
		g.startExtproc()
	}
	g.startEnvoy()
	return g
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// startExtproc starts extproc and waits until it listens. Its admin
// listener gets a new port each time: metricsAddr follows it.
func (g *gateway) startExtproc() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	level := g.opts.logLevel
	if level == "" {
		level = "info"
	}
	g.starts++
	addrFile := filepath.Join(g.dir, fmt.Sprintf("extproc-%d.addr", g.starts))
	cmd := exec.Command(extprocBin, "-config", g.configPath, "-grpc", "unix:"+g.sock,
		"-metrics", "127.0.0.1:0", "-addr-file", addrFile, "-log-level", level, "-drain-timeout", "10s")
	if g.opts.check {
		cmd.Args = append(cmd.Args, "-check", g.checkAddr())
	}
	cmd.Args = append(cmd.Args, g.opts.extprocArgs...)
	if allXDS {
		cmd.Args = append(cmd.Args, "-xds")
	}
	cmd.Env = append(os.Environ(), g.opts.extraEnv...)
	cmd.Stdout, cmd.Stderr = g.extprocOut, g.extprocOut
	c, err := startChild(cmd)
	if err != nil {
		g.t.Fatalf("starting extproc: %v", err)
	}
	g.extproc = c
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := launch.WaitExtproc(ctx, addrFile, c.done)
	if err != nil {
		g.t.Fatalf("extproc did not listen: %v\n%s", err, g.extprocOut.String())
	}
	g.metricsAddr = addrs.Metrics
}

// takeExtproc returns the running extproc, if any, and forgets it.
func (g *gateway) takeExtproc() *child {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.extproc
	g.extproc = nil
	return c
}

// stopExtproc sends SIGINT and waits for the process to exit.
func (g *gateway) stopExtproc() {
	if c := g.takeExtproc(); c != nil {
		c.stop(os.Interrupt, 15*time.Second)
	}
}

// killExtproc kills extproc without a chance to drain.
func (g *gateway) killExtproc() {
	if c := g.takeExtproc(); c != nil {
		c.stop(os.Kill, 0)
	}
}

// extprocPID returns the running extproc's process id, or 0 when it is not running.
func (g *gateway) extprocPID() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.extproc == nil {
		return 0
	}
	return g.extproc.cmd.Process.Pid
}

// terminateExtproc sends SIGTERM without waiting. The channel yields the
// process's exit error (nil for exit status 0) once it has exited; the
// harness kills it at cleanup if it is still running.
func (g *gateway) terminateExtproc() <-chan error {
	c := g.takeExtproc()
	done := make(chan error, 1)
	if c == nil {
		done <- fmt.Errorf("extproc is not running")
		return done
	}
	go func() { <-c.done; done <- c.err }()
	g.t.Cleanup(func() {
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	return done
}

// metricsURL is the base URL of the latest extproc's admin listener.
func (g *gateway) metricsURL() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return "http://" + g.metricsAddr
}

// envoyAdmin returns the body of an Envoy admin endpoint, e.g. "/stats".
func (g *gateway) envoyAdmin(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + g.adminAddr + path)
	if err != nil {
		t.Fatalf("reading envoy admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading envoy admin %s: %v", path, err)
	}
	return string(b)
}

// checkAddr is extproc's check listener, beside its gRPC socket.
func (g *gateway) checkAddr() string { return "unix:" + filepath.Join(g.dir, "check.sock") }

// startEnvoy starts Envoy on free ports and waits until it is ready; the
// admin API says which port the gateway listener got.
func (g *gateway) startEnvoy() {
	g.t.Helper()
	args := []string{"envoy-config", "-config", g.configPath, "-listen", "0", "-admin", "0", "-extproc", "unix:" + g.sock}
	if g.opts.bodyMode != "" {
		args = append(args, "-body-mode", g.opts.bodyMode)
	}
	if g.opts.failOpen {
		args = append(args, "-fail-open")
	}
	if g.opts.check {
		args = append(args, "-check", g.checkAddr())
	}
	args = append(args, g.opts.envoyConfigArgs...)
	if allXDS {
		args = append(args, "-xds")
	}
	cmd := exec.Command(extprocBin, args...)
	cmd.Env = append(os.Environ(), g.opts.extraEnv...)
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("rendering envoy config: %v\n%s", err, exitStderr(err))
	}
	envoyConfig := filepath.Join(g.dir, "envoy.yaml")
	if err := os.WriteFile(envoyConfig, out, 0o600); err != nil {
		g.t.Fatal(err)
	}
	adminFile := filepath.Join(g.dir, "envoy-admin.addr")
	envoyCmd := exec.Command(envoyBin, "-c", envoyConfig, "--concurrency", "1", "--log-level", "warn", "--component-log-level", os.Getenv("SWY_ENVOY_COMPONENT_LOG"))
	envoyCmd.Args = append(envoyCmd.Args, launch.EnvoyFlags(adminFile)...)
	envoyCmd.Env = append(os.Environ(), g.opts.extraEnv...)
	envoyCmd.Stdout, envoyCmd.Stderr = g.envoyOut, g.envoyOut
	c, err := startChild(envoyCmd)
	if err != nil {
		g.t.Fatalf("starting envoy: %v", err)
	}
	g.envoyPID = envoyCmd.Process.Pid
	g.t.Cleanup(func() { c.stop(os.Interrupt, 10*time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := launch.WaitEnvoy(ctx, adminFile, c.done)
	if err != nil {
		g.t.Fatalf("envoy did not become ready: %v\n%s", err, g.envoyOut.String())
	}
	listener, err := launch.EnvoyListener(ctx, admin, "switchyard")
	if err != nil {
		g.t.Fatalf("%v\n%s", err, g.envoyOut.String())
	}
	g.adminAddr, g.url = admin, "http://"+listener
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// result is a response read whole.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response (%d) is not JSON: %v\n%s", r.status, err, r.body)
	}
	return m
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func (g *gateway) do(t testing.TB, method, path string, headers map[string]string, body string) result {
	t.Helper()
	r, err := g.try(context.Background(), method, path, headers, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (g *gateway) try(ctx context.Context, method, path string, headers map[string]string, body string) (result, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, rd)
	if err != nil {
		return result{}, err
	}
	if body != "" {
		req.Header.Set("content-type", "application/json")
	}
	for k, v := range headers {
		if k == "host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return roundTrip(req)
}

// roundTrip sends req with the tests' client and reads the whole answer.
func roundTrip(req *http.Request) (result, error) {
	resp, err := client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (g *gateway) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(g.metricsURL() + "/metrics")
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// replaceFile writes content beside path and renames it into place, as
// editors and config management do, so a watcher never reads half a file.
func replaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
