package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"switchyard/bedrock"
	"time"

	"switchyard/envoy"
	"switchyard/routing"
)

type envoyConfigFlags struct {
	config         string
	listen         string
	listenPort     int
	admin          int
	extproc        string
	noExtProc      bool
	holdBody       bool
	directCluster  string
	bodyMode       string
	bodyModule     string
	check          string
	maxHeap        int64
	failOpen       bool
	messageTimeout time.Duration
	caFile         string
	baselinePort   int
	adminAddress   string
	upstreamIdle   time.Duration
	streamIdle     time.Duration
	requestTimeout time.Duration
	grpcClient     string
	accessLog      string
	streamsPerConn int
	usageInline    bool
	xds            bool
}

func runEnvoyConfig(args []string, stdout, stderr io.Writer) error {
	f, err := parseEnvoyConfigFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.upstreamIdle > envoy.MaxUpstreamIdleTimeout {
		return fmt.Errorf("envoy-config: -upstream-idle-timeout %v: at most %v, as long as extproc keeps a request's plan until its answer comes",
			f.upstreamIdle, envoy.MaxUpstreamIdleTimeout)
	}
	// Rendering signs nothing: Bedrock providers' credentials stay unfetched.
	bedrock.NoFetch()
	r, err := routing.Load(f.config)
	if err != nil {
		return err
	}
	o, err := f.options(r)
	if err != nil {
		return err
	}
	if f.xds {
		// extproc builds this Envoy's resources from the same flags, which
		// travel in the node metadata.
		return envoy.RenderADS(stdout, o, args)
	}
	return envoy.Render(stdout, o)
}

// parseEnvoyConfigFlags reads the flags of `extproc envoy-config`; extproc
// -xds reads them again from an Envoy's node metadata.
func parseEnvoyConfigFlags(args []string, stderr io.Writer) (envoyConfigFlags, error) {
	var f envoyConfigFlags
	fs := flag.NewFlagSet("envoy-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "switchyard.yaml", "gateway config whose providers become Envoy clusters")
	fs.StringVar(&f.listen, "listen-address", "127.0.0.1", "address Envoy listens on")
	fs.IntVar(&f.listenPort, "listen", envoy.DefaultListenPort, "port Envoy listens on (0: any free port; Envoy's admin API /listeners says which)")
	fs.IntVar(&f.admin, "admin", envoy.DefaultAdminPort, "Envoy admin port (0: any free port; run Envoy with --admin-address-path to learn it)")
	fs.StringVar(&f.extproc, "extproc", "unix:/tmp/switchyard-extproc.sock", "extproc gRPC address: unix:/path or host:port; several, comma-separated, are slots of instances that replace one another (health-checked; see make restart-extproc)")
	fs.BoolVar(&f.noExtProc, "no-extproc", false, "render Envoy without ext_proc, sending everything to -direct-cluster (benchmark baseline)")
	fs.BoolVar(&f.holdBody, "hold-body", false, "with -no-extproc: Envoy holds each request body whole before forwarding it (its buffer filter, up to max_body_bytes), as the gateway holds a big body while it decides (benchmark baseline)")
	fs.StringVar(&f.directCluster, "direct-cluster", "", "cluster for -no-extproc (default: the first provider's)")
	fs.StringVar(&f.bodyMode, "body-mode", envoy.BodyModeBySize, "ext_proc request body mode: BY_SIZE (BUFFERED for bodies announced at 10,000 bytes or more, else FULL_DUPLEX_STREAMED), FULL_DUPLEX_STREAMED or BUFFERED")
	fs.StringVar(&f.bodyModule, "body-module", "", "Envoy's body module (a libswitchyard_body.so built from cmd/bodymodule for this Envoy): a body of 10,000 bytes or more stays in Envoy, which summarizes it for extproc, and goes to extproc only when its plan needs it (needs -body-mode BY_SIZE; empty: off); with -no-extproc Envoy holds and scans every body with it (benchmark baseline)")
	fs.StringVar(&f.check, "check", "", "with -body-module: decide a body Envoy kept by a check over HTTP/1.1 to extproc's -check address (unix:/path or host:port) instead of an ext_proc stream, which costs less; a plan that needs the body still goes to ext_proc (empty: off)")
	fs.Int64Var(&f.maxHeap, "max-heap", 0, "bound Envoy's heap at this many bytes (e.g. 402653184, 384 MiB, under a 512 MiB container limit): near it Envoy refuses new requests and uploads in progress (503 in the API's shape) instead of growing (0: no bound)")
	fs.BoolVar(&f.failOpen, "fail-open", false, "let requests through when extproc is unreachable (they are still never routed)")
	fs.DurationVar(&f.messageTimeout, "message-timeout", 0, "ext_proc message timeout (0: the mode's default)")
	fs.IntVar(&f.baselinePort, "baseline-listen", 0, "also listen on this port without ext_proc, forwarding to -direct-cluster (0: off)")
	fs.StringVar(&f.adminAddress, "admin-address", "127.0.0.1", "address of the Envoy admin listener")
	fs.DurationVar(&f.upstreamIdle, "upstream-idle-timeout", envoy.DefaultIdleTimeout, "close an upstream stream silent for this long (504 before the first byte); at most 10m")
	fs.DurationVar(&f.streamIdle, "stream-idle-timeout", envoy.DefaultIdleTimeout, "close a client stream idle in both directions this long (also bounds a frozen extproc in full-duplex mode)")
	fs.DurationVar(&f.requestTimeout, "request-timeout", envoy.DefaultRequestTimeout, "answer 408 to a request not received whole this long after it began, so that a client trickling its body cannot hold Envoy's buffer (Envoy stops the clock at the body's last byte: it never cuts an answer; 0: none)")
	fs.StringVar(&f.caFile, "ca-file", "", "CA bundle for https providers (default: the system bundle)")
	fs.StringVar(&f.grpcClient, "grpc-client", envoy.GRPCClientEnvoy, "Envoy's gRPC client for ext_proc: envoy or google (slower, for comparison)")
	fs.IntVar(&f.streamsPerConn, "extproc-streams-per-connection", 10000, "ext_proc streams per HTTP/2 connection to extproc before Envoy opens another")
	fs.BoolVar(&f.usageInline, "usage-inline", false, "count usage with a filter Envoy waits for on every chunk instead of an observing one (for comparison: it adds latency)")
	fs.StringVar(&f.accessLog, "access-log", "", "write a diagnostic access log with Envoy's phase and ext_proc timings to this file (empty: none)")
	fs.BoolVar(&f.xds, "xds", false, "print a minimal bootstrap: Envoy takes its listeners, routes and clusters from extproc over ADS (extproc must run with -xds)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("envoy-config: unexpected arguments %q", fs.Args())
	}
	return f, nil
}

// options are the Envoy options for the flags and a gateway config.
func (f envoyConfigFlags) options(r *routing.Router) (envoy.Options, error) {
	o := envoy.Options{
		ListenAddress:       f.listen,
		ListenPort:          f.listenPort,
		AdminPort:           f.admin,
		AdminAddress:        f.adminAddress,
		ExtProc:             f.extproc,
		FailOpen:            f.failOpen,
		BodyMode:            f.bodyMode,
		BodyModule:          f.bodyModule,
		Check:               f.check,
		MaxHeapBytes:        f.maxHeap,
		MessageTimeout:      f.messageTimeout,
		MaxBodyBytes:        r.MaxBodyBytes(),
		Providers:           r.Providers(),
		MCPServers:          r.MCPServers(),
		RetryRoutes:         r.RetryRoutes(),
		ResponseHeaders:     r.SendsResponseHeaders(),
		CAFile:              f.caFile,
		UpstreamIdleTimeout: f.upstreamIdle,
		StreamIdleTimeout:   f.streamIdle,
		RequestTimeout:      cmp.Or(f.requestTimeout, -1), // the flag's 0 is none, the option's the default
		GRPCClient:          f.grpcClient,
		AccessLog:           f.accessLog,
		UsageInline:         f.usageInline,
		TraceCollector:      r.Config().TraceCollector(),
		Traced:              r.Config().Traced(),

		ExtProcStreamsPerConnection: f.streamsPerConn,
	}
	direct := f.directCluster
	if direct == "" && (f.noExtProc || f.baselinePort != 0) {
		if len(o.Providers) == 0 {
			return o, errors.New("envoy-config: -no-extproc and -baseline-listen need a provider")
		}
		direct = o.Providers[0].Cluster
	}
	if f.noExtProc {
		o.ExtProc = ""
		o.DirectCluster = direct
	}
	o.HoldBody = f.holdBody
	if f.baselinePort != 0 {
		o.BaselinePort, o.BaselineCluster = f.baselinePort, direct
	}
	return o, nil
}
