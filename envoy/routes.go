package envoy

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	prioritygroupv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/router/cluster_specifiers/priority_group/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"switchyard/routing"
)

// gatewayRoutes is the gateway listener's route configuration.
func (d *settings) gatewayRoutes() *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: gatewayListenerName}
	var routes []*routev3.Route
	if d.extProc {
		// Stripped from every client request before any filter runs: a
		// client never picks the cluster.
		rc.InternalOnlyHeaders = d.internalHeaders()
		if d.mcp {
			routes = append(routes, d.mcpRoute())
		}
		routes = append(routes, d.decidedRoute())
		for _, rr := range d.retryRoutes {
			routes = append(routes, d.retryRoute(rr))
		}
		if d.mcp {
			routes = append(routes, d.mcpEntryRoute())
		}
		if d.check {
			routes = append(routes, d.bodyRoute())
		}
		if d.bySize {
			routes = append(routes, d.bySizeRoute())
		}
		// Without a decision (extproc unreachable in fail-open mode)
		// nothing is forwarded. Every request matches it (or the by-size
		// route) first, when ext_proc reads its per-route config: with
		// hooks it also sends extproc the response headers.
		routes = append(routes, d.withHooksMode(noDecisionRoute()))
		rc.ResponseHeadersToRemove = ProviderAccountHeaders
	} else {
		// Baseline without ext_proc (benchmarks): everything goes to one
		// cluster.
		routes = append(routes, d.clusterRoute(d.directCluster))
	}
	rc.VirtualHosts = []*routev3.VirtualHost{{Name: "gateway", Domains: []string{"*"}, Routes: routes}}
	return rc
}

// baselineRoutes send everything to the baseline cluster.
func (d *settings) baselineRoutes() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "baseline", VirtualHosts: []*routev3.VirtualHost{{
		Name: "baseline", Domains: []string{"*"}, Routes: []*routev3.Route{d.clusterRoute(d.baselineCluster)},
	}}}
}

// decidedRoute: requests reach a provider only through the cluster extproc
// chose.
func (d *settings) decidedRoute() *routev3.Route {
	action := d.forward()
	action.ClusterSpecifier = &routev3.RouteAction_ClusterHeader{ClusterHeader: routing.ClusterHeader}
	r := &routev3.Route{
		Match:  prefixWithHeader(&routev3.HeaderMatcher{Name: routing.ClusterHeader, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}),
		Action: &routev3.Route_Route{Route: action},
		// The cluster name is Switchyard's business, not the provider's.
		RequestHeadersToRemove: d.decisionHeaders(routing.ClusterHeader),
	}
	if d.check {
		// A request a check decided opens no ext_proc stream.
		r.TypedPerFilterConfig = map[string]*anypb.Any{extProcFilterName: extProcOff()}
	}
	return r
}

// retryRoute takes the requests with fallbacks of one retry policy and
// number of attempts: the cluster of each attempt comes from the metadata
// extproc sets; the upstream filter of the attempt cluster gives it its key
// and model.
func (d *settings) retryRoute(rr retryRouteData) *routev3.Route {
	pg := &prioritygroupv3.PriorityGroupClusterSpecifier{
		// Used only when the metadata is missing, which extproc never allows.
		PriorityGroups: []*prioritygroupv3.PriorityGroup{{
			Name:     "unset",
			Clusters: []*prioritygroupv3.ClusterWeight{{ClusterName: d.defaultAttemptCluster, Weight: wrapperspb.UInt32(1)}},
		}},
		OverrideMetadataNamespace: routing.AttemptsNamespace,
	}
	action := d.forward()
	action.ClusterSpecifier = &routev3.RouteAction_InlineClusterSpecifierPlugin{InlineClusterSpecifierPlugin: &routev3.ClusterSpecifierPlugin{
		Extension: &corev3.TypedExtensionConfig{Name: "envoy.router.cluster_specifier_plugin.priority_group", TypedConfig: typed(pg)},
	}}
	rp := &routev3.RetryPolicy{
		RetryOn:               rr.retryOn,
		NumRetries:            wrapperspb.UInt32(uint32(rr.numRetries)),
		RefreshClusterOnRetry: true,
		// Each retry goes to another provider: no reason to wait (Envoy's
		// default back-off is 25 ms and more, with jitter).
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: duration(time.Millisecond), MaxInterval: duration(time.Millisecond)},
	}
	for _, s := range rr.statuses {
		rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(s))
	}
	if rr.perTry > 0 {
		// first_byte_timeout: an attempt that has sent no response headers
		// by then fails.
		rp.PerTryTimeout = duration(rr.perTry)
	}
	action.RetryPolicy = rp
	return &routev3.Route{
		Match: prefixWithHeader(&routev3.HeaderMatcher{
			Name: routing.FallbackHeader, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(rr.key)},
		}),
		Action: &routev3.Route_Route{Route: action},
		// Every attempt replays the body from this buffer; it must hold the
		// largest body.
		RequestBodyBufferLimit: wrapperspb.UInt64(uint64(d.attemptBufferBytes)),
		RequestHeadersToRemove: d.decisionHeaders(routing.FallbackHeader),
	}
}

// decisionHeaders are what a forwarding route removes: its decision
// header and, with the check, the trip header of a request the check sent
// on to ext_proc.
func (d *settings) decisionHeaders(h string) []string {
	if d.check {
		return []string{h, routing.TripHeader}
	}
	return []string{h}
}

// bySizeRoute matches a request without a decision yet whose body is
// announced at BufferedFromBytes or more: it goes to extproc BUFFERED, so
// that Envoy keeps it unless extproc changes it; other bodies go full
// duplex. Once extproc has decided, the request matches an earlier route.
func (d *settings) bySizeRoute() *routev3.Route {
	override := &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
		// One override carries both: the body buffered and, with hooks,
		// the response headers.
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  d.responseHeaderMode(),
			RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
	}}}
	if d.bodyModule != "" {
		// Envoy's body module keeps and summarizes the body instead.
		override.GetOverrides().ProcessingMode.RequestBodyMode = extprocv3.ProcessingMode_NONE
	}
	r := noDecisionRoute()
	r.Match = prefixWithHeader(&routev3.HeaderMatcher{Name: "content-length", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: d.bySizeRegex}}},
	}})
	r.RequestBodyBufferLimit = wrapperspb.UInt64(uint64(d.bySizeBufferBytes))
	r.TypedPerFilterConfig = map[string]*anypb.Any{extProcFilterName: typed(override)}
	if d.bodyModule != "" {
		r.TypedPerFilterConfig[bodyModuleFilterName] = d.bodyModuleRoute()
	}
	if d.check {
		r.TypedPerFilterConfig[checkFilterName] = checkOn()
	}
	return r
}

// withHooksMode has the ext_proc filter send extproc the response headers
// of the requests that first match r, when hooks are configured. A route
// reaches open connections over xDS, where a listener would not. With the
// body module the route always carries its mode: the filter's own is
// BUFFERED then (extProcFilter).
func (d *settings) withHooksMode(r *routev3.Route) *routev3.Route {
	if d.responseHeaders || d.bodyModule != "" {
		override := &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
			ProcessingMode: d.processingMode(d.responseHeaderMode()),
		}}}
		r.TypedPerFilterConfig = map[string]*anypb.Any{extProcFilterName: typed(override)}
	}
	return r
}

// noDecisionRoute answers 502 to every request it matches.
func noDecisionRoute() *routev3.Route {
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
	}
}

// clusterRoute sends every request to one cluster.
func (d *settings) clusterRoute(cluster string) *routev3.Route {
	action := d.forward()
	action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: cluster}
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: action},
	}
}

// forward is what every forwarding route shares: no overall timeout (an
// answer may stream for minutes), the upstream idle timeout, and the
// provider's own host name.
func (d *settings) forward() *routev3.RouteAction {
	return &routev3.RouteAction{
		Timeout:              duration(0),
		IdleTimeout:          duration(d.upstreamIdle),
		HostRewriteSpecifier: &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)},
	}
}

func prefixWithHeader(h *routev3.HeaderMatcher) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{h}}
}
