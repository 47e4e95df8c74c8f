package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchyard/internal/launch"
)

// HookScript is the typical Lua hook of the gateway_hook path: it copies a
// request header into another one, so the upstream can prove it ran.
const HookScript = `-- A typical hook: tag the request with the caller's team.
function on_request(req)
  req:set_header("x-team-seen", req:header("x-team") or "none")
end
`

// StackConfig says how to start the processes under test.
type StackConfig struct {
	// Dir holds the generated configs, sockets and process logs.
	Dir        string
	ExtprocBin string
	EnvoyBin   string
	// BodyModule is Envoy's body module (cmd/bodymodule), rendered for
	// every path with extproc in the default body mode, as `make run`
	// does; "" for none. A variant turns it off with
	// render:-body-module= (an extproc built before it must).
	BodyModule string
	// UpstreamURL is the mock's base URL, e.g. http://127.0.0.1:8081.
	UpstreamURL string
	// EnvoyConcurrency is each Envoy's --concurrency (worker threads);
	// 0 means 1, so that every Envoy uses at most one of the cores it
	// shares with the load generator, the mock and extproc.
	EnvoyConcurrency int
	// ExtprocEnv is added to every extproc's environment (KEY=VALUE), e.g.
	// GOMAXPROCS=1 or GOGC=200 to measure a runtime setting.
	ExtprocEnv []string
	// Session adds the gateway_session path: a weighted alias over two
	// clusters of the mock, every request with a session key, so that
	// session affinity (rendezvous hashing) runs on each request.
	Session bool
	// Features add one path each, gateway_FEATURE: the gateway path with
	// one feature on (Features lists them), measured in the same run.
	Features []string
	// EnvoyDefaultWorkers adds the envoy_default path: Envoy alone with
	// Envoy's own worker count (one per CPU), as `make run` starts it.
	EnvoyDefaultWorkers bool
	// EnvoyHeld adds the envoy_held path: Envoy alone holding each body
	// whole before it forwards it, as the gateway holds a big body while
	// it decides (what holding costs by itself).
	EnvoyHeld bool
	// EnvoyScan adds the envoy_scan path: Envoy alone holding and scanning
	// each body with the body module, as the gateway does a big one (what
	// one scan in place adds to Envoy alone). It needs BodyModule.
	EnvoyScan bool
	// Variants add one path each, gateway_NAME: the gateway path with
	// something changed, measured in the same interleaved run (A/B).
	Variants []Variant
	// LiteLLM, when set, is the litellm executable: it adds the litellm
	// path, a LiteLLM proxy in front of the same mock (a peer gateway).
	LiteLLM string
	// Null adds the null path: the gateway's Envoy config with a
	// processor that reads nothing and only routes (the floor of the
	// ext_proc hop, processor.NullServer).
	Null bool
	// Peers are gateways started by someone else, pointed at the mock:
	// each a path of its own (no process sampled unless it names PIDs).
	Peers []Peer
}

// Peer is another gateway to measure: its base URL, and the processes
// serving it, sampled as role "peer" when given.
type Peer struct {
	Name string
	URL  string
	PIDs []int
}

// Variant is what a gateway_NAME path changes against gateway.
type Variant struct {
	// Name makes the path gateway_Name.
	Name string
	// ExtprocBin replaces the extproc binary (e.g. one built from another
	// commit); empty keeps StackConfig.ExtprocBin.
	ExtprocBin string
	// ExtprocEnv is added after StackConfig.ExtprocEnv (later wins).
	ExtprocEnv []string
	// RenderArgs are added to `extproc envoy-config`, e.g.
	// "-grpc-client google".
	RenderArgs []string
	// ExtprocArgs are added to the extproc command line, e.g.
	// "-grpc-stream-workers=2".
	ExtprocArgs []string
}

// Stack is the set of processes behind the five paths: one Envoy without
// ext_proc, and three Envoy + extproc pairs: the gateway as shipped
// (BY_SIZE: a small body FULL_DUPLEX_STREAMED, one round trip for headers
// and body; one of 10,000 bytes or more BUFFERED), the same
// with the request body in BUFFERED mode (headers and body in two
// sequential round trips), and the shipped one with a Lua hook. Only
// gateway_hook runs a hook.
type Stack struct {
	// Paths are direct, envoy, gateway, gateway_buffered and gateway_hook,
	// in that order.
	Paths []Path
	procs []*process
	dir   string
}

// process is a started child; done closes when it has exited and been
// reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// HookTimeout is the per-hook budget of the gateway_hook path. The default
// (5ms) is meant for a gateway with cores to spare; on a loaded two-core
// benchmark machine a hook can wait that long for a CPU, and the resulting
// 500s would measure starvation, not the hook.
const HookTimeout = "25ms"

// NullCluster is the cluster the null path's processor routes every
// request to: the mock's, as the gateway config names it.
const NullCluster = "mock"

// gatewayConfig routes every model to the mock's OpenAI endpoints, and
// ModelAnthropic (the agent stages' Messages bodies) to its Messages
// endpoint, so that neither is translated.
func gatewayConfig(upstream, hooksDir string) string {
	c := "providers:\n  - name: mock\n    url: " + upstream + "\n    schema: openai\n    auth:\n      type: none\n" +
		"  - name: mock_anthropic\n    url: " + upstream + "\n    schema: anthropic\n    auth:\n      type: none\n" +
		"routes:\n  - model: " + ModelAnthropic + "\n    provider: mock_anthropic\n  - model: \"*\"\n    provider: mock\n"
	if hooksDir != "" {
		c += "hooks:\n  dir: " + strconv.Quote(hooksDir) + "\n  timeout: " + HookTimeout + "\n  failure_policy: fail_closed\n"
	}
	return c
}

// sessionGatewayConfig spreads every model 3:1 over two clusters of the
// same mock, so a session key has a choice to make.
func sessionGatewayConfig(upstream string) string {
	return "providers:\n" +
		"  - {name: mock, url: " + strconv.Quote(upstream) + ", schema: openai}\n" +
		"  - {name: mock_b, url: " + strconv.Quote(upstream) + ", schema: openai}\n" +
		"routes:\n  - model: \"*\"\n    targets:\n      - {provider: mock, weight: 3}\n      - {provider: mock_b, weight: 1}\n"
}

// A feature path is the gateway path with one feature on: its config and
// the headers every request carries.
type feature struct {
	config     func(upstream string) string
	headers    map[string]string
	renderArgs []string // added to `extproc envoy-config`
	env        []string // added to extproc's environment
	// upstreamEnv is added to extproc's environment too, for the upstream.
	upstreamEnv func(upstream string) []string
	// storeKeys, when set, runs extproc with a key store (-keys-file) of
	// this many keys, benchKey among them, and sends benchKey.
	storeKeys int
}

// benchKey is the client key of the paths with limits.
const benchKey = "sk-switchyard-bench"

// limitsConfig gives the gateway config one client key with budgets no
// run reaches: every request is counted against them, none refused.
func limitsConfig(budgets string) func(string) string {
	return func(upstream string) string {
		return gatewayConfig(upstream, "") + "client_keys:\n  - name: bench\n    key_env: SWITCHYARD_BENCH_KEY\n    limits: " + budgets + "\n"
	}
}

var limitsFeature = feature{headers: map[string]string{"authorization": "Bearer " + benchKey}, env: []string{"SWITCHYARD_BENCH_KEY=" + benchKey}}

// Features are the gateway features a run can measure, by name
// (gateway_NAME paths).
var Features = map[string]feature{
	// usage: every request's tokens counted (an observing response stream).
	"usage": {config: usageConfig},
	// usage_inline: the same with the filter Envoy waits for on each chunk
	// (the candidate observability mode was chosen over).
	"usage_inline": {config: usageConfig, renderArgs: []string{"-usage-inline"}},
	// translate: the chat requests reach a model served with the Messages
	// API, and the answers come back translated.
	"translate": {config: func(u string) string {
		return strings.Replace(gatewayConfig(u, ""), "schema: openai", "schema: anthropic", 1)
	}},
	// translate_messages: the Messages requests reach a model served with
	// chat completions (Claude Code's conversations sent to another
	// model), and the answers come back translated.
	"translate_messages": {config: func(u string) string {
		return strings.Replace(gatewayConfig(u, ""), "schema: anthropic", "schema: openai", 1)
	}},
	// rewrite: every request's model rewritten (the route's
	// rewrite_model), so its body changes: a big one travels to extproc
	// and back.
	"rewrite": {config: func(u string) string {
		return strings.Replace(gatewayConfig(u, ""), "    provider: mock\n", "    provider: mock\n    rewrite_model: "+rewrittenModel+"\n", 1)
	}},
	// limits_rpm: a client key with a requests-per-minute budget (the
	// embedded limiter); limits: with token budgets too, so every answer is
	// counted and charged.
	"limits_rpm": {config: limitsConfig("{requests_per_minute: 4000000000}"), headers: limitsFeature.headers, env: limitsFeature.env},
	"limits": {config: limitsConfig("{requests_per_minute: 4000000000, tokens_per_minute: 4000000000}"),
		headers: limitsFeature.headers, env: limitsFeature.env},
	// tracing: every request traced (and so counted), its spans exported
	// over OTLP/HTTP to the mock, which drops them; against usage, the
	// cost of the spans alone.
	"tracing": {config: func(u string) string { return usageConfig(u) + "tracing: {enabled: true}\n" },
		upstreamEnv: func(u string) []string {
			return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + u, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"}
		}},
	// keys_1, keys_100k: the client key is found in a key store of 1 or
	// 100,000 keys (issue 22: the lookup must not grow with the keys).
	"keys_1":    {config: plainConfig, headers: limitsFeature.headers, storeKeys: 1},
	"keys_100k": {config: plainConfig, headers: limitsFeature.headers, storeKeys: 100_000},
}

// rewrittenModel is the model the rewrite feature's upstream gets, and its
// answers name.
const rewrittenModel = "mock-rewritten"

func plainConfig(upstream string) string { return gatewayConfig(upstream, "") }

func usageConfig(upstream string) string {
	return gatewayConfig(upstream, "") + "usage: {enabled: true}\n"
}

// FeaturePath is the path name of the feature called name.
func FeaturePath(name string) string { return PathGateway + "_" + name }

// Path names of the stack, in the order StartStack returns them.
const (
	PathDirect          = "direct"
	PathEnvoy           = "envoy"
	PathGateway         = "gateway"
	PathGatewayBuffered = "gateway_buffered"
	PathGatewayHook     = "gateway_hook"
	// Optional paths (StackConfig).
	PathEnvoyDefault = "envoy_default"
	PathEnvoyHeld    = "envoy_held"
	PathEnvoyScan    = "envoy_scan"
	PathSession      = "gateway_session"
	PathLiteLLM      = "litellm"
	PathNull         = "null"
)

// VariantPath is the path name of the variant called name.
func VariantPath(name string) string { return PathGateway + "_" + name }

// StartStack starts the processes and waits until each is ready. On error
// it stops whatever it started.
func StartStack(ctx context.Context, cfg StackConfig) (_ *Stack, err error) {
	s := &Stack{dir: cfg.Dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	hooks := filepath.Join(cfg.Dir, "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return nil, fmt.Errorf("creating hooks dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "team.lua"), []byte(HookScript), 0o644); err != nil {
		return nil, fmt.Errorf("writing hook: %w", err)
	}
	plain := filepath.Join(cfg.Dir, "gateway.yaml")
	withHook := filepath.Join(cfg.Dir, "gateway_hook.yaml")
	if err := os.WriteFile(plain, []byte(gatewayConfig(cfg.UpstreamURL, "")), 0o644); err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}
	if err := os.WriteFile(withHook, []byte(gatewayConfig(cfg.UpstreamURL, hooks)), 0o644); err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}

	s.Paths = append(s.Paths, Path{Target: Target{Name: PathDirect, URL: cfg.UpstreamURL}})
	type instance struct {
		name, config string
		extproc      bool
		bodyMode     string // empty: the renderer's default (BY_SIZE)
		headers      map[string]string
		// defaultWorkers leaves Envoy's worker count to Envoy.
		defaultWorkers bool
		holdBody       bool // without ext_proc: Envoy holds each body whole
		scanBody       bool // without ext_proc: the body module holds and scans each body
		extprocBin     string
		extprocEnv     []string
		renderArgs     []string
		extprocArgs    []string
	}
	instances := []instance{
		{name: PathEnvoy, config: plain},
		{name: PathGateway, config: plain, extproc: true},
		{name: PathGatewayBuffered, config: plain, extproc: true, bodyMode: "BUFFERED"},
		{name: PathGatewayHook, config: withHook, extproc: true, headers: map[string]string{"x-team": "bench"}},
	}
	if cfg.EnvoyDefaultWorkers {
		instances = append(instances, instance{name: PathEnvoyDefault, config: plain, defaultWorkers: true})
	}
	if cfg.EnvoyHeld {
		instances = append(instances, instance{name: PathEnvoyHeld, config: plain, holdBody: true})
	}
	if cfg.EnvoyScan {
		if cfg.BodyModule == "" {
			return nil, fmt.Errorf("the %s path needs the body module", PathEnvoyScan)
		}
		instances = append(instances, instance{name: PathEnvoyScan, config: plain, scanBody: true})
	}
	if cfg.Session {
		sessionConfig := filepath.Join(cfg.Dir, "gateway_session.yaml")
		if err := os.WriteFile(sessionConfig, []byte(sessionGatewayConfig(cfg.UpstreamURL)), 0o644); err != nil {
			return nil, fmt.Errorf("writing config: %w", err)
		}
		instances = append(instances, instance{name: PathSession, config: sessionConfig, extproc: true,
			headers: map[string]string{"x-session-id": "bench-session-1"}})
	}
	for _, name := range cfg.Features {
		f, ok := Features[name]
		if !ok {
			return nil, fmt.Errorf("unknown feature %q", name)
		}
		file := filepath.Join(cfg.Dir, FeaturePath(name)+".yaml")
		if err := os.WriteFile(file, []byte(f.config(cfg.UpstreamURL)), 0o644); err != nil {
			return nil, fmt.Errorf("writing config: %w", err)
		}
		env := f.env
		if f.upstreamEnv != nil {
			env = append(slices.Clip(env), f.upstreamEnv(cfg.UpstreamURL)...)
		}
		in := instance{name: FeaturePath(name), config: file, extproc: true, headers: f.headers,
			renderArgs: f.renderArgs, extprocEnv: env}
		if f.storeKeys > 0 {
			store := filepath.Join(cfg.Dir, FeaturePath(name)+".keys.json")
			if err := writeKeyStore(store, f.storeKeys); err != nil {
				return nil, err
			}
			in.extprocArgs = []string{"-keys-file", store}
		}
		instances = append(instances, in)
	}
	if cfg.Null {
		instances = append(instances, instance{name: PathNull, config: plain, extproc: true, extprocArgs: []string{"-null-route", NullCluster}})
	}
	for _, v := range cfg.Variants {
		instances = append(instances, instance{name: VariantPath(v.Name), config: plain, extproc: true,
			extprocBin: v.ExtprocBin, extprocEnv: v.ExtprocEnv, renderArgs: v.RenderArgs, extprocArgs: v.ExtprocArgs})
	}
	for _, in := range instances {
		path := Path{Target: Target{Name: in.name, Headers: in.headers}}
		sock := filepath.Join(cfg.Dir, in.name+".sock")
		// Every process binds port 0 and reports the port it got.
		if in.extproc {
			addrFile := filepath.Join(cfg.Dir, "extproc_"+in.name+".addr")
			bin := cfg.ExtprocBin
			if in.extprocBin != "" {
				bin = in.extprocBin
			}
			env := append(slices.Clip(cfg.ExtprocEnv), in.extprocEnv...)
			args := append([]string{"-config", in.config, "-grpc", "unix:" + sock,
				"-metrics", "127.0.0.1:0", "-addr-file", addrFile, "-log-level", "warn"}, in.extprocArgs...)
			cmd, err := s.start(bin, "extproc_"+in.name, env, args...)
			if err != nil {
				return nil, err
			}
			wctx, cancel := context.WithTimeout(ctx, startTimeout)
			addrs, err := launch.WaitExtproc(wctx, addrFile, cmd.done)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("waiting for extproc_%s: %w%s", in.name, err, s.logTail("extproc_"+in.name))
			}
			path.Procs = append(path.Procs, Proc{Name: "extproc_" + in.name, Role: roleExtproc, PID: cmd.cmd.Process.Pid})
			path.MetricsURL = "http://" + addrs.Metrics
		}
		args := []string{"envoy-config", "-config", in.config, "-listen", "0", "-admin", "0", "-extproc", "unix:" + sock}
		if !in.extproc {
			args = append(args, "-no-extproc")
		}
		if in.holdBody {
			args = append(args, "-hold-body")
		}
		if in.bodyMode != "" {
			args = append(args, "-body-mode", in.bodyMode)
		}
		if in.scanBody || in.extproc && in.bodyMode == "" && cfg.BodyModule != "" {
			args = append(args, "-body-module", cfg.BodyModule)
		}
		args = append(args, in.renderArgs...)
		var stderr bytes.Buffer
		render := exec.CommandContext(ctx, cfg.ExtprocBin, args...)
		render.Env = append(os.Environ(), in.extprocEnv...) // the config's secrets
		render.Stderr = &stderr
		yaml, err := render.Output()
		if err != nil {
			return nil, fmt.Errorf("rendering envoy config for %s: %w: %s", in.name, err, stderr.String())
		}
		envoyConfig := filepath.Join(cfg.Dir, "envoy_"+in.name+".yaml")
		if err := os.WriteFile(envoyConfig, yaml, 0o644); err != nil {
			return nil, fmt.Errorf("writing envoy config: %w", err)
		}
		adminFile := filepath.Join(cfg.Dir, "envoy_"+in.name+".admin")
		envoyArgs := append([]string{"-c", envoyConfig, "--log-level", "warn"}, launch.EnvoyFlags(adminFile)...)
		if !in.defaultWorkers {
			envoyArgs = append(envoyArgs, "--concurrency", strconv.Itoa(max(1, cfg.EnvoyConcurrency)))
		}
		cmd, err := s.start(cfg.EnvoyBin, "envoy_"+in.name, nil, envoyArgs...)
		if err != nil {
			return nil, err
		}
		listener, admin, err := waitEnvoy(ctx, adminFile, cmd.done)
		if err != nil {
			return nil, fmt.Errorf("waiting for envoy_%s: %w%s", in.name, err, s.logTail("envoy_"+in.name))
		}
		path.URL = "http://" + listener
		path.AdminURL = "http://" + admin
		path.Procs = append([]Proc{{Name: "envoy_" + in.name, Role: roleEnvoy, PID: cmd.cmd.Process.Pid}}, path.Procs...)
		s.Paths = append(s.Paths, path)
	}
	if cfg.LiteLLM != "" {
		p, err := s.startLiteLLM(ctx, cfg)
		if err != nil {
			return nil, err
		}
		s.Paths = append(s.Paths, p)
	}
	for _, peer := range cfg.Peers {
		p := Path{Target: Target{Name: peer.Name, URL: strings.TrimSuffix(peer.URL, "/")}, Peer: true}
		for i, pid := range peer.PIDs {
			p.Procs = append(p.Procs, Proc{Name: peer.Name + "_" + strconv.Itoa(i), Role: RolePeer, PID: pid})
		}
		s.Paths = append(s.Paths, p)
	}
	return s, nil
}

// start runs bin with its output in DIR/name.log and env added to this
// process's environment.
func (s *Stack) start(bin, name string, env []string, args ...string) (*process, error) {
	if len(env) > 0 {
		env = append(os.Environ(), env...)
	}
	return s.startEnv(bin, name, env, args...)
}

// startEnv runs bin with its output in DIR/name.log and exactly env as its
// environment (nil: this process's).
func (s *Stack) startEnv(bin, name string, env []string, args ...string) (*process, error) {
	log, err := os.Create(filepath.Join(s.dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("creating log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	// The log file stays open in the child; the parent's copy can go.
	log.Close()
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *Stack) logTail(name string) string {
	b, err := os.ReadFile(filepath.Join(s.dir, name+".log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n" + name + " log:\n" + string(b)
}

// startTimeout bounds the wait for one process to be ready.
const startTimeout = 20 * time.Second

// waitEnvoy waits until the Envoy writing adminFile is ready and returns
// the addresses of its gateway listener and its admin interface.
func waitEnvoy(ctx context.Context, adminFile string, exited <-chan struct{}) (listener, admin string, err error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	admin, err = launch.WaitEnvoy(ctx, adminFile, exited)
	if err != nil {
		return "", "", err
	}
	listener, err = launch.EnvoyListener(ctx, admin, "switchyard")
	return listener, admin, err
}

// waitForLong polls ready until it holds, the process exits or 120s pass:
// for a Python server, whose imports alone can take most of 20s on a loaded
// two-core machine.
func waitForLong(ctx context.Context, p *process, ready func() bool) error {
	limit := 120 * time.Second
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ready() {
			return nil
		}
		select {
		case <-p.done:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s", limit)
}

// Close stops every process (SIGTERM, then SIGKILL after 10s), newest
// first.
func (s *Stack) Close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.procs = nil
}

// Preflight sends one request with x-mock-echo through every path and
// checks the answer: status 200, the model named in the request, and on
// the gateway_hook path the header the hook sets. It proves each path
// reaches the mock and the hook runs before anything is measured.
func Preflight(ctx context.Context, paths []Path) error {
	var errs []error
	for _, p := range paths {
		if err := preflight(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("path %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

func preflight(ctx context.Context, p Path) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := newRequest(ctx, p.Target, "/v1/chat/completions", chatBody(false))
	if err != nil {
		return err
	}
	req.Header.Set("x-mock-echo", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var got struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Model  string `json:"model"`
		Echo   *struct {
			Headers map[string]string `json:"headers"`
		} `json:"echo"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	if p.Name == PathLiteLLM || p.Name == FeaturePath("translate") || p.Peer {
		// A peer gateway does not pass x-mock-echo on, and a translated
		// answer has only the fields of the client's API; the mock's answer
		// (its id prefix and usage) shows the request reached it.
		if got.Object != "chat.completion" || !strings.HasPrefix(got.ID, "chatcmpl-mock") || !strings.Contains(got.Model, Model) {
			return fmt.Errorf("unexpected answer %s", body)
		}
		return nil
	}
	want := Model
	if p.Name == FeaturePath("rewrite") {
		want = rewrittenModel // the check that it was rewritten
	}
	if got.Object != "chat.completion" || got.Model != want || got.Echo == nil {
		return fmt.Errorf("unexpected answer %s", body)
	}
	seen, ok := got.Echo.Headers["x-team-seen"]
	if hook := p.Name == PathGatewayHook; hook && seen != p.Headers["x-team"] {
		return fmt.Errorf("hook did not run: upstream saw x-team-seen %q", seen)
	} else if !hook && ok {
		return fmt.Errorf("a hook ran on a path without hooks (x-team-seen %q)", seen)
	}
	return nil
}
