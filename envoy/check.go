package envoy

import (
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"switchyard/routing"
)

// The check trip (Options.Check): a body the module kept is decided by a
// check over HTTP/1.1 (Envoy's ext_authz filter, on the by-size route
// only) instead of an ext_proc stream, which costs Envoy and extproc less
// per request. A plan the check cannot carry answers routing.TripHeader,
// and the request goes on to the body route: ext_proc, BUFFERED, as
// without the check.
const (
	// checkFilterName is also the namespace of the metadata the filter
	// keeps from a check's answer.
	checkFilterName  = routing.CheckNamespace
	checkClusterName = "switchyard_check"
)

// checkFilter asks extproc for the decision on a body the module kept. Off
// but on the by-size route (checkRoute).
func (d *settings) checkFilter(src routeSource) *hcmv3.HttpFilter {
	ea := &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
			ServerUri: &corev3.HttpUri{
				Uri:              "http://" + checkClusterName,
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: checkClusterName},
				Timeout:          duration(d.messageTimeout),
			},
			PathPrefix: routing.CheckPathPrefix,
			// A check whose connection closed before it was sent (extproc
			// restarting on the same socket) is asked again on another; one
			// extproc may have answered is not (it admits).
			RetryPolicy: &corev3.RetryPolicy{RetryOn: "connect-failure,reset-before-request", NumRetries: wrapperspb.UInt32(2)},
			AuthorizationRequest: &extauthzv3.AuthorizationRequest{HeadersToAdd: []*corev3.HeaderValue{
				{Key: routing.CheckSummaryHeader, Value: "%DYNAMIC_METADATA(" + routing.BodyNamespace + ":" + routing.BodySummaryKey + ")%"},
				{Key: routing.CheckLengthHeader, Value: "%REQ(content-length)%"},
			}},
			AuthorizationResponse: &extauthzv3.AuthorizationResponse{
				AllowedUpstreamHeaders:     checkUpstreamHeaders(),
				AllowedClientHeaders:       &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{exact("content-type"), exact("retry-after"), prefix("x-")}},
				DynamicMetadataFromHeaders: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{exact(routing.CheckFlightHeader)}},
			},
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    d.failOpen,
		// As the ext_proc filter: 502, which the local reply maps to
		// "processor unavailable".
		StatusOnError:   &typev3.HttpStatus{Code: typev3.StatusCode_BadGateway},
		ClearRouteCache: true,
		AllowedHeaders:  d.checkAllowedHeaders(src),
	}
	return &hcmv3.HttpFilter{Name: checkFilterName, Disabled: true, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(ea)}}
}

// checkAllowedHeaders are the client's headers a check carries: those
// extproc reads, or with hooks, or over xDS where hooks may come with any
// reload, every one (as extProcFilter's).
func (d *settings) checkAllowedHeaders(src routeSource) *matcherv3.ListStringMatcher {
	if d.responseHeaders || src == routesRDS {
		return &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}}}}
	}
	names := ForwardedHeaders
	if d.traced {
		names = slices.Concat(names, TraceContextHeaders)
	}
	return allowedHeaders(names).GetAllowedHeaders()
}

// checkUpstreamHeaders are the headers a check's answer may set on the
// request (routing.CheckUpstreamHeader).
func checkUpstreamHeaders() *matcherv3.ListStringMatcher {
	l := &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{prefix("x-")}}
	for _, h := range routing.CheckUpstreamNames {
		l.Patterns = append(l.Patterns, exact(h))
	}
	return l
}

// internalHeaders are the headers Envoy strips from every client request:
// the decision's, and with the check the check's.
func (d *settings) internalHeaders() []string {
	if d.check {
		return slices.Concat(routing.InternalHeaders, routing.CheckHeaders)
	}
	return routing.InternalHeaders
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

// checkOn turns the check on for the by-size route.
func checkOn() *anypb.Any {
	return typed(&routev3.FilterConfig{Config: typed(&extauthzv3.ExtAuthzPerRoute{
		Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{}},
	})})
}

// extProcOff keeps the ext_proc filter off a request a check decided: it
// reads its route after the check re-routed the request.
func extProcOff() *anypb.Any {
	return typed(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}})
}

// bodyRoute takes a big request whose check answered routing.TripHeader:
// ext_proc then reads it as the by-size route would without the check.
func (d *settings) bodyRoute() *routev3.Route {
	r := d.bySizeRoute()
	r.Match.Headers = append(r.Match.Headers, &routev3.HeaderMatcher{Name: routing.TripHeader,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}})
	delete(r.TypedPerFilterConfig, checkFilterName)
	return r
}

// checkCluster is extproc's check listener, HTTP/1.1.
func (d *settings) checkCluster() *clusterv3.Cluster {
	max := wrapperspb.UInt32(uint32(d.extProcMaxStreams))
	return &clusterv3.Cluster{
		Name:                 checkClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: d.checkDiscovery},
		ConnectTimeout:       duration(time.Second),
		// A check holds a connection while it waits: one per request being
		// decided.
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority: corev3.RoutingPriority_DEFAULT, MaxRequests: max, MaxPendingRequests: max, MaxConnections: max,
		}}},
		LoadAssignment: loadAssignment(checkClusterName, d.checkEndpoint.address()),
	}
}
