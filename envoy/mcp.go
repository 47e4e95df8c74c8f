package envoy

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"switchyard/config"
	"switchyard/routing"
)

// MCP servers: a request to /mcp/... first matches mcpEntryRoute, which
// only sets what extproc sees of it (the ext_proc filter reads its
// per-route config at that first match): the JSON-RPC body buffered (a
// message is small and is read whole), the response headers and the
// response body streamed, chunk by chunk, so that a tools/list answer can
// be narrowed to the key's tools and a tool result measured, while an SSE
// stream still reaches the client event by event. extproc then names the
// server's cluster and the request matches mcpRoute. Other requests never
// match either route.

// MCPPathPrefix is where MCP servers are reached.
const MCPPathPrefix = "/mcp"

// addMCPClusters adds a cluster per MCP server.
func (d *settings) addMCPClusters(servers []routing.MCPServer) {
	for _, s := range servers {
		d.clusters = append(d.clusters, clusterData{name: s.Cluster, discovery: discovery(s.Host), host: s.Host, port: s.Port, tls: s.TLS})
	}
	d.mcp = len(servers) > 0
}

// mcpEntryRoute matches an MCP request before extproc has decided it.
func (d *settings) mcpEntryRoute() *routev3.Route {
	override := &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
			ResponseBodyMode:    extprocv3.ProcessingMode_STREAMED,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
	}}}
	r := noDecisionRoute()
	r.Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: MCPPathPrefix}}
	r.RequestBodyBufferLimit = wrapperspb.UInt64(uint64(d.bufferLimitBytes))
	r.TypedPerFilterConfig = map[string]*anypb.Any{extProcFilterName: typed(override)}
	return r
}

// mcpRoute forwards a decided MCP request to its server's cluster. An SSE
// stream (the answer to a POST, or the GET stream of server messages) may
// stay silent for as long as the session lives: no idle timeout here; the
// client or the server ends it.
func (d *settings) mcpRoute() *routev3.Route {
	action := d.forward()
	action.IdleTimeout = duration(0)
	action.ClusterSpecifier = &routev3.RouteAction_ClusterHeader{ClusterHeader: routing.ClusterHeader}
	return &routev3.Route{
		Match: prefixWithHeader(&routev3.HeaderMatcher{Name: routing.ClusterHeader, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: prefix(config.MCPClusterPrefix),
		}}),
		Action:                 &routev3.Route_Route{Route: action},
		RequestHeadersToRemove: []string{routing.ClusterHeader},
	}
}

// mcpLocalReplies are the replies Envoy makes itself (body too large, the
// server unreachable or gone mid-answer, extproc unavailable) as JSON-RPC
// errors for MCP requests: the same kinds, matched first.
func mcpLocalReplies(all []localReply) []localReply {
	var out []localReply
	for _, lr := range all {
		if lr.ClientAPI == "" && !lr.Anthropic {
			lr.MCP, lr.Name = true, "mcp_"+lr.Name
			out = append(out, lr)
		}
	}
	return out
}

// mcpReplyFilter matches MCP requests: by path before extproc has decided
// them, by the metadata extproc sets once it has (the path is the
// server's then).
func (d *settings) mcpReplyFilter() *accesslogv3.AccessLogFilter {
	byMetadata := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{MetadataFilter: &accesslogv3.MetadataFilter{
		MatchIfKeyNotFound: wrapperspb.Bool(false),
		Matcher: &matcherv3.MetadataMatcher{
			Filter: routing.ClientNamespace,
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "api"}}},
			Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(routing.MCPClientAPI)}},
		},
	}}}
	byPath := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{
		Header: &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: prefix(MCPPathPrefix)}},
	}}}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{
		Filters: []*accesslogv3.AccessLogFilter{byMetadata, byPath},
	}}}
}

// mcpReplyBody is a JSON-RPC error without an id (Envoy does not know the
// message's): code -32000, JSON-RPC's generic server error.
func mcpReplyBody(lr localReply) *structpb.Struct {
	return object(map[string]*structpb.Value{
		"jsonrpc": structpb.NewStringValue("2.0"),
		"id":      structpb.NewNullValue(),
		"error": structpb.NewStructValue(object(map[string]*structpb.Value{
			"code":    structpb.NewNumberValue(-32000),
			"message": structpb.NewStringValue(lr.Message),
			"data":    structpb.NewStructValue(object(map[string]*structpb.Value{"reason": structpb.NewStringValue(lr.OpenAICode)})),
		})),
	})
}
