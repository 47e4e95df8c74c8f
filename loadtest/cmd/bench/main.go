// Command bench measures what Switchyard adds to an LLM call on this
// machine. It starts the mock upstream in process, one Envoy without
// ext_proc and three Envoy + extproc pairs (the shipped one-round-trip
// FULL_DUPLEX_STREAMED mode, BUFFERED, and the shipped mode with a Lua hook)
// on loopback, drives the same chat request through the five paths, and
// writes results/<timestamp>/ with results.json, results.md and PNG charts.
//
//	go run ./loadtest/cmd/bench            # quick mode, about 2 minutes
//	go run ./loadtest/cmd/bench -full      # every VU stage, two rounds, about 27 minutes
//	go run ./loadtest/cmd/bench -kinds agent -bodies 1KB,32KB,256KB,1MB   # agent-shaped bodies
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"switchyard/envoy"
	"switchyard/internal/launch"
	"switchyard/loadtest/agentbody"
	"switchyard/loadtest/bench"
	"switchyard/loadtest/mockllm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

type flags struct {
	quick, full bool
	out         string
	envoy       string
	extproc     string
	bodyModule  string // "" builds it, "none" runs without
	latency     time.Duration
	rounds      int
	paths       []string      // empty: every path
	vus         []int         // empty: the mode's VU stages
	duration    time.Duration // 0: the mode's stage durations
	settle      time.Duration // 0: no reading after the load
	envoyConc   int
	extprocEnv  []string
	render      string // a results.json to render again instead of measuring
	// envoyDefault adds the envoy_default path (Envoy alone, one worker per CPU as `make run` starts it).
	envoyDefault bool
	// envoyHeld adds the envoy_held path (Envoy alone holding each body whole).
	envoyHeld bool
	// envoyScan adds the envoy_scan path (Envoy alone scanning each body
	// with the body module).
	envoyScan bool
	// session adds the gateway_session path (session affinity on every request).
	session bool
	// features add gateway_FEATURE paths (bench.Features).
	features []string
	peers    []string // "litellm"
	litellm  string   // the litellm executable
	// variants add gateway_NAME paths (A/B in the same run).
	variants []bench.Variant
	// check compares the run's CPU ratios with the figures in this file
	// (make bench-check); checkUpdate writes them there instead.
	check       string
	checkUpdate bool
	// kinds keeps only these kinds of stage (empty: all).
	kinds []string
	// bodySizes, bodyAPIs and bodyLangs make the agent stages' bodies
	// (every API in every language at every size); agentVUs are their VU
	// stages.
	bodySizes []int
	bodyAPIs  []agentbody.API
	bodyLangs []string
	agentVUs  []int
	// null adds the null path (a processor that only routes).
	null bool
	// peers are other gateways to measure (-peer NAME=URL[,PID...]).
	peerURLs []bench.Peer
	// mockListen is where the mock upstream listens (a peer must be
	// configured with it).
	mockListen string
	// streamChunks and streamInterval shape the mock's streamed answers
	// (a long answer: -stream-chunks 200 -stream-interval 20ms).
	streamChunks   int
	streamInterval time.Duration
	// mockTools: the mock walks each conversation for its tool loop;
	// mockToolsSet: -mock-tools was given.
	mockTools, mockToolsSet bool
}

// checkLoad, checkTolerance: the stage make bench-check measures and how
// much worse than committed a ratio may get.
const (
	checkLoad      = 300
	checkTolerance = 0.25
)

// knownPaths are the names -paths accepts, in the stack's order.
var knownPaths = []string{bench.PathDirect, bench.PathEnvoy, bench.PathGateway, bench.PathGatewayBuffered, bench.PathGatewayHook,
	bench.PathEnvoyDefault, bench.PathEnvoyHeld, bench.PathEnvoyScan, bench.PathLiteLLM, bench.PathSession, bench.PathNull}

// checkBody is the agent stage make bench-check guards: the 256 KB chat
// body at 50 VUs, its CPU per request against Envoy alone's.
var (
	checkBody = struct {
		api  agentbody.API
		size int
		vus  int
	}{agentbody.OpenAIChat, 256 << 10, 50}
)

// knownPeers are the peer gateways -peers accepts.
var knownPeers = []string{bench.PathLiteLLM}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.quick, "quick", false, "quick mode, about 2 minutes (the default)")
	fs.BoolVar(&f.full, "full", false, "full mode: 50/150/300/500/1000 VUs, two rounds")
	fs.StringVar(&f.out, "out", "results", "directory under which results/<timestamp>/ is written")
	fs.StringVar(&f.envoy, "envoy", os.Getenv("ENVOY_BIN"), "Envoy 1.40 binary (default $ENVOY_BIN, .tools/venv/bin/envoy, envoy on PATH)")
	fs.StringVar(&f.extproc, "extproc", "", "extproc binary (default: go build ./cmd/extproc)")
	fs.StringVar(&f.bodyModule, "body-module", "", "Envoy's body module for the paths with extproc, as make run renders it (default: go build -buildmode=c-shared ./cmd/bodymodule; none: without it; a -variant turns it off with render:-body-module=)")
	fs.DurationVar(&f.latency, "latency", mockllm.DefaultLatency, "mock upstream latency before the first byte")
	fs.IntVar(&f.rounds, "rounds", 0, "rounds per stage (default 1 quick, 2 full)")
	paths := fs.String("paths", "", "comma-separated paths to measure (default all: "+strings.Join(knownPaths, ",")+")")
	vus := fs.String("vus", "", "comma-separated closed-loop VU stages, e.g. 500 (default: the mode's)")
	fs.DurationVar(&f.duration, "duration", 0, "length of every stage (default: the mode's)")
	fs.DurationVar(&f.settle, "settle", 0, "after each run, keep reading the path's processes this long without load and report their RSS at its end (memory given back after a burst; 0: off)")
	fs.StringVar(&f.render, "render", "", "write results.md and the charts again from this results.json into its directory, measuring nothing")
	fs.IntVar(&f.envoyConc, "envoy-concurrency", 1, "Envoy worker threads (--concurrency) of every Envoy")
	fs.Func("extproc-env", "KEY=VALUE added to every extproc's environment, e.g. GOMAXPROCS=1 (repeatable)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("%q is not KEY=VALUE", v)
		}
		f.extprocEnv = append(f.extprocEnv, v)
		return nil
	})
	fs.BoolVar(&f.session, "session", false, "add the gateway_session path: a weighted alias and a session key on every request (session affinity)")
	fs.BoolVar(&f.envoyDefault, "envoy-default", true, "add the envoy_default path: Envoy alone with its default worker count (one per CPU), as `make run` starts it")
	peers := fs.String("peers", "", "comma-separated peer gateways to add as paths: litellm")
	fs.StringVar(&f.litellm, "litellm", filepath.Join(".tools", "litellm", "bin", "litellm"), "litellm executable for -peers litellm (make bench PEERS=litellm installs it)")
	fs.Func("variant", "A/B: add the path gateway_NAME, the gateway with changes: `NAME [env:KEY=VALUE] [arg:EXTPROC_ARG] [render:ENVOY_CONFIG_ARG] [extproc:BIN]` (repeatable), "+
		"e.g. -variant 'gogc400 env:GOGC=400' -variant 'google render:-grpc-client=google'", func(v string) error {
		vr, err := parseVariant(v)
		if err != nil {
			return err
		}
		f.variants = append(f.variants, vr)
		return nil
	})
	features := fs.String("features", "", "comma-separated features to add as gateway_FEATURE paths: "+strings.Join(slices.Sorted(maps.Keys(bench.Features)), ", "))
	kinds := fs.String("kinds", "", "comma-separated kinds of stage to run: serial, closed, open, stream, agent (default all)")
	bodies := fs.String("bodies", "", "agent stages: comma-separated body sizes, e.g. 1KB,32KB,256KB,1MB (agent-shaped conversations, loadtest/agentbody; default none)")
	bodyAPIs := fs.String("body-apis", string(agentbody.OpenAIChat)+","+string(agentbody.AnthropicMessages), "API shapes of the -bodies: openai_chat (model last), anthropic_messages (model first)")
	bodyLangs := fs.String("body-langs", agentbody.English, "languages of the -bodies' prose: "+strings.Join(agentbody.Langs, ", ")+" (Japanese text is mostly bytes that are not ASCII)")
	agentVUs := fs.String("agent-vus", "50", "comma-separated VU stages of the agent stages")
	fs.BoolVar(&f.envoyScan, "envoy-scan", false, "add the envoy_scan path: Envoy alone holding and scanning each request body with the body module, as the gateway does a big one (what one scan in place adds to Envoy alone; needs the body module)")
	fs.BoolVar(&f.envoyHeld, "envoy-held", false, "add the envoy_held path: Envoy alone holding each request body whole before forwarding it, as the gateway holds a big body while it decides (what holding costs by itself)")
	fs.BoolVar(&f.null, "null", true, "add the null path: the gateway's Envoy config with a processor that reads nothing and only routes (the floor of the ext_proc hop)")
	fs.Func("peer", "another gateway to measure as path NAME: `NAME=URL[,PID...]` (repeatable); it must route mock-gpt (and mock-claude for Messages bodies) to the mock at -mock-listen; PIDs are sampled for CPU and RSS", func(v string) error {
		name, rest, ok := strings.Cut(v, "=")
		if !ok || !validName(name) || rest == "" {
			return fmt.Errorf("-peer %q: want NAME=URL[,PID...]", v)
		}
		fields := strings.Split(rest, ",")
		p := bench.Peer{Name: name, URL: fields[0]}
		if !strings.HasPrefix(p.URL, "http://") && !strings.HasPrefix(p.URL, "https://") {
			return fmt.Errorf("-peer %q: URL must start with http:// or https://", v)
		}
		for _, pid := range fields[1:] {
			n, err := strconv.Atoi(pid)
			if err != nil || n <= 0 {
				return fmt.Errorf("-peer %q: %q is not a PID", v, pid)
			}
			p.PIDs = append(p.PIDs, n)
		}
		f.peerURLs = append(f.peerURLs, p)
		return nil
	})
	fs.StringVar(&f.mockListen, "mock-listen", "127.0.0.1:0", "address of the mock upstream (fix it to point a -peer at the mock)")
	fs.BoolVar(&f.mockTools, "mock-tools", false, "the mock walks every conversation for its tool loop, as make run's does, instead of answering text from one scan (the runs before 2026-12-06 16:20 UTC; milliseconds per 1 MB body on the machine measured); with -check, the mock the committed figures had")
	fs.IntVar(&f.streamChunks, "stream-chunks", mockllm.DefaultStreamChunks, "content chunks of each streamed answer (a long answer: 200)")
	fs.DurationVar(&f.streamInterval, "stream-interval", mockllm.DefaultChunkInterval, "time between two streamed chunks (a long answer: 20ms, 4 s in all)")
	fs.StringVar(&f.check, "check", "", "guard mode (make bench-check): envoy and gateway at 300 VUs, three rounds of 10s; exit non-zero when extproc's CPU per request or the ext_proc tax, as ratios to Envoy alone, are more than 25 % above the figures in this file")
	fs.BoolVar(&f.checkUpdate, "check-update", false, "with -check: write this run's figures to the file instead of comparing")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	fs.Visit(func(fl *flag.Flag) { f.mockToolsSet = f.mockToolsSet || fl.Name == "mock-tools" })
	var errs []error
	if *kinds != "" {
		for _, k := range strings.Split(*kinds, ",") {
			if !slices.Contains([]string{bench.KindSerial, bench.KindClosed, bench.KindOpen, bench.KindStream, bench.KindAgent}, k) {
				errs = append(errs, fmt.Errorf("-kinds: unknown kind %q", k))
				continue
			}
			f.kinds = append(f.kinds, k)
		}
	}
	if f.checkUpdate && f.check == "" {
		errs = append(errs, errors.New("-check-update needs -check FILE"))
	}
	if *peers != "" {
		for _, p := range strings.Split(*peers, ",") {
			if !slices.Contains(knownPeers, p) {
				errs = append(errs, fmt.Errorf("-peers: unknown peer %q (known: %s)", p, strings.Join(knownPeers, ", ")))
				continue
			}
			f.peers = append(f.peers, p)
		}
	}
	if *features != "" {
		for _, name := range strings.Split(*features, ",") {
			if _, ok := bench.Features[name]; !ok {
				errs = append(errs, fmt.Errorf("-features: unknown feature %q", name))
				continue
			}
			f.features = append(f.features, name)
		}
	}
	if *paths != "" {
		for _, p := range strings.Split(*paths, ",") {
			if slices.Contains(f.features, strings.TrimPrefix(p, bench.PathGateway+"_")) {
				f.paths = append(f.paths, p)
				continue
			}
			if !slices.Contains(knownPaths, p) && !slices.ContainsFunc(f.variants, func(v bench.Variant) bool { return bench.VariantPath(v.Name) == p }) &&
				!slices.ContainsFunc(f.peerURLs, func(peer bench.Peer) bool { return peer.Name == p }) {
				errs = append(errs, fmt.Errorf("-paths: unknown path %q (known: %s)", p, strings.Join(knownPaths, ", ")))
				continue
			}
			f.paths = append(f.paths, p)
		}
	}
	if *vus != "" {
		for _, v := range strings.Split(*vus, ",") {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("-vus: %q is not a positive number", v))
				continue
			}
			f.vus = append(f.vus, n)
		}
	}
	if *bodies != "" {
		for _, v := range strings.Split(*bodies, ",") {
			n, err := bench.ParseSize(v)
			if err == nil && n < agentbody.MinSize {
				err = fmt.Errorf("size %q is below the generator's minimum of %d bytes", v, agentbody.MinSize)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("-bodies: %w", err))
				continue
			}
			f.bodySizes = append(f.bodySizes, n)
		}
	}
	for _, v := range strings.Split(*bodyAPIs, ",") {
		api := agentbody.API(v)
		if api != agentbody.OpenAIChat && api != agentbody.AnthropicMessages {
			errs = append(errs, fmt.Errorf("-body-apis: unknown API %q", v))
			continue
		}
		f.bodyAPIs = append(f.bodyAPIs, api)
	}
	for _, v := range strings.Split(*bodyLangs, ",") {
		if !slices.Contains(agentbody.Langs, v) {
			errs = append(errs, fmt.Errorf("-body-langs: unknown language %q", v))
			continue
		}
		f.bodyLangs = append(f.bodyLangs, v)
	}
	for _, v := range strings.Split(*agentVUs, ",") {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("-agent-vus: %q is not a positive number", v))
			continue
		}
		f.agentVUs = append(f.agentVUs, n)
	}
	for _, p := range f.peerURLs {
		if slices.Contains(knownPaths, p.Name) {
			errs = append(errs, fmt.Errorf("-peer: %q is the name of one of the bench's own paths", p.Name))
		}
	}
	if f.streamChunks < 1 {
		errs = append(errs, errors.New("-stream-chunks must be at least 1"))
	}
	if f.streamInterval < 0 {
		errs = append(errs, errors.New("-stream-interval must not be negative"))
	}
	if f.envoyConc < 1 {
		errs = append(errs, errors.New("-envoy-concurrency must be at least 1"))
	}
	if f.duration < 0 {
		errs = append(errs, errors.New("-duration must not be negative"))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if f.quick && f.full {
		errs = append(errs, errors.New("-quick and -full exclude each other"))
	}
	if f.latency < 0 {
		errs = append(errs, errors.New("-latency must not be negative"))
	}
	if f.rounds < 0 {
		errs = append(errs, errors.New("-rounds must not be negative"))
	}
	return f, errors.Join(errs...)
}

// parseVariant reads "NAME env:K=V render:ARG extproc:BIN".
func parseVariant(s string) (bench.Variant, error) {
	f := strings.Fields(s)
	if len(f) == 0 || strings.Contains(f[0], ":") || !validName(f[0]) {
		return bench.Variant{}, fmt.Errorf("-variant %q: want NAME [env:KEY=VALUE] [arg:ARG] [render:ARG] [extproc:BIN], NAME of letters, digits and _", s)
	}
	v := bench.Variant{Name: f[0]}
	for _, kv := range f[1:] {
		k, val, _ := strings.Cut(kv, ":")
		switch {
		case k == "env" && strings.Contains(val, "=") && !strings.HasPrefix(val, "="):
			v.ExtprocEnv = append(v.ExtprocEnv, val)
		case k == "render" && val != "":
			v.RenderArgs = append(v.RenderArgs, val)
		case k == "arg" && val != "":
			v.ExtprocArgs = append(v.ExtprocArgs, val)
		case k == "extproc" && val != "":
			v.ExtprocBin = val
		default:
			return bench.Variant{}, fmt.Errorf("-variant %q: cannot read %q", s, kv)
		}
	}
	return v, nil
}

func validName(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// plan is the measurement for a mode; paths are filled in later.
func (f flags) plan() bench.Plan {
	p := bench.Plan{
		Mode:           "quick",
		Rounds:         1,
		Warmup:         time.Second,
		SerialDuration: 4 * time.Second,
		VUs:            []int{50, 500},
		VUDuration:     5 * time.Second,
		Rates:          []int{1000},
		RateDuration:   4 * time.Second,
		StreamVUs:      50,
		StreamDuration: 4 * time.Second,
	}
	if f.full {
		p = bench.Plan{
			Mode:           "full",
			Rounds:         2,
			Warmup:         2 * time.Second,
			SerialDuration: 16 * time.Second,
			VUs:            []int{50, 150, 300, 500, 1000},
			VUDuration:     16 * time.Second,
			Rates:          []int{1000, 4000},
			RateDuration:   16 * time.Second,
			StreamVUs:      100,
			StreamDuration: 16 * time.Second,
		}
	}
	p.AgentVUs = f.agentVUs
	if f.check != "" {
		p = bench.Plan{Mode: "check", Rounds: 3, Warmup: time.Second, VUs: []int{checkLoad}, VUDuration: 10 * time.Second,
			AgentVUs: []int{checkBody.vus}}
	}
	if f.rounds > 0 {
		p.Rounds = f.rounds
	}
	if len(f.vus) > 0 {
		p.VUs = f.vus
	}
	p.Settle = f.settle
	if f.duration > 0 {
		p.SerialDuration, p.VUDuration, p.RateDuration, p.StreamDuration = f.duration, f.duration, f.duration, f.duration
	}
	if len(f.kinds) > 0 {
		if !slices.Contains(f.kinds, bench.KindSerial) {
			p.SerialDuration = 0
		}
		if !slices.Contains(f.kinds, bench.KindClosed) {
			p.VUs = nil
		}
		if !slices.Contains(f.kinds, bench.KindOpen) {
			p.Rates = nil
		}
		if !slices.Contains(f.kinds, bench.KindStream) {
			p.StreamVUs = 0
		}
		if !slices.Contains(f.kinds, bench.KindAgent) {
			p.AgentVUs = nil
		}
	}
	return p
}

// selectPaths keeps the paths named in names (all when names is empty)
// and adds the benchmark process itself (load generator and mock) to each,
// so the report shows what the harness took from the shared CPUs.
func selectPaths(all []bench.Path, names []string, self int) []bench.Path {
	var out []bench.Path
	for _, p := range all {
		if len(names) > 0 && !slices.Contains(names, p.Name) {
			continue
		}
		p.Procs = append(slices.Clip(p.Procs), bench.Proc{Name: "bench", Role: bench.RoleGenerator, PID: self})
		out = append(out, p)
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.render != "" {
		return render(f.render, stdout)
	}
	if f.check != "" {
		if err := checkMock(&f); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	envoyBin, err := launch.FindEnvoy(f.envoy, envoy.Version)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "switchyard-bench")
	if err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	defer os.RemoveAll(work)

	extprocBin := f.extproc
	if extprocBin == "" {
		extprocBin = filepath.Join(work, "extproc")
		log.Info("building extproc")
		build := exec.CommandContext(ctx, "go", "build", "-tags", buildTags, "-o", extprocBin, "./cmd/extproc")
		build.Stdout, build.Stderr = stderr, stderr
		if os.Getenv("GOEXPERIMENT") == "" {
			// As the Makefile builds it: the vector body scan.
			build.Env = append(os.Environ(), "GOEXPERIMENT=simd")
		}
		if err := build.Run(); err != nil {
			return fmt.Errorf("building extproc (run from the repository root or pass -extproc): %w", err)
		}
	}

	bodyModule, err := f.buildBodyModule(ctx, work, stderr)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", f.mockListen)
	if err != nil {
		return fmt.Errorf("listening for the mock: %w", err)
	}
	// Plain: the mock's tool loop walks a conversation twice, 2.5 ms for a
	// 1 MB body on the machine the paths are measured on. AnyToolID: the
	// ids are the mock's own, and judging them would cost the mock more.
	opts := mockllm.Options{Latency: f.latency, StreamChunks: f.streamChunks, ChunkInterval: f.streamInterval, Plain: !f.mockTools, AnyToolID: true}
	if f.latency == 0 {
		opts.Latency = -1
	}
	if f.streamInterval == 0 {
		opts.ChunkInterval = -1
	}
	mock := &http.Server{Handler: mockllm.New(opts), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = mock.Serve(ln) }()
	defer mock.Close()
	upstream := "http://" + ln.Addr().String()

	log.Info("starting envoy and extproc", "envoy", envoyBin, "work_dir", work)
	sc := bench.StackConfig{
		Dir: work, ExtprocBin: extprocBin, BodyModule: bodyModule, EnvoyBin: envoyBin, UpstreamURL: upstream,
		EnvoyConcurrency: f.envoyConc, ExtprocEnv: f.extprocEnv,
		EnvoyDefaultWorkers: f.envoyDefault && f.check == "",
		EnvoyHeld:           f.envoyHeld && f.check == "",
		EnvoyScan:           f.envoyScan && f.check == "",
		Session:             f.session,
		Features:            f.features,
		Null:                f.null && f.check == "",
		Peers:               f.peerURLs,
	}
	sc.Variants = f.variants
	if slices.Contains(f.peers, bench.PathLiteLLM) {
		bin, err := filepath.Abs(f.litellm)
		if _, serr := os.Stat(bin); err != nil || serr != nil {
			return fmt.Errorf("no litellm at %s: run `make bench PEERS=litellm` (it installs LiteLLM %s) or pass -litellm", f.litellm, bench.LiteLLMVersion)
		}
		sc.LiteLLM = bin
	}
	stack, err := bench.StartStack(ctx, sc)
	if err != nil {
		return fmt.Errorf("starting the stack: %w", err)
	}
	defer stack.Close()
	if err := bench.Preflight(ctx, stack.Paths); err != nil {
		return fmt.Errorf("checking paths before measuring: %w", err)
	}

	for _, p := range stack.Paths {
		log.Info("path", "name", p.Name, "url", p.URL, "envoy_admin", p.AdminURL, "extproc_metrics", p.MetricsURL)
	}
	plan := f.plan()
	if plan.Bodies, err = f.agentBodies(); err != nil {
		return err
	}
	names := f.paths
	if f.check != "" {
		names = []string{bench.PathEnvoy, bench.PathGateway}
	}
	plan.Paths = selectPaths(stack.Paths, names, os.Getpid())
	plan.Settings = map[string]string{
		"envoy_concurrency": strconv.Itoa(f.envoyConc),
		"hook_timeout":      bench.HookTimeout,
		"mock_latency":      f.latency.String(),
		"mock_stream":       fmt.Sprintf("%d chunks, %s apart", f.streamChunks, f.streamInterval),
		"mock_answers":      bench.MockAnswers(!f.mockTools),
		"extproc_env":       strings.Join(f.extprocEnv, " "),
		"envoy_default":     "envoy_default: Envoy's own worker count (" + strconv.Itoa(runtime.NumCPU()) + " CPUs)",
	}
	if plan.Settle > 0 {
		plan.Settings[bench.SettleSetting] = plan.Settle.String()
	}
	for _, v := range sc.Variants {
		plan.Settings[bench.VariantPath(v.Name)] = fmt.Sprintf("extproc=%q env=%q args=%q envoy-config=%q", v.ExtprocBin, v.ExtprocEnv, v.ExtprocArgs, v.RenderArgs)
	}
	if sc.LiteLLM != "" {
		plan.Settings["litellm"] = bench.LiteLLMVersion + ", one worker, LITELLM_LOG=ERROR, no database, no callbacks"
	}
	log.Info("measuring", "mode", plan.Mode, "paths", len(plan.Paths), "estimate", plan.Estimate().Round(time.Second).String())
	res, err := bench.Run(ctx, plan, stderr)
	if err != nil {
		return err
	}
	dir := filepath.Join(f.out, res.Started.Format("20060102-150405"))
	if err := bench.Write(dir, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results in %s\n\n", dir)
	if f.check != "" {
		return check(f, res, stdout)
	}
	_, err = io.WriteString(stdout, bench.Markdown(res))
	return err
}

// agentBodies generates the agent stages' bodies: every -body-apis shape
// at every -bodies size; in check mode the guarded 256 KB chat body.
func (f flags) agentBodies() ([]bench.Body, error) {
	var out []bench.Body
	add := func(api agentbody.API, lang string, size int) error {
		b, err := bench.NewBody(api, lang, size)
		if err != nil {
			return fmt.Errorf("generating the agent bodies: %w", err)
		}
		out = append(out, b)
		return nil
	}
	if f.check != "" {
		return out, add(checkBody.api, agentbody.English, checkBody.size)
	}
	for _, api := range f.bodyAPIs {
		for _, lang := range f.bodyLangs {
			for _, size := range f.bodySizes {
				if err := add(api, lang, size); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// checkMock has a guard run the mock its committed figures had, which
// changes what the paths cost: -check compares with them, and
// -check-update keeps the file's mock unless -mock-tools says otherwise
// (a new file: as the flags say).
func checkMock(f *flags) error {
	committed, err := bench.ReadCheck(f.check)
	switch {
	case err != nil && f.checkUpdate && errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case !f.mockToolsSet:
		f.mockTools = !committed.MockPlain
	case !f.checkUpdate && f.mockTools == committed.MockPlain:
		return fmt.Errorf("%s was measured with the mock answering %s; -mock-tools=%v would compare two setups",
			f.check, bench.MockAnswers(committed.MockPlain), f.mockTools)
	}
	return nil
}

// errCheckFailed: a guarded figure rose more than the tolerance.
var errCheckFailed = errors.New("bench-check failed: the ext_proc hop got more expensive (run `make bench-check` again on a quiet machine before believing it; -check-update records new figures)")

func check(f flags, res *bench.Result, stdout io.Writer) error {
	measured, err := bench.MeasureCheck(res, checkLoad)
	if err != nil {
		return err
	}
	measured.MockPlain = !f.mockTools
	if f.checkUpdate {
		if err := bench.WriteCheck(f.check, measured); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: extproc/envoy %.3f, tax/envoy %.3f, gateway/envoy with %s %.3f\n", f.check, measured.ExtprocRatio, measured.TaxRatio, measured.AgentBody, measured.AgentGatewayRatio)
		return nil
	}
	committed, err := bench.ReadCheck(f.check)
	if err != nil {
		return err
	}
	report, failed := bench.CheckReport(committed, measured, bench.CompareCheck(committed, measured, checkTolerance))
	io.WriteString(stdout, report)
	if failed {
		return errCheckFailed
	}
	return nil
}

// render writes the Markdown table and charts of a stored results.json
// again (after the report changed) next to it.
func render(file string, stdout io.Writer) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading results: %w", err)
	}
	var res bench.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("decoding %s: %w", file, err)
	}
	if err := bench.Write(filepath.Dir(file), &res); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, bench.Markdown(&res))
	return err
}

// buildTags are the Makefile's (its GOFLAGS), for a bench run without it:
// the vtprotobuf encoders, and no grpc tracing.
const buildTags = "vtprotobuf,grpcnotrace"

// buildBodyModule is the body module the paths render with: the one
// -body-module names, none, or one built into dir.
func (f *flags) buildBodyModule(ctx context.Context, dir string, stderr io.Writer) (string, error) {
	switch f.bodyModule {
	case "none":
		return "", nil
	case "":
	default:
		return f.bodyModule, nil
	}
	lib := filepath.Join(dir, "libswitchyard_body.so")
	build := exec.CommandContext(ctx, "go", "build", "-tags", buildTags, "-buildmode=c-shared", "-o", lib, "./cmd/bodymodule")
	build.Stdout, build.Stderr = stderr, stderr
	if os.Getenv("GOEXPERIMENT") == "" {
		build.Env = append(os.Environ(), "GOEXPERIMENT=simd")
	}
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the body module (run from the repository root or pass -body-module): %w", err)
	}
	return lib, nil
}
