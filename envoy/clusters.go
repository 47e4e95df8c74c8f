package envoy

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"switchyard/config"
	"switchyard/routing"
)

// httpProtocolOptionsKey is where a cluster's upstream HTTP options go.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// extProcCluster is the way to extproc, named name.
func (d *settings) extProcCluster(name string) *clusterv3.Cluster {
	addrs := make([]*corev3.Address, len(d.extProcEndpoints))
	for i, e := range d.extProcEndpoints {
		addrs[i] = e.address()
	}
	max := wrapperspb.UInt32(uint32(d.extProcMaxStreams))
	cl := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: d.extProcDiscovery},
		ConnectTimeout:       duration(time.Second),
		// Every request in flight holds an ext_proc stream (a counted or
		// translated one two): Envoy's default of 1024 concurrent requests
		// per cluster would refuse the rest.
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority: corev3.RoutingPriority_DEFAULT, MaxRequests: max, MaxPendingRequests: max,
		}}},
		// ext_proc is gRPC: HTTP/2 to extproc, one connection multiplexing
		// every request's stream.
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: typed(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{MaxConcurrentStreams: max},
				},
			}},
		})},
		LoadAssignment: loadAssignment(name, addrs...),
	}
	if len(addrs) > 1 {
		slots(cl)
	}
	return cl
}

// Envoy asks each extproc slot for its gRPC health every
// extProcHealthInterval; one SERVING answer makes a slot healthy (a new
// instance takes traffic within an interval), extProcUnhealthyChecks
// failed ones in a row unhealthy, so that one slow answer on a busy host
// does not flip it.
const (
	extProcHealthInterval  = 500 * time.Millisecond
	extProcUnhealthyChecks = 2
)

// ExtProcUnhealthyAfter is how long Envoy may still send new streams to an
// instance that answers NOT_SERVING; extproc's -drain-quiet waits for twice
// as long without a new stream.
const ExtProcUnhealthyAfter = extProcUnhealthyChecks * extProcHealthInterval

// slots makes cl's endpoints slots of extproc instances that replace one
// another (docs/RELIABILITY.md has the measurements):
//   - gRPC health checking sends new streams only to instances that answer
//     SERVING: a free slot (no socket, connection refused) and a draining
//     instance (NOT_SERVING) get none. The check runs at the same pace
//     whether or not the cluster has seen traffic, so an instance started
//     in a free slot of an idle gateway is taken within an interval too.
//   - Connections to a host that fails its check stay open: a draining
//     instance finishes the streams it has.
//   - Outlier detection ejects an instance whose connection is refused at
//     once (a kill -9 between two checks), instead of failing every
//     request sent there until the next check.
//   - Envoy's default panic threshold stays: with one slot of two healthy
//     (50 %) it routes by health; with none it tries both, which can only
//     help. ignore_health_on_host_removal concerns hosts that EDS removes;
//     these are static.
func slots(cl *clusterv3.Cluster) {
	interval := duration(extProcHealthInterval)
	cl.HealthChecks = []*corev3.HealthCheck{{
		Timeout:                  duration(time.Second),
		Interval:                 interval,
		NoTrafficInterval:        interval,
		NoTrafficHealthyInterval: interval,
		UnhealthyInterval:        interval,
		UnhealthyThreshold:       wrapperspb.UInt32(extProcUnhealthyChecks),
		HealthyThreshold:         wrapperspb.UInt32(1),
		HealthChecker: &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{
			ServiceName: extprocsvc.ExternalProcessor_ServiceDesc.ServiceName,
		}},
	}}
	cl.OutlierDetection = &clusterv3.OutlierDetection{
		SplitExternalLocalOriginErrors:         true,
		ConsecutiveLocalOriginFailure:          wrapperspb.UInt32(1),
		EnforcingConsecutiveLocalOriginFailure: wrapperspb.UInt32(100),
		// Only the local-origin (connect) detector: extproc answers no
		// HTTP status to count.
		EnforcingConsecutive_5Xx:           wrapperspb.UInt32(0),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(0),
		EnforcingSuccessRate:               wrapperspb.UInt32(0),
		EnforcingLocalOriginSuccessRate:    wrapperspb.UInt32(0),
		// Health checking takes over once the ejection ends.
		BaseEjectionTime:   duration(ExtProcUnhealthyAfter),
		MaxEjectionPercent: wrapperspb.UInt32(50),
	}
	// Each stream refused by a killed instance is retried (extProcRetry),
	// all at once: Envoy's default of 3 retries in flight would fail the rest.
	th := cl.CircuitBreakers.Thresholds[0]
	th.MaxRetries = th.MaxRequests
}

// providerCluster is one of a provider's clusters: its own, its attempt
// cluster or one of its response clusters.
func (d *settings) providerCluster(c clusterData) *clusterv3.Cluster {
	cl := &clusterv3.Cluster{
		Name:                 c.name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: c.discovery},
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		ConnectTimeout:       duration(5 * time.Second),
		LoadAssignment:       loadAssignment(c.name, socketAddress(c.host, c.port)),
	}
	if c.discovery == clusterv3.Cluster_STATIC {
		// The routes' auto_host_rewrite uses an endpoint's hostname, which
		// a DNS cluster's endpoint has and an IP address's lacks: without
		// one the client's own Host would reach the provider, with its key.
		ep := cl.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint()
		ep.Hostname = config.HostHeader(c.host, c.port, c.tls)
	}
	var filters []*hcmv3.HttpFilter
	switch {
	case c.attempt:
		filters = append(filters, d.attemptFilter(cl))
	case c.response:
		filters = append(filters, d.responseFilter(cl, c.observe))
	}
	if c.googleErrors && d.extProc {
		// After the other filter: answers reach it first.
		filters = append(filters, d.googleErrorsFilter())
	}
	if filters != nil {
		cl.TypedExtensionProtocolOptions = upstreamFilters(filters...)
	}
	if c.tls {
		tls := &tlsv3.UpstreamTlsContext{
			Sni: c.host,
			CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: &corev3.DataSource{
					Specifier: &corev3.DataSource_Filename{Filename: d.caFile},
				}},
			}},
		}
		cl.TransportSocket = &corev3.TransportSocket{
			Name:       "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(tls)},
		}
	}
	return cl
}

// attemptFilter makes cl an attempt cluster: each attempt's headers and body
// pass extproc, which sets this attempt's key, model and path.
func (d *settings) attemptFilter(cl *clusterv3.Cluster) *hcmv3.HttpFilter {
	cl.PerConnectionBufferLimitBytes = wrapperspb.UInt32(uint32(d.attemptBufferBytes))
	// Envoy allows 3 retries in flight per cluster by default; past that a
	// failed attempt would reach the client instead of the next provider.
	cl.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority: corev3.RoutingPriority_DEFAULT, MaxRetries: wrapperspb.UInt32(100000),
	}}}
	ep := &extprocv3.ExternalProcessor{
		GrpcService:              d.upstreamService(PhaseUpstream),
		FailureModeAllow:         false,
		StatusOnError:            &typev3.HttpStatus{Code: typev3.StatusCode_BadGateway},
		MessageTimeout:           duration(2 * time.Second),
		AllowContentLengthHeader: true,
		RequestAttributes:        []string{"upstream.request_attempt_count", "xds.cluster_name"},
		// The gateway's own id of the request finds its plan.
		MetadataOptions: d.forwardRequestID(),
		// A counted request's attempts also stream their answer's body to
		// extproc.
		AllowModeOverride: true,
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode: extprocv3.ProcessingMode_SEND,
			// The attempt's status tells extproc which providers keep failing.
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		MutationRules: allowAllRouting(),
	}
	return extProcUpstream(ep)
}

// responseFilter makes cl a response cluster: the response body passes
// extproc, observed for its token usage without Envoy waiting for extproc
// (observe), or rewritten into the client's API, chunk by chunk.
func (d *settings) responseFilter(cl *clusterv3.Cluster, observe bool) *hcmv3.HttpFilter {
	ep := &extprocv3.ExternalProcessor{
		GrpcService:  d.upstreamService(PhaseResponse),
		ForwardRules: allowedHeaders(ResponseFilterHeaders),
		// The gateway's own id of the request finds its plan; it comes with
		// the first message.
		MetadataOptions: d.forwardRequestID(),
		ProcessingMode: &extprocv3.ProcessingMode{
			// One wait fewer: the id comes with the response headers.
			RequestHeaderMode:   extprocv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_STREAMED,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
	}
	if observe {
		ep.ObservabilityMode = true
		// Counting tokens never fails a request.
		ep.FailureModeAllow = true
		// The request headers bring the id early (Envoy does not wait), so
		// a request that never gets an answer still ends its record.
		ep.ProcessingMode.RequestHeaderMode = extprocv3.ProcessingMode_SEND
	} else {
		// A JSON answer is buffered whole to be translated.
		cl.PerConnectionBufferLimitBytes = wrapperspb.UInt32(uint32(d.responseBufferBytes))
		ep.StatusOnError = &typev3.HttpStatus{Code: typev3.StatusCode_BadGateway}
		ep.MessageTimeout = duration(2 * time.Second)
		ep.AllowContentLengthHeader = true
		// A JSON answer is translated whole: extproc asks for it BUFFERED
		// at its headers.
		ep.AllowModeOverride = true
		ep.MutationRules = allowAllRouting()
	}
	return extProcUpstream(ep)
}

// upstreamService reaches extproc from a cluster's filter, whose streams
// carry the phase in their metadata.
func (d *settings) upstreamService(phase string) *corev3.GrpcService {
	return &corev3.GrpcService{
		TargetSpecifier: envoyGRPC(extProcClusterName),
		Timeout:         duration(10 * time.Second),
		InitialMetadata: []*corev3.HeaderValue{{Key: PhaseMetadataKey, Value: phase}},
		RetryPolicy:     d.extProcRetry(),
	}
}

// extProcRetry opens a stream Envoy could not open on one extproc slot on
// the other: a killed instance refuses connections until outlier detection
// has ejected it on every worker, some milliseconds in which each request
// sent there would fail. A stream that has sent anything is never retried.
// Nil with one extproc: there is nowhere else to go.
func (d *settings) extProcRetry() *corev3.RetryPolicy {
	if len(d.extProcEndpoints) < 2 {
		return nil
	}
	return &corev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,reset-before-request",
		NumRetries: wrapperspb.UInt32(uint32(len(d.extProcEndpoints) - 1)),
		RetryBackOff: &corev3.BackoffStrategy{
			BaseInterval: duration(time.Millisecond), MaxInterval: duration(10 * time.Millisecond),
		},
		RetryHostPredicate: []*corev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &corev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: typed(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
}

func (d *settings) forwardRequestID() *extprocv3.MetadataOptions {
	ns := []string{routing.RequestNamespace}
	if d.check {
		ns = append(ns, routing.CheckNamespace)
	}
	return &extprocv3.MetadataOptions{ForwardingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: ns}}
}

// upstreamFilters runs ep on each upstream request of an HTTP/1.1 cluster.
func upstreamFilters(filters ...*hcmv3.HttpFilter) map[string]*anypb.Any {
	return map[string]*anypb.Any{httpProtocolOptionsKey: typed(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}},
		HttpFilters: append(filters,
			&hcmv3.HttpFilter{Name: "envoy.filters.http.upstream_codec", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&upstreamcodecv3.UpstreamCodec{})}}),
	})}
}

// extProcUpstream is ep as a cluster's upstream filter.
// Its name is not the router-level filter's: a route's per-filter config
// for that one (extProcOff on the decided route) must not reach it.
func extProcUpstream(ep *extprocv3.ExternalProcessor) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: upstreamExtProcName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(ep)}}
}

func loadAssignment(cluster string, addrs ...*corev3.Address) *endpointv3.ClusterLoadAssignment {
	eps := make([]*endpointv3.LbEndpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: a}}}
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}},
	}
}

func (e endpoint) address() *corev3.Address {
	if e.pipe != "" {
		return pipeAddress(e.pipe)
	}
	return socketAddress(e.host, e.port)
}
