package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"switchyard/bedrock"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"switchyard/config"
	"switchyard/envoy"
	"switchyard/keys"
	"switchyard/limits"
	"switchyard/luahooks"
	"switchyard/processor"
	"switchyard/routing"
	"switchyard/xds"
)

type serveFlags struct {
	config       string
	grpcAddr     string
	checkAddr    string
	metricsAddr  string
	addrFile     string
	logLevel     string
	logFormat    string
	drainTimeout time.Duration
	drainQuiet   time.Duration
	maxStreams   uint
	maxInflight  int64
	// grpc-go tuning (docs/PERFORMANCE.md has the measurements).
	streamWorkers     uint
	sharedWriteBuffer bool
	streamWindow      uint
	connWindow        uint
	// xds serves Envoy its listeners, routes and clusters over ADS.
	xds bool
	// xdsRemovalGrace keeps what a reload removes in Envoy this long.
	xdsRemovalGrace time.Duration
	// nullRoute serves processor.NullServer instead of the gateway (the
	// load benchmark's floor).
	nullRoute string
	// keys is the key store and the admin API's credential (keystore.go).
	keys keyStoreFlags
	// cpuPolicy is the threads' scheduling policy: batch or normal
	// (sched.go).
	cpuPolicy string
}

func parseServeFlags(args []string, stderr io.Writer) (serveFlags, error) {
	var f serveFlags
	fs := flag.NewFlagSet("extproc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "switchyard.yaml", "gateway config file (watched and hot-reloaded)")
	fs.StringVar(&f.grpcAddr, "grpc", "unix:/tmp/switchyard-extproc.sock", "ext_proc gRPC listen address: unix:/path or host:port")
	fs.StringVar(&f.metricsAddr, "metrics", "127.0.0.1:9090", "admin HTTP address for the status page at /, /metrics, /healthz and /debug/pprof (empty: off); keep it on loopback or a private network")
	fs.StringVar(&f.checkAddr, "check", "", "also answer Envoy's checks over HTTP/1.1 here, unix:/path or host:port: the decision on a body Envoy's body module kept, instead of an ext_proc stream (Envoy rendered with envoy-config -check; empty: off); its answers carry provider keys in the clear, so keep it on a Unix socket, loopback or a private network")
	fs.StringVar(&f.addrFile, "addr-file", "", "once listening, write the bound -grpc and -metrics addresses to this file as JSON (for port 0)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "json or text")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	fs.DurationVar(&f.drainQuiet, "drain-quiet", 2*envoy.ExtProcUnhealthyAfter, "on shutdown while Envoy health-checks this instance: keep taking new streams until none came for this long (Envoy has seen NOT_SERVING), at most half of -drain-timeout; 0: refuse them at once")
	fs.UintVar(&f.maxStreams, "max-streams", envoy.DefaultMaxStreams, "concurrent ext_proc streams (one per in-flight request) before Envoy must wait")
	fs.Int64Var(&f.maxInflight, "max-inflight", 4096, "requests decided at once before new ones get 429 (0: no cap)")
	fs.UintVar(&f.streamWorkers, "grpc-stream-workers", defaultStreamWorkers, "goroutines reused across ext_proc streams, for that many requests in flight (0: grpc-go's default, a new goroutine per stream)")
	fs.BoolVar(&f.sharedWriteBuffer, "grpc-shared-write-buffer", false, "release each connection's write buffer when idle instead of keeping it (less memory, more allocation)")
	fs.UintVar(&f.streamWindow, "grpc-stream-window", defaultStreamWindow, "HTTP/2 flow-control window of each ext_proc stream, in bytes (at least 65536)")
	fs.UintVar(&f.connWindow, "grpc-conn-window", defaultConnWindow, "HTTP/2 flow-control window of each connection from Envoy, in bytes (at least 65536)")
	fs.BoolVar(&f.xds, "xds", false, "serve Envoy its listeners, routes and clusters over ADS on the -grpc address (for a bootstrap from `extproc envoy-config -xds`); new providers, urls, fallback chains and max_body_bytes then reload live")
	fs.DurationVar(&f.xdsRemovalGrace, "xds-removal-grace", xds.DefaultRemovalGrace, "with -xds: how long the clusters and route entries a reload removes stay in Envoy, for the requests the older config planned (fallback attempts included)")
	fs.StringVar(&f.nullRoute, "null-route", "", "benchmark floor: serve a processor that reads nothing and routes every request to this Envoy cluster, instead of the gateway")
	fs.StringVar(&f.cpuPolicy, "cpu-policy", "batch", "Linux scheduling policy of extproc's threads: batch (threads under the normal policy switch to SCHED_BATCH, so that they do not interrupt Envoy on the CPU they wake beside) or normal (as started)")
	f.keys.register(fs)
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	errs := []error{f.keys.validate()}
	if f.cpuPolicy != "batch" && f.cpuPolicy != "normal" {
		errs = append(errs, fmt.Errorf("-cpu-policy %q: want batch or normal", f.cpuPolicy))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if f.config == "" {
		errs = append(errs, errors.New("-config is required"))
	}
	if f.grpcAddr == "" {
		errs = append(errs, errors.New("-grpc is required"))
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		errs = append(errs, err)
	}
	if f.logFormat != "json" && f.logFormat != "text" {
		errs = append(errs, fmt.Errorf("-log-format must be json or text, not %q", f.logFormat))
	}
	if f.drainTimeout <= 0 {
		errs = append(errs, errors.New("-drain-timeout must be positive"))
	}
	if f.drainQuiet < 0 {
		errs = append(errs, errors.New("-drain-quiet must not be negative"))
	}
	if f.maxInflight < 0 {
		errs = append(errs, errors.New("-max-inflight must not be negative"))
	}
	if f.xdsRemovalGrace < 0 {
		errs = append(errs, errors.New("-xds-removal-grace must not be negative"))
	}
	if f.maxStreams == 0 {
		errs = append(errs, errors.New("-max-streams must be positive"))
	}
	errs = append(errs, checkWindow("-grpc-stream-window", f.streamWindow), checkWindow("-grpc-conn-window", f.connWindow))
	return f, errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("-log-level: %w", err)
	}
	return l, nil
}

// redactedKeys are attribute names whose values never reach the logs: the
// headers client keys arrive in.
var redactedKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range routing.ClientKeyHeaders {
		m[h] = true
	}
	return m
}()

func newLogger(w io.Writer, f serveFlags) *slog.Logger {
	level, _ := parseLevel(f.logLevel)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if redactedKeys[strings.ToLower(a.Key)] {
			return slog.String(a.Key, "[redacted]")
		}
		return a
	}}
	if f.logFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, f)
	bedrock.SetLogger(log)
	if f.cpuPolicy == "batch" {
		if err := batchThreads(); err != nil {
			log.Warn("threads keep their scheduling policy", "cpu_policy", f.cpuPolicy, "error", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var xs *xds.Server
	var updater envoyUpdater
	if f.xds {
		xs = xds.New(ctx, buildXDS, f.xdsRemovalGrace, log, reg)
		updater = xs
	}
	// A failed first load is fatal; later reloads keep the running config.
	live := &liveHooks{configPath: f.config, log: log}
	cfg, err := newConfigHolder(f.config, log, reg, updater, live)
	if err != nil {
		return err
	}
	defer cfg.Close()

	hooks, err := newHooks(f.config, cfg.Current().Hooks(), log, reg)
	if err != nil {
		return err
	}
	defer hooks.Close()
	// Before any reload: the watch and SIGHUP start below.
	live.m = hooks

	limiter, closeLimiter, err := newLimiter(cfg.Current().Config().GlobalLimits(), log)
	if err != nil {
		return err
	}
	defer closeLimiter()

	tracer, flushTraces, err := newTracer(ctx, cfg.Current().Config().Tracing, log)
	if err != nil {
		return err
	}
	defer flushTraces()
	ks, err := openKeyStore(ctx, f.keys, cfg.Current, reg, log)
	if err != nil {
		return err
	}
	defer ks.Close()

	srv := processor.New(processor.Options{
		Router:      cfg.Current,
		Hooks:       hooks.Current,
		Logger:      log,
		Metrics:     processor.NewMetrics(reg),
		MaxInflight: f.maxInflight,
		Limiter:     limiter,
		Tracer:      tracer,
		Keys:        ks.keysFunc(),
	})

	idle := time.NewTicker(idleRelease)
	defer idle.Stop()
	go releaseWhenIdle(ctx, idle.C, srv.Opened, releaseMemory)

	lis, err := listen(f.grpcAddr)
	if err != nil {
		return err
	}
	maxMsg := grpcMaxMsg(maxBodyCeiling(cfg.Current().MaxBodyBytes(), f.xds))
	opts := []grpc.ServerOption{
		// Envoy opens one stream per HTTP request over a single HTTP/2
		// connection; the cap bounds the memory a request flood can pin.
		grpc.MaxConcurrentStreams(uint32(f.maxStreams)),
		// A buffered body arrives as one message: allow the body limit plus
		// headroom for the protobuf framing.
		grpc.MaxRecvMsgSize(maxMsg),
		// Flow-control windows (window.go).
		grpc.InitialWindowSize(int32(f.streamWindow)),
		grpc.InitialConnWindowSize(int32(f.connWindow)),
		// Envoy keeps the connection open and may ping it; don't punish that.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// grpc-go does not recover handler panics: one bad request would end
		// the process and every stream in flight with it.
		grpc.ChainStreamInterceptor(recoverStream(log)),
		// The same protobuf wire format, encoded without reflection into
		// pooled buffers (docs/PERFORMANCE.md).
		grpc.ForceServerCodecV2(processor.Codec{}),
	}
	if f.streamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(f.streamWorkers)))
	}
	if f.sharedWriteBuffer {
		opts = append(opts, grpc.SharedWriteBuffer(true))
	}
	gs := grpc.NewServer(opts...)
	if f.nullRoute != "" {
		(&processor.NullServer{Cluster: f.nullRoute}).Register(gs)
	} else {
		srv.Register(gs)
	}
	if xs != nil {
		xs.Register(gs)
	}
	hs := &checkedHealth{Server: health.NewServer()}
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(processor.ServiceName, healthpb.HealthCheckResponse_SERVING)

	var ready atomic.Bool
	ready.Store(true)
	var admin *http.Server
	bound := boundAddrs{GRPC: addrString(lis.Addr())}
	var check *http.Server
	if f.checkAddr != "" {
		if check, bound.Check, err = startCheck(f.checkAddr, srv.CheckHandler()); err != nil {
			gs.Stop()
			return err
		}
	}
	if f.metricsAddr != "" {
		status := newStatusPage(cfg, hooks, srv, limiter, reg, log)
		admin, bound.Metrics, err = startAdmin(f.metricsAddr, reg, status, &ready, log, ks.adminHandler())
		if err != nil {
			gs.Stop()
			return err
		}
	}
	// Logged before the address file appears: whoever waits for the file
	// finds the line already written.
	log.Info("extproc serving", "grpc", bound.GRPC, "metrics", bound.Metrics, "check", bound.Check, "config", f.config, "vtprotobuf", processor.VTProto())
	if f.addrFile != "" {
		if err := writeAddrFile(f.addrFile, bound); err != nil {
			gs.Stop()
			lis.Close()
			shutdownAdmin(admin)
			return err
		}
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if err := cfg.WatchFile(watchCtx, f.config, configDebounce); err != nil && watchCtx.Err() == nil {
			log.Error("config watch stopped; reload with SIGHUP", "err", err)
		}
	}()
	go func() {
		if err := hooks.Watch(watchCtx); err != nil && watchCtx.Err() == nil {
			log.Error("hooks watch stopped; reload with SIGHUP", "err", err)
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-hup:
				_ = cfg.Reload()   // logged and counted by the holder
				_ = hooks.Reload() // logged and counted by the manager
			}
		}
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(quietListener{lis}) }()

	select {
	case err := <-serveErr:
		stopWatch()
		shutdownAdmin(admin)
		return fmt.Errorf("serving grpc: %w", err)
	case <-ctx.Done():
	}

	// Shutdown: report NOT_SERVING; while Envoy health-checks this
	// instance (it has another to send streams to), keep taking them until
	// it stops; then refuse new streams and let in-flight requests finish,
	// bounded by the drain timeout.
	log.Info("extproc shutting down", "drain_timeout", f.drainTimeout.String())
	start := time.Now()
	ready.Store(false)
	hs.Shutdown()
	stopWatch()
	if f.drainQuiet > 0 && hs.checkedWithin(f.drainQuiet) {
		if waitQuiet(srv.Opened, f.drainQuiet, f.drainTimeout/2) {
			log.Info("no new stream for the quiet period: Envoy sends them elsewhere", "waited", time.Since(start).String())
		} else {
			log.Warn("new streams still arrive at half the drain timeout; refusing them now", "waited", time.Since(start).String())
		}
	}
	drained := make(chan struct{})
	go func() {
		// Checks in progress are answered; idle check connections close.
		if check != nil {
			go check.Shutdown(context.Background())
		}
		gs.GracefulStop()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(f.drainTimeout - time.Since(start)):
		log.Warn("drain timeout reached, closing remaining streams")
		gs.Stop()
		if check != nil {
			check.Close()
		}
		<-drained
	}
	shutdownAdmin(admin)
	log.Info("extproc stopped")
	return nil
}

// buildXDS makes the resources of an Envoy printed by `extproc envoy-config`
// with args, for the gateway config r, keeping what the older configs'
// requests may still need.
func buildXDS(args []string, r *routing.Router, older []*routing.Router) (*envoy.Resources, error) {
	f, err := parseEnvoyConfigFlags(args, io.Discard)
	if err != nil {
		return nil, err
	}
	o, err := f.options(r)
	if err != nil {
		return nil, err
	}
	var olds []envoy.Options
	for _, r := range older {
		old, err := f.options(r)
		if err != nil {
			return nil, err
		}
		olds = append(olds, old)
	}
	return envoy.Build(o.Retaining(olds...))
}

func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A socket file left by a killed predecessor would make bind fail.
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(path)
		}
		lis, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		return lis, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return lis, nil
}

// addrString formats a bound listener's address the way -grpc takes it.
func addrString(a net.Addr) string {
	if a.Network() == "unix" {
		return "unix:" + a.String()
	}
	return a.String()
}

// boundAddrs are the addresses extproc listens on, port 0 resolved: what
// -addr-file holds.
type boundAddrs struct {
	GRPC    string `json:"grpc"`
	Check   string `json:"check,omitempty"` // empty: no check listener
	Metrics string `json:"metrics"`         // empty: no admin listener
}

// startCheck serves Envoy's checks (processor.Server.CheckHandler) on addr.
func startCheck(addr string, h http.Handler) (*http.Server, string, error) {
	lis, err := listen(addr)
	if err != nil {
		return nil, "", err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go s.Serve(lis)
	return s, addrString(lis.Addr()), nil
}

// writeAddrFile writes a beside path and renames it into place, so that a
// reader sees either no file or the whole of it.
func writeAddrFile(path string, a boundAddrs) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding addresses: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing address file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing address file: %w", err)
	}
	return nil
}

// startAdmin serves the status page at /, /metrics, /healthz,
// /debug/pprof and, when keyAdmin is set, the key store's admin API on
// addr, and returns the address it bound.
func startAdmin(addr string, reg *prometheus.Registry, status http.Handler, ready *atomic.Bool, log *slog.Logger, keyAdmin http.Handler) (*http.Server, string, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", status)
	if keyAdmin != nil {
		mux.Handle(keys.AdminPrefix, keyAdmin)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listening on admin address %s: %w", addr, err)
	}
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server failed", "err", err)
		}
	}()
	return s, lis.Addr().String(), nil
}

func shutdownAdmin(s *http.Server) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}

// newHooks loads the Lua hooks the config names. The scripts in the
// directory reload live; the hooks section itself (directory, files,
// timeout, policy) reloads live with Envoy on xDS (liveHooks), else takes a
// restart.
func newHooks(configPath string, hc config.HooksConfig, log *slog.Logger, reg prometheus.Registerer) (*luahooks.Manager, error) {
	opts := hooksOptions(configPath, hc, log)
	opts.Registerer = reg
	m, err := luahooks.NewManager(opts)
	if err != nil {
		return nil, fmt.Errorf("loading hooks: %w", err)
	}
	return m, nil
}

// hooksOptions are the hook engine's options for a hooks section. A
// relative hooks directory is taken relative to the config file.
func hooksOptions(configPath string, hc config.HooksConfig, log *slog.Logger) luahooks.Options {
	dir := hc.Dir
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(configPath), dir)
	}
	return luahooks.Options{Dir: dir, Files: hc.Files, Timeout: hc.Timeout, FailOpen: hc.FailOpen, Logger: log}
}

// liveHooks applies a reloaded config's changed hooks section to the
// running hook engine (m, set once it is built, before any reload).
type liveHooks struct {
	configPath string
	log        *slog.Logger
	m          *luahooks.Manager
}

// prepare builds and validates the hooks of hc; commit swaps them in.
func (h *liveHooks) prepare(hc config.HooksConfig) (commit func(), err error) {
	commit, err = h.m.Reconfigure(hooksOptions(h.configPath, hc, h.log))
	if err != nil {
		return nil, fmt.Errorf("hooks: %w", err)
	}
	return commit, nil
}

// newLimiter returns the limiter client keys' budgets are counted in: the
// rate-limit service when the config names one, else this process. Changing
// rate_limit_service takes a restart (config.RestartNeeded).
func newLimiter(rls *config.RateLimitService, log *slog.Logger) (processor.Limiter, func(), error) {
	if rls == nil {
		return limits.NewLocal(), func() {}, nil
	}
	g, err := limits.NewGlobal(limits.GlobalOptions{Address: rls.Address, Timeout: rls.Timeout, Deny: rls.Deny})
	if err != nil {
		return nil, nil, err
	}
	log.Info("client key limits kept in the rate-limit service", "address", rls.Address, "timeout", rls.Timeout.String(), "deny_when_down", rls.Deny)
	return g, func() { _ = g.Close() }, nil
}

// recoverStream turns a panic in a stream handler into an Internal error on
// that stream (Envoy then fails the one request closed) and logs it.
func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in stream handler", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}
