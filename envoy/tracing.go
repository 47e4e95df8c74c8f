package envoy

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"switchyard/config"
)

// Envoy's own traces (Options.TraceCollector): the gateway listener's
// connection manager starts a span per request, continuing the client's
// W3C traceparent, and exports it over OTLP gRPC to the collector
// cluster. Its ext_proc filter makes a child span of each call to extproc
// and passes it in the call's gRPC metadata (traceparent), which extproc
// continues: Envoy's spans and extproc's are one trace.
const (
	// TraceCollectorCluster is the cluster of the OTLP collector.
	TraceCollectorCluster = config.TraceCollectorClusterName
	// EnvoyServiceName is the service.name of Envoy's spans.
	EnvoyServiceName    = "switchyard-envoy"
	openTelemetryTracer = "envoy.tracers.opentelemetry"
)

// The W3C trace context headers: on a client's request, and on the gRPC
// call of Envoy's ext_proc filter when Envoy traces.
const (
	TraceparentHeader = "traceparent"
	TracestateHeader  = "tracestate"
)

// TraceContextHeaders are forwarded to extproc beside ForwardedHeaders when
// extproc traces.
var TraceContextHeaders = []string{TraceparentHeader, TracestateHeader}

// tracing is the connection manager's tracing: every request sampled
// unless its traceparent says it is not (the sampling decision is the
// client's, or OTEL_TRACES_SAMPLER's in extproc), a child span per
// upstream request.
func (d *settings) tracing() *hcmv3.HttpConnectionManager_Tracing {
	otel := &tracev3.OpenTelemetryConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: envoyGRPC(TraceCollectorCluster), Timeout: duration(5 * time.Second)},
		ServiceName: EnvoyServiceName,
	}
	return &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling:    &typev3.Percent{Value: 100},
		SpawnUpstreamSpan: wrapperspb.Bool(true),
		Provider:          &tracev3.Tracing_Http{Name: openTelemetryTracer, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: typed(otel)}},
	}
}

// traceCollectorCluster is the way to the collector: OTLP over gRPC, so
// HTTP/2.
func (d *settings) traceCollectorCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 TraceCollectorCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery(d.traceHost)},
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		ConnectTimeout:       duration(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: typed(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		})},
		LoadAssignment: loadAssignment(TraceCollectorCluster, socketAddress(d.traceHost, d.tracePort)),
	}
}
