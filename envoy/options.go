// Package envoy builds the Envoy configuration Switchyard runs behind, as
// go-control-plane protos, from the providers and routes of a gateway
// config: the listeners, route configurations and clusters (Build, the
// resources an xDS server serves) and the static bootstrap around them
// (BuildBootstrap), which Render prints as YAML. The native tests,
// `make run`, the benchmark and docker compose all use that one builder;
// the copies committed beside it are checked against it by the tests.
//
// Protos stay inside this package: the rest of the code hands it plain
// data (Options) and gets YAML or resources back.
package envoy

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	"switchyard/config"
	"switchyard/routing"
)

// Version is the Envoy release the configuration is written for.
const Version = "1.40.0"

// ImageBodyModule is where the Dockerfile's envoy image keeps the body
// module (cmd/bodymodule), which the bootstraps of docker compose and the
// Kubernetes pod name with -body-module.
const ImageBodyModule = "/usr/local/lib/switchyard/libswitchyard_body.so"

// The ports `extproc envoy-config` renders unless told otherwise.
const (
	DefaultListenPort = 10000
	DefaultAdminPort  = 9901
)

// Body modes for the ext_proc filter.
const (
	BodyModeFullDuplex = "FULL_DUPLEX_STREAMED"
	BodyModeBuffered   = "BUFFERED"
	// BodyModeBySize sends a body whose Content-Length announces at least
	// BufferedFromBytes BUFFERED (it travels to extproc and back only when
	// changed), any other FULL_DUPLEX_STREAMED (one round trip).
	BodyModeBySize = "BY_SIZE"
)

// BufferedFromBytes is where BodyModeBySize switches to BUFFERED: a power
// of ten, matched by the number of digits of the Content-Length.
const (
	BufferedFromBytes  = 10000
	bufferedFromDigits = 5
)

// PhaseMetadataKey is the gRPC metadata by which extproc tells a stream of
// the upstream ext_proc filter (one per attempt, PhaseUpstream) from one of
// the router-level filter (one per request, no metadata).
const (
	PhaseMetadataKey = "x-switchyard-phase"
	PhaseUpstream    = "upstream"
	// PhaseResponse marks the streams of a response cluster's filter (one
	// per request that needs its response body read or rewritten).
	PhaseResponse = "response"
)

// ResponseFilterHeaders are the headers a response cluster's filter sends
// extproc: what accounting and translation read. The request's plan is
// found by the gateway's own id, in the metadata (routing.RequestNamespace).
var ResponseFilterHeaders = []string{":status", "content-type", "content-length", "content-encoding", "retry-after", "x-amzn-errortype"}

// ProviderAccountHeaders name the operator's account at a provider (its
// organization and project ids) in the provider's answers: the gateway's
// clients have no use for them, and they are left out of what they get.
var ProviderAccountHeaders = []string{"openai-organization", "openai-project", "anthropic-organization-id"}

// DefaultIdleTimeout closes client connections, client streams and
// upstream streams that stay silent this long. It must outlast the longest
// silence a model may keep before or between tokens.
const DefaultIdleTimeout = 300 * time.Second

// MaxUpstreamIdleTimeout bounds UpstreamIdleTimeout (a longer one is
// taken as this): extproc keeps what it planned for a request (its
// translation, its counting, its fallbacks) until the answer's headers
// come, and forgets a request silent longer than this (processor's
// flights), whose answer would then reach the client untranslated and
// uncounted.
const MaxUpstreamIdleTimeout = 10 * time.Minute

// BufferedMessageTimeout is how long Envoy waits for each extproc answer in
// buffered mode unless told otherwise, the shorter of the modes' defaults
// (MessageTimeout). extproc keeps the work it does while Envoy waits (the
// calls /mcp makes to MCP servers) within it.
const BufferedMessageTimeout = 2 * time.Second

// requestTimeoutDetails are the response code details of Envoy's answer
// to a request that outlasted RequestTimeout (408).
const requestTimeoutDetails = "request_overall_timeout"

// DefaultRequestTimeout bounds how long a client may take to send its whole
// request. The idle timeout alone does not: a client that sends a byte of
// its body now and then holds what Envoy buffered of it for ever. Envoy's
// advice for an edge proxy is the same five minutes; a 10 MiB body then
// needs some 35 KB/s.
const DefaultRequestTimeout = 300 * time.Second

// DefaultMaxStreams is how many ext_proc streams (one per request in
// flight) Envoy opens on one connection to extproc; extproc's -max-streams
// defaults to the same number.
const DefaultMaxStreams = 10000

// Options describe one Envoy instance.
type Options struct {
	ListenAddress string // default 127.0.0.1
	AdminAddress  string // default 127.0.0.1
	// ListenPort and AdminPort are the ports of the gateway listener and
	// the admin interface; 0 lets the kernel pick free ones, which Envoy
	// reports through --admin-address-path and its admin API.
	ListenPort, AdminPort int
	// ExtProc is the extproc gRPC address, "unix:/path" or "host:port",
	// or several separated by commas: the slots of extproc instances that
	// replace one another without a failed request (ExtProcSlots). Empty
	// renders Envoy without the ext_proc filter, routing every request to
	// DirectCluster (the benchmark's baseline).
	ExtProc       string
	DirectCluster string
	// HoldBody, without ext_proc, has Envoy hold each request body whole
	// before it forwards it (its buffer filter, up to the body limit), as
	// the gateway holds a big body while it decides: the baseline that
	// shows what holding costs.
	HoldBody bool
	// FailOpen lets requests pass when extproc is unreachable. They still
	// cannot pick a cluster: the routing header is stripped before ext_proc.
	FailOpen bool
	// BodyMode is BodyModeBySize (default), BodyModeFullDuplex or
	// BodyModeBuffered.
	BodyMode string
	// BodyModule is the path of Envoy's body module (cmd/bodymodule), ""
	// for none. With BodyModeBySize, a body announced at BufferedFromBytes
	// or more then stays in Envoy, which summarizes it for extproc; extproc
	// asks for the body only when its plan needs it. Without ext_proc,
	// Envoy holds and scans every body with it, as the gateway does a big
	// one: the baseline that shows what one scan in place adds to Envoy
	// alone. Envoy must be the version the module was built for.
	BodyModule string
	// Check is extproc's check listener, "unix:/path" or "host:port" (its
	// -check): with BodyModule, a body Envoy kept is decided by a check over
	// HTTP/1.1 (Envoy's ext_authz filter) instead of an ext_proc stream,
	// unless its plan needs the body (check.go). Empty: off.
	Check string
	// MaxHeapBytes bounds Envoy's heap (its overload manager,
	// overloadManager): near it Envoy refuses new requests and uploads in
	// progress rather than grow. 0: no bound.
	MaxHeapBytes int64
	// MessageTimeout bounds each wait for an extproc answer. Default 10s in
	// full-duplex mode (the answer waits for the whole upload), 2s buffered.
	MessageTimeout time.Duration
	// ResponseHeaders sends response headers to extproc, for on_response
	// hooks. Envoy cannot switch this per request in full-duplex mode, so it
	// is on whenever hooks are configured.
	ResponseHeaders bool
	// MaxBodyBytes is the gateway's body limit (routing.Router.MaxBodyBytes).
	MaxBodyBytes int64
	Providers    []routing.Provider
	// MCPServers each get a cluster, and /mcp/... its routes (mcp.go).
	MCPServers []routing.MCPServer
	// RetryRoutes are the route entries for requests with fallbacks; with
	// any, each provider also gets an attempt cluster (see routing).
	RetryRoutes []routing.RetryRoute
	// CAFile holds the CAs trusted for https providers.
	CAFile string
	// StreamIdleTimeout closes a client stream with no activity in either
	// direction for this long (default DefaultIdleTimeout). In full-duplex mode Envoy
	// applies no message timeout to extproc, so this is also how long a
	// frozen extproc can hold a request; it must stay above the longest
	// silence a model may keep before or between tokens.
	StreamIdleTimeout time.Duration
	// RequestTimeout answers 408 to a request not received whole this long
	// after it began (default DefaultRequestTimeout): a client that trickles
	// its body holds Envoy's buffer no longer. Envoy stops the clock at the
	// body's last byte (at the headers for a request without one), so it
	// never cuts an answer, nor a request extproc is deciding on. Envoy
	// counts whole milliseconds. Negative: none.
	RequestTimeout time.Duration
	// BaselinePort, when set, adds a second listener without ext_proc that
	// sends every request to BaselineCluster: the reference path benchmarks
	// compare the gateway with.
	BaselinePort    int
	BaselineCluster string
	// UpstreamIdleTimeout closes an upstream stream silent for this long.
	UpstreamIdleTimeout time.Duration
	// GRPCClient is Envoy's gRPC client for ext_proc: GRPCClientEnvoy
	// (default, Envoy's own HTTP/2 codec on the worker thread) or
	// GRPCClientGoogle (the gRPC C++ library; measured slower, see
	// docs/PERFORMANCE.md, kept for comparison).
	GRPCClient string
	// ExtProcStreamsPerConnection caps the ext_proc streams Envoy multiplexes
	// on one HTTP/2 connection to extproc; past it Envoy opens another
	// connection (default 10000: in effect one connection per worker).
	ExtProcStreamsPerConnection int
	// UsageInline renders the usage clusters' filter like the translate
	// clusters' (Envoy waits for extproc on every chunk) instead of in
	// observability mode: the other candidate, kept to measure it against.
	UsageInline bool
	// AccessLog, when set, is a file Envoy writes one line per request to
	// with its own phase timings and the ext_proc filter's per-call
	// latencies (diagnosis; see docs/PERFORMANCE.md for the fields).
	AccessLog string
	// TraceCollector, host:port of an OTLP gRPC collector, has Envoy trace
	// every request and send its spans there (tracing.go); empty: none.
	TraceCollector string
	// Traced: extproc traces requests, and reads the client's W3C trace
	// context (TraceContextHeaders) when Envoy does not trace.
	Traced bool
}

// Envoy gRPC clients for ext_proc.
const (
	GRPCClientEnvoy  = "envoy"
	GRPCClientGoogle = "google"
)

// AccessLogFields name the columns of the diagnostic access log, in order:
// request start (s since the epoch), Envoy's ext_proc latency for the
// request headers and for the whole body (µs), request start -> request
// fully received, request start -> first byte sent upstream, first byte
// upstream -> first byte back (µs), total duration (ms), status.
var AccessLogFields = []string{"start_s", "extproc_header_us", "extproc_body_us", "rx_us", "to_upstream_us", "upstream_us", "duration_ms", "status"}

// clusterData is one provider cluster.
type clusterData struct {
	name      string
	discovery clusterv3.Cluster_DiscoveryType
	host      string
	port      int
	tls       bool
	// Attempt clusters run the upstream ext_proc filter on each attempt.
	attempt bool
	// Response clusters run a filter that reads the response body:
	// observing it (observe) or rewriting it.
	response, observe bool
	// googleErrors: the Google errors filter too (googleerrors.go).
	googleErrors bool
}

// retryRouteData is one route entry for requests with fallbacks.
type retryRouteData struct {
	key, retryOn string
	statuses     []int
	numRetries   int
	perTry       time.Duration // 0: none
}

// settings are Options resolved: defaults applied, addresses parsed, the
// clusters and route entries listed. Plain data; the builder turns it
// into protos.
type settings struct {
	listenAddress, adminAddress string
	listenPort, adminPort       int
	// extProc is false for the baseline without ext_proc, which routes
	// everything to directCluster.
	extProc bool
	// extproc's addresses: one, or the slots of instances that replace
	// one another, health-checked.
	extProcEndpoints  []endpoint
	extProcDiscovery  clusterv3.Cluster_DiscoveryType
	extProcTarget     string // as given, for Google gRPC
	googleGRPC        bool
	extProcMaxStreams int
	directCluster     string
	baselinePort      int
	baselineCluster   string
	failOpen          bool
	responseHeaders   bool
	bodyMode          extprocv3.ProcessingMode_BodySendMode
	trailerMode       extprocv3.ProcessingMode_HeaderSendMode
	messageTimeout    time.Duration
	// bySize: bodies announced at least BufferedFromBytes long are sent
	// BUFFERED (a route's per-filter override), with bySizeBufferBytes
	// of buffer; bySizeRegex matches their Content-Length.
	bySize            bool
	bySizeRegex       string
	bySizeBufferBytes int64
	bodyModule        string // BodyModule, only with bySize
	// check: a body the module kept is decided over checkEndpoint
	// (Options.Check).
	check            bool
	checkEndpoint    endpoint
	checkDiscovery   clusterv3.Cluster_DiscoveryType
	maxHeapBytes     int64 // MaxHeapBytes
	bufferLimitBytes int64
	holdBodyBytes    int64 // HoldBody: the buffer filter's limit; 0: off
	upstreamIdle     time.Duration
	streamIdle       time.Duration
	requestTimeout   time.Duration
	caFile           string
	accessLogPath    string
	// traceHost and tracePort are the OTLP collector's; "" when Envoy
	// does not trace. traced: extproc traces.
	traceHost    string
	tracePort    int
	traced       bool
	clusters     []clusterData
	mcp          bool // MCP servers are configured
	localReplies []localReply
	// Fallbacks: the route entries, and the attempt cluster their
	// specifier falls back on.
	retryRoutes           []retryRouteData
	defaultAttemptCluster string
	attemptBufferBytes    int64
	// Response clusters: how much a translated answer may hold.
	responseBufferBytes int64
}

// ForwardedHeaders are the request headers Envoy sends extproc when no hooks
// run (hooks see every header): the ones the processor reads. A processor
// test drives it with these alone.
var ForwardedHeaders = slices.Concat([]string{":path", ":method"}, routing.ClientKeyHeaders,
	[]string{routing.RequestIDHeader, "content-length", "content-encoding", routing.BetaHeader, routing.VersionHeader,
		routing.RetryCountHeader}, routing.SessionHeaders,
	// Only MCP requests carry the first, and only MCP answers (the one
	// route whose response headers extproc reads without hooks) the second.
	[]string{routing.MCPSessionHeader, ":status"})

// localReply maps one kind of reply Envoy makes itself to an API error body.
// It matches Envoy's response flags (upstream failures, whatever the
// status), its response code details, or one status.
type localReply struct {
	Name  string
	Flags []string
	// Details, when set, matches the reply's response code details, and
	// Rewrite, when set, is the status the client gets instead.
	Details string
	Rewrite int
	// ClientAPI, when set, matches translated requests of this client API
	// (by the metadata extproc sets) instead of matching by path.
	ClientAPI        string
	Status           int
	Anthropic        bool
	Type, OpenAICode string
	Message          string
	// MCP replies are JSON-RPC errors, for MCP requests (mcp.go).
	MCP bool
}

// upstreamFlags are the response flags of replies Envoy makes because the
// provider could not be reached or went silent: no healthy host, connect
// failure, overflow, retries exhausted, no such cluster, timeouts, resets,
// protocol errors, stream idle timeout, maximum duration.
var upstreamFlags = []string{"UH", "UF", "UO", "URX", "NC", "UT", "UC", "UPE", "SI", "UMSDR"}

// localReplies lists the errors Envoy answers without extproc, each for
// both APIs: the Anthropic mapper matches /v1/messages paths, the OpenAI one
// after it everything else. Order matters: the first matching mapper wins.
func localReplies(maxBody int64, requestTimeout time.Duration) []localReply {
	// Each kind in OpenAI's words; anthropicType is its type in Anthropic's.
	type kind struct {
		localReply
		anthropicType string
	}
	kinds := []kind{
		{localReply{Name: "upstream", Flags: upstreamFlags, Type: "server_error", OpenAICode: "upstream_error",
			Message: "upstream error: %LOCAL_REPLY_BODY%"}, "api_error"},
		{localReply{Name: "too_large", Status: 413, Type: "invalid_request_error", OpenAICode: "request_too_large",
			Message: "request body exceeds the gateway limit of " + strconv.FormatInt(maxBody, 10) + " bytes"}, "request_too_large"},
		{localReply{Name: "headers_too_large", Status: 431, Type: "invalid_request_error", OpenAICode: "headers_too_large",
			Message: "request headers are too large"}, "invalid_request_error"},
		{localReply{Name: "processor_unavailable", Status: 502, Type: "server_error", OpenAICode: "processor_unavailable",
			Message: "the gateway cannot route requests right now: its request processor is unavailable"}, "api_error"},
		{localReply{Name: "processor_timeout", Status: 504, Type: "server_error", OpenAICode: "processor_timeout",
			Message: "the gateway's request processor did not answer in time"}, "api_error"},
		{localReply{Name: "overloaded", Details: overloadDetails, Rewrite: 503, Type: "server_error", OpenAICode: "overloaded",
			Message: "the gateway is short of memory: retry shortly"}, "overloaded_error"},
	}
	if requestTimeout > 0 {
		kinds = append(kinds, kind{localReply{Name: "request_timeout", Details: requestTimeoutDetails, Type: "invalid_request_error",
			OpenAICode: "request_timeout", Message: "the request was not received whole within " + seconds(requestTimeout)},
			"invalid_request_error"})
	}
	var out []localReply
	// A translated request's path is the provider's API's: its client's API
	// comes from the metadata, and those mappers go first.
	for _, client := range []config.API{config.APIAnthropic, config.APIOpenAI, ""} {
		for _, k := range kinds {
			for _, anthropic := range []bool{true, false} {
				if client != "" && anthropic != (client == config.APIAnthropic) {
					continue
				}
				lr := k.localReply
				lr.Anthropic, lr.ClientAPI = anthropic, string(client)
				if anthropic {
					lr.Type = k.anthropicType
				}
				out = append(out, lr)
			}
		}
	}
	return out
}

func (o Options) settings() (settings, error) {
	d := settings{
		listenAddress:   or(o.ListenAddress, "127.0.0.1"),
		listenPort:      o.ListenPort,
		adminAddress:    or(o.AdminAddress, "127.0.0.1"),
		adminPort:       o.AdminPort,
		failOpen:        o.FailOpen,
		responseHeaders: o.ResponseHeaders,
		caFile:          or(o.CAFile, "/etc/ssl/certs/ca-certificates.crt"),
		upstreamIdle:    orDuration(o.UpstreamIdleTimeout, DefaultIdleTimeout),
		streamIdle:      orDuration(o.StreamIdleTimeout, DefaultIdleTimeout),
	}
	// `extproc envoy-config` refuses more; an Envoy printed before it did
	// still gets its resources over xDS, with the bound.
	d.upstreamIdle = min(d.upstreamIdle, MaxUpstreamIdleTimeout)
	if o.RequestTimeout > 0 && o.RequestTimeout < time.Millisecond {
		return d, fmt.Errorf("a request timeout of %v: Envoy counts whole milliseconds", o.RequestTimeout)
	}
	if o.RequestTimeout >= 0 {
		d.requestTimeout = orDuration(o.RequestTimeout, DefaultRequestTimeout)
	}
	d.extProcMaxStreams = cmp.Or(o.ExtProcStreamsPerConnection, DefaultMaxStreams)
	maxBody := o.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = config.DefaultMaxBodyBytes
	}
	d.localReplies = localReplies(maxBody, d.requestTimeout)
	if o.MaxHeapBytes < 0 || o.MaxHeapBytes > 0 && o.MaxHeapBytes < minHeapBytes {
		return d, fmt.Errorf("a heap bound of %d bytes: want 0 (none) or at least %d", o.MaxHeapBytes, minHeapBytes)
	}
	d.maxHeapBytes = o.MaxHeapBytes
	bodyMode := or(o.BodyMode, BodyModeBySize)
	if bodyMode == BodyModeBySize {
		bodyMode, d.bySize = BodyModeFullDuplex, true
		d.bySizeRegex = "^[0-9]{" + strconv.Itoa(bufferedFromDigits) + ",}$"
		d.bySizeBufferBytes = maxBody + 1
	}
	if o.BodyModule != "" {
		if !d.bySize {
			return d, fmt.Errorf("a body module needs body mode %s, not %s", BodyModeBySize, bodyMode)
		}
		d.bodyModule = o.BodyModule
	}
	if o.Check != "" {
		if err := d.parseCheck(o.Check); err != nil {
			return d, err
		}
	}
	switch bodyMode {
	case BodyModeFullDuplex:
		// Full duplex hands the body to extproc chunk by chunk; the trailers
		// must be sent too so that a body ending in trailers is seen whole.
		d.bodyMode, d.trailerMode = extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED, extprocv3.ProcessingMode_SEND
		d.messageTimeout = orDuration(o.MessageTimeout, 10*time.Second)
		d.bufferLimitBytes = 1 << 20
		if d.bySize {
			// A big body waits whole in Envoy: BUFFERED or in the body
			// module. The connection's limit bounds that wait too (the
			// route's request_body_buffer_limit does not lift it).
			d.bufferLimitBytes = d.bySizeBufferBytes
		}
	case BodyModeBuffered:
		d.bodyMode, d.trailerMode = extprocv3.ProcessingMode_BUFFERED, extprocv3.ProcessingMode_SKIP
		d.messageTimeout = orDuration(o.MessageTimeout, BufferedMessageTimeout)
		// Envoy must hold the whole body; one byte more than the limit lets
		// extproc see it is over and answer in the API's shape.
		d.bufferLimitBytes = maxBody + 1
	default:
		return d, fmt.Errorf("unknown body mode %q: want %s, %s or %s", bodyMode, BodyModeFullDuplex, BodyModeBuffered, BodyModeBySize)
	}

	switch o.GRPCClient {
	case "", GRPCClientEnvoy:
	case GRPCClientGoogle:
		d.googleGRPC = true
	default:
		return d, fmt.Errorf("unknown gRPC client %q: want %s or %s", o.GRPCClient, GRPCClientEnvoy, GRPCClientGoogle)
	}
	d.accessLogPath = o.AccessLog
	d.traced = o.Traced
	if o.TraceCollector != "" {
		host, port, err := splitHostPort(o.TraceCollector)
		if err != nil {
			return d, fmt.Errorf("parsing the trace collector address %q: %w", o.TraceCollector, err)
		}
		d.traceHost, d.tracePort = host, port
	}
	if o.ExtProc != "" {
		d.extProc = true
		d.extProcTarget = o.ExtProc
		if err := d.parseExtProc(o.ExtProc); err != nil {
			return d, err
		}
	} else {
		if o.DirectCluster == "" {
			return d, fmt.Errorf("building envoy config without ext_proc: a direct cluster is required")
		}
		d.directCluster = o.DirectCluster
	}
	if o.HoldBody {
		if d.extProc {
			return d, fmt.Errorf("holding the body is for Envoy without ext_proc")
		}
		if o.BodyModule != "" {
			return d, fmt.Errorf("without ext_proc the body module holds the body: hold it with the buffer filter or the module, not both")
		}
		d.holdBodyBytes = maxBody + 1
	}
	d.baselinePort, d.baselineCluster = o.BaselinePort, o.BaselineCluster
	if d.baselinePort != 0 && d.baselineCluster == "" {
		return d, fmt.Errorf("a baseline listener needs a baseline cluster")
	}
	seen := map[string]bool{}
	for _, p := range o.Providers {
		if seen[p.Cluster] {
			continue
		}
		seen[p.Cluster] = true
		d.clusters = append(d.clusters, clusterData{name: p.Cluster, discovery: discovery(p.Host), host: p.Host, port: p.Port, tls: p.TLS,
			googleErrors: googleErrors(p)})
	}
	if d.extProc {
		d.addMCPClusters(o.MCPServers)
		if d.mcp {
			d.localReplies = append(mcpLocalReplies(d.localReplies), d.localReplies...)
		}
		d.addFallbacks(o.RetryRoutes, maxBody)
		d.addResponseClusters(o.Providers, !o.UsageInline)
		d.responseBufferBytes = ResponseBufferBytes
	}
	for _, c := range []*string{&d.directCluster, &d.baselineCluster} {
		if *c == "" {
			continue
		}
		name := *c
		if *c = providerCluster(o.Providers, name); *c == "" {
			return d, fmt.Errorf("cluster %q is not a provider's cluster", name)
		}
	}
	return d, nil
}

// providerCluster is the Envoy cluster of the first provider (o's own come
// before older configs') that the config gives the cluster name, which
// differs once its endpoint moved (routing.Router.MoveClusters); "" if none.
func providerCluster(providers []routing.Provider, name string) string {
	for _, p := range providers {
		if p.ConfigCluster == name || p.Cluster == name {
			return p.Cluster
		}
	}
	return ""
}

// endpoint is one address of a cluster: a Unix socket (pipe), else host
// and port.
type endpoint struct {
	pipe, host string
	port       int
}

// discovery is how Envoy finds the endpoint: a pipe or an IP as it is, a
// name by DNS.
func (e endpoint) discovery() clusterv3.Cluster_DiscoveryType {
	if e.pipe != "" {
		return clusterv3.Cluster_STATIC
	}
	return discovery(e.host)
}

// parseCheck reads extproc's check address.
func (d *settings) parseCheck(addr string) error {
	if d.bodyModule == "" {
		return errors.New("the check trip is for bodies the body module keeps: it needs a body module")
	}
	e, err := parseEndpoint(addr)
	if err != nil {
		return fmt.Errorf("parsing the check address %q: %w", addr, err)
	}
	d.check, d.checkEndpoint, d.checkDiscovery = true, e, e.discovery()
	return nil
}

// parseEndpoint reads an address of extproc's: "unix:/path" or
// "host:port".
func parseEndpoint(addr string) (endpoint, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok && path != "" {
		return endpoint{pipe: path}, nil
	}
	host, port, err := splitHostPort(addr)
	return endpoint{host: host, port: port}, err
}

// parseExtProc reads extproc's comma-separated addresses.
func (d *settings) parseExtProc(list string) error {
	d.extProcDiscovery = clusterv3.Cluster_STATIC
	for _, addr := range strings.Split(list, ",") {
		e, err := parseEndpoint(addr)
		if err != nil {
			return fmt.Errorf("parsing extproc address %q: %w", addr, err)
		}
		d.extProcEndpoints = append(d.extProcEndpoints, e)
		if e.discovery() != clusterv3.Cluster_STATIC {
			// LOGICAL_DNS takes one endpoint only.
			d.extProcDiscovery = clusterv3.Cluster_STRICT_DNS
			if !strings.Contains(list, ",") {
				d.extProcDiscovery = clusterv3.Cluster_LOGICAL_DNS
			}
		}
	}
	if len(d.extProcEndpoints) > 1 && d.googleGRPC {
		return errors.New("the google gRPC client takes one extproc address, not a list of slots")
	}
	return nil
}

// addFallbacks lists what requests with fallbacks need: a route entry
// per retry route, selected by FallbackHeader, whose clusters come per
// attempt from the metadata extproc sets; and for each provider an attempt
// cluster whose upstream ext_proc filter gives each attempt its own key,
// model and path. Without retry routes nothing is added, so requests
// without fallbacks pass the same Envoy config as before.
func (d *settings) addFallbacks(routes []routing.RetryRoute, maxBody int64) {
	if len(routes) == 0 {
		return
	}
	// The router replays the body from its buffer on every attempt.
	d.attemptBufferBytes = maxBody + 1
	for _, rr := range routes {
		d.retryRoutes = append(d.retryRoutes, retryRouteData{key: rr.Key(), retryOn: rr.Policy.RetryOn(), statuses: rr.Policy.Statuses,
			numRetries: rr.Attempts - 1, perTry: rr.Policy.FirstByteTimeout})
	}
	for _, c := range slices.Clone(d.clusters) {
		c.name, c.attempt = routing.AttemptClusterPrefix+c.name, true
		d.clusters = append(d.clusters, c)
	}
	d.defaultAttemptCluster = d.clusters[len(d.clusters)-1].name
}

// ResponseBufferBytes bounds a translated JSON answer, which Envoy buffers
// whole for extproc.
const ResponseBufferBytes = 32 << 20

// addResponseClusters gives each provider its two response clusters. They
// cost nothing until extproc sends a request there: only requests whose
// usage is counted or whose answer is translated.
func (d *settings) addResponseClusters(providers []routing.Provider, observe bool) {
	seen := map[string]bool{}
	for _, p := range providers {
		if seen[p.Cluster] {
			continue
		}
		seen[p.Cluster] = true
		c := clusterData{discovery: discovery(p.Host), host: p.Host, port: p.Port, tls: p.TLS, response: true}
		c.name, c.observe, c.googleErrors = routing.UsageClusterPrefix+p.Cluster, observe, googleErrors(p)
		d.clusters = append(d.clusters, c)
		// Translated answers' errors are rewritten with them.
		c.name, c.observe, c.googleErrors = routing.TranslateClusterPrefix+p.Cluster, false, false
		d.clusters = append(d.clusters, c)
	}
}

// discovery resolves names through DNS and uses literal addresses as they are.
func discovery(host string) clusterv3.Cluster_DiscoveryType {
	if net.ParseIP(host) != nil {
		return clusterv3.Cluster_STATIC
	}
	return clusterv3.Cluster_LOGICAL_DNS
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// seconds writes d in seconds, as people read a timeout: "300 s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
