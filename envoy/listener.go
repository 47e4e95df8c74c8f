package envoy

import (
	"regexp"
	"strconv"

	"slices"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	dynmodv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/dynamic_modules/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	dynmodfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"switchyard/config"
	"switchyard/routing"
)

// Names of the Envoy extensions the config uses.
const (
	hcmFilterName        = "envoy.filters.network.http_connection_manager"
	extProcFilterName    = "envoy.filters.http.ext_proc"
	upstreamExtProcName  = "switchyard.upstream.ext_proc"
	bodyModuleFilterName = "switchyard.body"
	routerFilterName     = "envoy.filters.http.router"
	bufferFilterName     = "envoy.filters.http.buffer"
	extProcClusterName   = config.ExtProcClusterName
	gatewayListenerName  = "switchyard"
)

// gatewayListener is the listener agents talk to.
func (d *settings) gatewayListener(routes *routev3.RouteConfiguration, src routeSource) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:        "switchyard",
		CodecType:         hcmv3.HttpConnectionManager_AUTO,
		GenerateRequestId: wrapperspb.Bool(true),
		// LLM answers can stream for minutes: idle streams are closed, and
		// the request timeout stops at the body's last byte.
		RequestTimeout:            duration(d.requestTimeout),
		StreamIdleTimeout:         duration(d.streamIdle),
		MaxRequestHeadersKb:       wrapperspb.UInt32(64),
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: duration(DefaultIdleTimeout)},
	}
	if d.accessLogPath != "" {
		hcm.AccessLog = []*accesslogv3.AccessLog{d.accessLog()}
	}
	if d.traceHost != "" {
		hcm.Tracing = d.tracing()
	}
	if d.extProc {
		hcm.LocalReplyConfig = d.localReplyConfig()
	}
	setRoutes(hcm, routes, src)
	if d.extProc {
		hcm.HttpFilters = []*hcmv3.HttpFilter{d.stripInternalHeaders()}
		if d.bodyModule != "" {
			hcm.HttpFilters = append(hcm.HttpFilters, d.bodyModuleFilter())
		}
		if d.check {
			hcm.HttpFilters = append(hcm.HttpFilters, d.checkFilter(src))
		}
		hcm.HttpFilters = append(hcm.HttpFilters, d.extProcFilter(src))
	} else if d.bodyModule != "" {
		hcm.HttpFilters = append(hcm.HttpFilters, d.bodyModuleFilter())
	}
	if d.holdBodyBytes > 0 {
		hcm.HttpFilters = append(hcm.HttpFilters, d.bufferFilter())
	}
	hcm.HttpFilters = append(hcm.HttpFilters, routerFilter())
	return &listenerv3.Listener{
		Name:    gatewayListenerName,
		Address: socketAddress(d.listenAddress, d.listenPort),
		// Bounds what Envoy buffers per connection; bodies above the
		// gateway limit are refused with 413.
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(uint32(d.bufferLimitBytes)),
		FilterChains:                  []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(hcm)}}},
	}
}

// baselineListener serves the same clients without ext_proc, for measuring
// what the gateway adds.
func (d *settings) baselineListener(routes *routev3.RouteConfiguration, src routeSource) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:        "baseline",
		CodecType:         hcmv3.HttpConnectionManager_AUTO,
		RequestTimeout:    duration(0),
		StreamIdleTimeout: duration(d.streamIdle),
		HttpFilters:       []*hcmv3.HttpFilter{routerFilter()},
	}
	setRoutes(hcm, routes, src)
	return &listenerv3.Listener{
		Name:         "baseline",
		Address:      socketAddress(d.listenAddress, d.baselinePort),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(hcm)}}},
	}
}

func setRoutes(hcm *hcmv3.HttpConnectionManager, routes *routev3.RouteConfiguration, src routeSource) {
	switch src {
	case routesInline:
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routes}
	case routesRDS:
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routes.GetName(),
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}}
	}
}

func hcmFilter(hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(hcm)}}
}

// bufferFilter holds each request body whole before the router (HoldBody);
// one byte over the body limit is refused with 413.
func (d *settings) bufferFilter() *hcmv3.HttpFilter {
	hold := &bufferv3.Buffer{MaxRequestBytes: wrapperspb.UInt32(uint32(d.holdBodyBytes))}
	return &hcmv3.HttpFilter{Name: bufferFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(hold)}}
}

func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: routerFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&routerv3.Router{})}}
}

// accessLog is the diagnostic log (AccessLogFields): Envoy's phases and the
// ext_proc call latencies.
func (d *settings) accessLog() *accesslogv3.AccessLog {
	format := "%START_TIME(%s.%6f)% %FILTER_STATE(envoy.filters.http.ext_proc:FIELD:request_header_latency_us)% " +
		"%FILTER_STATE(envoy.filters.http.ext_proc:FIELD:request_body_total_latency_us)% %COMMON_DURATION(DS_RX_BEG:DS_RX_END:us)% " +
		"%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)% %COMMON_DURATION(US_TX_BEG:US_RX_BEG:us)% %DURATION% %RESPONSE_CODE%\n"
	file := &filev3.FileAccessLog{
		Path: d.accessLogPath,
		AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: format},
			}},
		}},
	}
	return &accesslogv3.AccessLog{
		Name:       "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed(file)},
	}
}

// localReplyConfig gives the replies Envoy makes itself (body too large,
// headers too large, extproc or upstream unreachable) the called API's JSON
// error shape too: Anthropic's for /v1/messages, else OpenAI's (also when
// the request never got as far as having a path). Errors extproc sends
// have other statuses or are already in that shape.
func (d *settings) localReplyConfig() *hcmv3.LocalReplyConfig {
	lrc := &hcmv3.LocalReplyConfig{}
	for _, lr := range d.localReplies {
		filter := lr.match()
		switch {
		case lr.MCP:
			filter = andFilter(filter, d.mcpReplyFilter())
		case lr.ClientAPI != "":
			// A translated request: its client's API is in the metadata.
			filter = andFilter(filter, &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{
				MetadataFilter: &accesslogv3.MetadataFilter{
					MatchIfKeyNotFound: wrapperspb.Bool(false),
					Matcher: &matcherv3.MetadataMatcher{
						Filter: routing.ClientNamespace,
						Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "api"}}},
						Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(lr.ClientAPI)}},
					},
				},
			}})
		case lr.Anthropic:
			filter = andFilter(filter, &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{
				HeaderFilter: &accesslogv3.HeaderFilter{Header: &routev3.HeaderMatcher{
					Name: ":path",
					// contains, not prefix: a provider's path prefix may
					// already be in front.
					HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
						MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "/v1/messages"},
					}},
				}},
			}})
		}
		m := &hcmv3.ResponseMapper{Filter: filter, BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: lr.body()},
		}}
		if lr.Rewrite != 0 {
			m.StatusCode = wrapperspb.UInt32(uint32(lr.Rewrite))
		}
		lrc.Mappers = append(lrc.Mappers, m)
	}
	return lrc
}

// match selects the replies lr maps: by Envoy's response flags, its
// response code details or the status.
func (lr localReply) match() *accesslogv3.AccessLogFilter {
	if lr.Details != "" {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
			ExtensionFilter: &accesslogv3.ExtensionFilter{Name: "envoy.access_loggers.extension_filters.cel",
				ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: typed(&celv3.ExpressionFilter{
					Expression: "response.code_details == " + strconv.Quote(lr.Details)})}},
		}}
	}
	if len(lr.Flags) > 0 {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: lr.Flags},
		}}
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
		StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
			Op:    accesslogv3.ComparisonFilter_EQ,
			Value: &corev3.RuntimeUInt32{DefaultValue: uint32(lr.Status), RuntimeKey: "switchyard.local_reply." + lr.Name},
		}},
	}}
}

// body is the error in the API's own shape.
func (lr localReply) body() *structpb.Struct {
	if lr.MCP {
		return mcpReplyBody(lr)
	}
	if lr.Anthropic {
		return object(map[string]*structpb.Value{
			"type":  structpb.NewStringValue("error"),
			"error": structpb.NewStructValue(object(map[string]*structpb.Value{"type": structpb.NewStringValue(lr.Type), "message": structpb.NewStringValue(lr.Message)})),
		})
	}
	return object(map[string]*structpb.Value{"error": structpb.NewStructValue(object(map[string]*structpb.Value{
		"message": structpb.NewStringValue(lr.Message),
		"type":    structpb.NewStringValue(lr.Type),
		"param":   structpb.NewNullValue(),
		"code":    structpb.NewStringValue(lr.OpenAICode),
	}))})
}

func object(fields map[string]*structpb.Value) *structpb.Struct {
	return &structpb.Struct{Fields: fields}
}

func andFilter(filters ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: filters}}}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

// stripInternalHeaders is defence in depth beside internal_only_headers:
// it drops any client copy of the routing headers before ext_proc runs, so
// even a fail-open ext_proc cannot forward them.
func (d *settings) stripInternalHeaders() *hcmv3.HttpFilter {
	m := &headermutationv3.Mutations{}
	for _, h := range d.internalHeaders() {
		m.RequestMutations = append(m.RequestMutations, &mutationrulesv3.HeaderMutation{Action: &mutationrulesv3.HeaderMutation_Remove{Remove: h}})
	}
	return &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.header_mutation",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&headermutationv3.HeaderMutation{Mutations: m})},
	}
}

// bodyModuleFilter is Envoy's body module (cmd/bodymodule), off but on the
// big-body route (bySizeRoute): it buffers a body there and leaves extproc
// its summary (routing.BodyNamespace), so that the body need not travel to
// extproc and back. Without ext_proc it is on for every request: Envoy
// alone holding and scanning each body (Options.BodyModule).
func (d *settings) bodyModuleFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: bodyModuleFilterName, Disabled: d.extProc, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&dynmodfilterv3.DynamicModuleFilter{
		DynamicModuleConfig: d.bodyModuleConfig(), FilterName: "body",
	})}}
}

// bodyModuleRoute turns the body module on for a route.
func (d *settings) bodyModuleRoute() *anypb.Any {
	return typed(&routev3.FilterConfig{Config: typed(&dynmodfilterv3.DynamicModuleFilterPerRoute{
		DynamicModuleConfig: d.bodyModuleConfig(), FilterName: "body",
	})})
}

func (d *settings) bodyModuleConfig() *dynmodv3.DynamicModuleConfig {
	return &dynmodv3.DynamicModuleConfig{
		Module: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
			Specifier: &corev3.DataSource_Filename{Filename: d.bodyModule},
		}}},
		// A Go runtime cannot be unloaded.
		DoNotClose: true,
	}
}

// extProcFilter is the router-level ext_proc filter: one stream per
// request, which decides where it goes.
func (d *settings) extProcFilter(src routeSource) *hcmv3.HttpFilter {
	ep := &extprocv3.ExternalProcessor{
		GrpcService: d.extProcService(),
		// Fail closed: without extproc no request is forwarded.
		FailureModeAllow: d.failOpen,
		// 502 is the one status extproc itself never sends, so the local
		// reply mapper can tell "extproc unreachable" apart from extproc's
		// own errors.
		StatusOnError:  &typev3.HttpStatus{Code: typev3.StatusCode_BadGateway},
		MessageTimeout: duration(d.messageTimeout),
		// extproc sets Content-Length to the length of the body it sends back.
		AllowContentLengthHeader: true,
		// Response headers go to extproc only when Lua hooks are
		// configured (on_response): the routes say so (withHooksMode), so that
		// over xDS turning hooks on or off reaches open connections too.
		ProcessingMode: d.processingMode(extprocv3.ProcessingMode_SKIP),
		MutationRules:  routerMutationRules(),
		// A request whose attempts or answer pass extproc again gets the
		// gateway's own id here, which only Envoy hands on (never a header
		// a client or a hook can set); a request with fallbacks its attempt
		// clusters; a translated request its client's API, for the shape of
		// the errors Envoy answers itself.
		MetadataOptions: &extprocv3.MetadataOptions{ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{
			Untyped: d.receivingNamespaces(src),
		}},
	}
	if d.bodyModule != "" {
		// The body module's summary of a body Envoy kept; extproc asks for
		// the body itself (mode_override) when its plan needs it. Envoy
		// takes no mode_override from a filter whose own mode is full
		// duplex: the routes say which a request gets (withHooksMode).
		ep.MetadataOptions.ForwardingNamespaces = &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{routing.BodyNamespace}}
		ep.AllowModeOverride = true
		ep.ProcessingMode.RequestBodyMode, ep.ProcessingMode.RequestTrailerMode = extprocv3.ProcessingMode_BUFFERED, extprocv3.ProcessingMode_SKIP
	}
	if !d.responseHeaders && src != routesRDS {
		// Without hooks extproc reads only these request headers; sending
		// no others saves Envoy the encoding and extproc the decoding of
		// each request's headers. Over xDS hooks may be turned on at any
		// reload, and a route cannot widen these rules: every header goes.
		forwarded := ForwardedHeaders
		if d.traced {
			forwarded = slices.Concat(forwarded, TraceContextHeaders)
		}
		ep.ForwardRules = allowedHeaders(forwarded)
	}
	return &hcmv3.HttpFilter{Name: extProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(ep)}}
}

func (d *settings) receivingNamespaces(src routeSource) []string {
	ns := []string{routing.RequestNamespace}
	// Over xDS the first fallback chain arrives with a reload, and a
	// changed listener would serve only new connections: the attempts
	// namespace is always there.
	if len(d.retryRoutes) > 0 || src == routesRDS {
		ns = append(ns, routing.AttemptsNamespace)
	}
	return append(ns, routing.ClientNamespace)
}

// processingMode is what the ext_proc filter sends extproc, with the
// given response header mode.
func (d *settings) processingMode(responseHeaders extprocv3.ProcessingMode_HeaderSendMode) *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		ResponseHeaderMode:  responseHeaders,
		RequestBodyMode:     d.bodyMode,
		ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
		RequestTrailerMode:  d.trailerMode,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
}

func (d *settings) responseHeaderMode() extprocv3.ProcessingMode_HeaderSendMode {
	if d.responseHeaders {
		return extprocv3.ProcessingMode_SEND
	}
	return extprocv3.ProcessingMode_SKIP
}

// extProcService is how the router-level filter reaches extproc.
func (d *settings) extProcService() *corev3.GrpcService {
	gs := &corev3.GrpcService{Timeout: duration(10 * time.Second)}
	if d.googleGRPC {
		gs.TargetSpecifier = &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{
			TargetUri: d.extProcTarget, StatPrefix: "switchyard_extproc",
		}}
	} else {
		gs.TargetSpecifier = envoyGRPC(extProcClusterName)
		gs.RetryPolicy = d.extProcRetry()
	}
	return gs
}

func envoyGRPC(cluster string) *corev3.GrpcService_EnvoyGrpc_ {
	return &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}}
}

func allowAllRouting() *mutationrulesv3.HeaderMutationRules {
	return &mutationrulesv3.HeaderMutationRules{AllowAllRouting: wrapperspb.Bool(true)}
}

// routerMutationRules also let extproc set routing.OriginalPathHeader, and
// no other x-envoy- header: Envoy's spans then give the client's path of a
// request whose path extproc rewrote, not the upstream's.
func routerMutationRules() *mutationrulesv3.HeaderMutationRules {
	r := allowAllRouting()
	r.AllowExpression = &matcherv3.RegexMatcher{Regex: "^" + regexp.QuoteMeta(routing.OriginalPathHeader) + "$"}
	return r
}

func allowedHeaders(names []string) *extprocv3.HeaderForwardingRules {
	l := &matcherv3.ListStringMatcher{}
	for _, h := range names {
		l.Patterns = append(l.Patterns, exact(h))
	}
	return &extprocv3.HeaderForwardingRules{AllowedHeaders: l}
}
