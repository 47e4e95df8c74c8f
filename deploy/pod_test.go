package deploy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchyard/envoy"
	"switchyard/internal/launch"
)

// localPod is the pod's two containers run as local processes: extproc
// with the pod's flags and config, Envoy with the pod's flags and a
// bootstrap printed with the pod's envoy-config flags (its ports 0, its
// paths under a temporary directory, the body module its image carries
// built from this tree). The config directory is laid out as the kubelet
// mounts a ConfigMap: the file links into ..data, itself a link to a
// timestamped directory.
type localPod struct {
	pod
	objects *objects
	// local moves a path of the pod under the test's directory.
	local func(string) string
	// up answers OpenAI's requests.
	up *heldUpstream
	// url is the gateway's chat completions URL; admin Envoy's admin
	// address, metrics extproc's.
	url, admin, metrics string
	// envoyExited closes if Envoy exits.
	envoyExited <-chan struct{}
}

func startPod(t *testing.T) *localPod {
	t.Helper()
	envoyBin, err := launch.FindEnvoy("", envoy.Version)
	if err != nil {
		t.Fatal(err)
	}
	o := mustRender(t, baseDir)
	lp := &localPod{pod: switchyardPod(t, o), objects: o, up: newHeldUpstream(t)}
	p := lp.pod
	dir := t.TempDir()
	lp.local = strings.NewReplacer("/etc/switchyard/", dir+"/etc/", "/run/switchyard/", dir+"/run/", "/etc/envoy/", dir+"/envoy/",
		envoy.ImageBodyModule, bodyModuleLib, "https://api.openai.com", lp.up.URL).Replace
	local := lp.local
	for _, d := range []string{"etc/config", "etc/hooks", "etc/keys", "run", "envoy"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lp.swapConfig(t, "..2026_12_04_00_00_00.1", local(o.configMaps["switchyard-config"].Data["switchyard.yaml"]))
	for name, script := range o.configMaps["switchyard-hooks"].Data {
		write(t, local("/etc/switchyard/hooks/"+name), script)
	}
	write(t, local("/etc/switchyard/keys/openai"), "sk-test\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	addrFile := filepath.Join(dir, "extproc.addr")
	args := localArgs(p.extproc.Args, local, map[string]string{"-metrics": "127.0.0.1:0"})
	ext := start(t, extprocBin, append(args, "-addr-file", addrFile))
	ex, err := launch.WaitExtproc(ctx, addrFile, ext)
	if err != nil {
		t.Fatal(err)
	}
	lp.metrics = ex.Metrics

	bootstrap := configMapByPrefix(t, o, "switchyard-envoy-").Data["envoy.yaml"]
	ecArgs := localArgs(bootstrapArgs(t, []byte(bootstrap)), local, map[string]string{"-listen": "0", "-admin": "0"})
	write(t, local(p.envoyArgs["-c"]), string(extproc(t, baseDir, append([]string{"envoy-config"}, ecArgs...)...)))
	adminFile := filepath.Join(dir, "envoy.admin")
	envoyArgs := append(localArgs(p.envoy.Args, local, nil), "--admin-address-path", adminFile, "--use-dynamic-base-id")
	lp.envoyExited = start(t, envoyBin, envoyArgs)
	if lp.admin, err = launch.WaitEnvoy(ctx, adminFile, lp.envoyExited); err != nil {
		t.Fatal(err)
	}
	listener, err := launch.EnvoyListener(ctx, lp.admin, "switchyard")
	if err != nil {
		t.Fatal(err)
	}
	lp.url = "http://" + listener + "/v1/chat/completions"
	return lp
}

// TestPodKeepsBigBodiesInEnvoy: the pod's Envoy loads the body module, so
// a big body stays in Envoy, which summarizes it for extproc; the pod's
// hook runs on it, and it goes on to the provider as it came.
func TestPodKeepsBigBodiesInEnvoy(t *testing.T) {
	t.Parallel()
	lp := startPod(t)
	close(lp.up.release)
	summarized := func() float64 {
		_, m := get(t, "http://"+lp.metrics+"/metrics")
		for _, line := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(line, `switchyard_request_body_mode_total{mode="summarized"} `); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return 0
	}
	body := `{"messages":[{"role":"user","content":"` + strings.Repeat("an agent's long conversation. ", 1000) + `"}],"model":"gpt-4o"}`
	before := summarized()
	if status, answer, _ := post(t, lp.url, body); status != http.StatusOK {
		t.Fatalf("a %d-byte request through the pod: %d %s", len(body), status, answer)
	}
	if got := <-lp.up.bodies; got != body {
		t.Errorf("the provider got %d bytes, not the client's %d", len(got), len(body))
	}
	if after := summarized(); after != before+1 {
		t.Errorf("summarized requests %v -> %v, want one more: the pod's Envoy did not keep the body", before, after)
	}
	// The pod's hook (tag_from_header.lua) ran on it, from the headers.
	if _, m := get(t, "http://"+lp.metrics+"/metrics"); !strings.Contains(m, `switchyard_tagged_requests_total{tag="app",value="unknown"} 1`) {
		t.Error("the pod's hook did not tag the request")
	}
}

// swapConfig puts config in the pod's config directory as the kubelet
// updates a mounted ConfigMap: a new timestamped directory, a ..data_tmp
// link to it renamed over ..data.
func (lp *localPod) swapConfig(t *testing.T, stamp, config string) {
	t.Helper()
	file := lp.local(lp.serve["-config"])
	dir, name := filepath.Dir(file), filepath.Base(file)
	if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, stamp, name), config)
	if err := os.Symlink(stamp, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(file); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", name), file); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPodOnThisMachine runs the pod on this machine (startPod): Envoy must
// get its listener over xDS and answer through extproc, and the pod's own
// probe and preStop scripts run against it: ready, then drained, with a
// request in flight answered, and no longer ready.
func TestPodOnThisMachine(t *testing.T) {
	t.Parallel()
	lp := startPod(t)
	p, url, admin := lp.pod, lp.url, lp.admin
	// Anthropic's key file is not there: extproc answers, naming it.
	status, body, _ := post(t, url, claudeRequest)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "key file") {
		t.Errorf("a request through the pod's Envoy: %d %s, want extproc's 503 about the missing key file", status, body)
	}
	if status, _ := get(t, "http://"+lp.metrics+p.extproc.ReadinessProbe.HTTPGet.Path); status != http.StatusOK {
		t.Errorf("extproc readiness: %d", status)
	}

	_, port, _ := net.SplitHostPort(admin)
	probe := p.envoy.ReadinessProbe.Exec.Command
	if err := runScript(probe, port); err != nil {
		t.Fatalf("envoy's readiness probe fails on a ready Envoy: %v", err)
	}

	// A request in flight when the pod is told to stop: the preStop must
	// wait for it, and it must be answered.
	held := make(chan string, 1)
	go func() {
		status, body, _ := post(t, url, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
		held <- fmt.Sprint(status, " ", body)
	}()
	<-lp.up.arrived
	began := time.Now()
	preStop := make(chan error, 1)
	go func() { preStop <- runScript(p.envoy.Lifecycle.PreStop.Exec.Command, port) }()
	waitFor(t, "envoy's readiness probe to fail after the preStop began", func() bool { return runScript(probe, port) != nil })
	// Draining: each answer tells an HTTP/1.1 client to reconnect elsewhere.
	if _, _, closed := post(t, url, claudeRequest); !closed {
		t.Error("an answer during the drain does not close the connection")
	}
	// Past the preStop's first wait, the held request keeps it waiting.
	time.Sleep(time.Until(began.Add(envoyPreStopFirstWait(t, p.envoy) + time.Second)))
	select {
	case err := <-preStop:
		t.Fatalf("envoy's preStop ended (%v) with a request in flight", err)
	default:
	}
	close(lp.up.release)
	if got := <-held; !strings.HasPrefix(got, "200 ") {
		t.Errorf("the request in flight during the drain: %s, want 200", got)
	}
	if err := <-preStop; err != nil {
		t.Fatalf("envoy's preStop: %v", err)
	}
	if took, bound := time.Since(began), envoyPreStopBound(t, p.envoy); took > bound {
		t.Errorf("envoy's preStop took %v, more than its bound %v", took, bound)
	}
	if err := runScript(probe, port); err == nil {
		t.Error("envoy's readiness probe passes after the preStop drain")
	}
	select {
	case <-lp.envoyExited:
		t.Error("envoy exited during its preStop drain: Kubernetes would not have sent SIGTERM yet")
	default:
	}
}

// localArgs is args with every path moved by local and the flags in set
// given other values.
func localArgs(args []string, local func(string) string, set map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = local(a)
		if v, ok := set[args[max(i-1, 0)]]; ok && i > 0 {
			out[i] = v
		}
	}
	return out
}

// runScript runs a probe's or hook's command with the container's
// ENVOY_ADMIN_PORT.
func runScript(command []string, adminPort string) error {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(os.Environ(), "ENVOY_ADMIN_PORT="+adminPort)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &scriptError{err, string(out)}
	}
	return nil
}

type scriptError struct {
	err error
	out string
}

func (e *scriptError) Error() string { return e.err.Error() + ": " + e.out }

// start runs bin with args until the test ends; the channel closes when it
// has exited.
func start(t *testing.T, bin string, args []string) <-chan struct{} {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logs, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(bin)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("%s:\n%s", filepath.Base(bin), tail(string(b), 20))
		}
	})
	return done
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

const claudeRequest = `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`

// post sends body and returns the answer, and whether it closed the
// connection. It may run on another goroutine than the test's.
func post(t *testing.T, url, body string) (int, string, bool) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, err.Error(), false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Close
}

// heldUpstream answers a chat completion once release is closed; arrived
// receives each request as it comes, bodies its body.
type heldUpstream struct {
	*httptest.Server
	arrived chan struct{}
	bodies  chan string
	release chan struct{}
}

func newHeldUpstream(t *testing.T) *heldUpstream {
	u := &heldUpstream{arrived: make(chan struct{}, 10), bodies: make(chan string, 10), release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case u.bodies <- string(b):
		default:
		}
		u.arrived <- struct{}{}
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("content-type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPodConfigMapUpdateIsLive updates the pod's config as the kubelet
// does after `kubectl apply -k` (the ..data swap) with a new provider and
// route: Envoy gets the provider's cluster over xDS without a restart, and
// a request for the new route reaches it.
func TestPodConfigMapUpdateIsLive(t *testing.T) {
	t.Parallel()
	lp := startPod(t)
	extra := newHeldUpstream(t)
	close(extra.release)
	config := lp.local(lp.objects.configMaps["switchyard-config"].Data["switchyard.yaml"])
	config = strings.Replace(config, "\nroutes:\n", "\nroutes:\n  - model: \"extra-*\"\n    provider: extra\n", 1)
	config = strings.Replace(config, "\nproviders:\n", "\nproviders:\n  - name: extra\n    url: "+extra.URL+"\n    schema: openai\n", 1)
	swapped := time.Now()
	lp.swapConfig(t, "..2026_12_04_00_01_00.2", config)

	// extproc serves the new config once Envoy has acknowledged the
	// cluster, a moment after Envoy lists it: until then the old config
	// answers 404 for the new model, never a failure.
	var status int
	var body string
	waitFor(t, "the new route to be served", func() bool {
		status, body, _ = post(t, lp.url, `{"model":"extra-1","messages":[{"role":"user","content":"hi"}]}`)
		if status != http.StatusOK && status != http.StatusNotFound {
			t.Fatalf("a request for the new route during the reload: %d %s", status, body)
		}
		return status == http.StatusOK
	})
	t.Logf("the new route served %v after the swap", time.Since(swapped).Round(time.Millisecond))
	if _, clusters := get(t, "http://"+lp.admin+"/clusters"); !strings.Contains(clusters, "\nextra::") {
		t.Error("Envoy serves the new route but lists no cluster for its provider")
	}
	select {
	case <-extra.arrived:
	default:
		t.Error("the new provider received nothing")
	}
}
