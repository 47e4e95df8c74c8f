package processor

import (
	"maps"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/config"
	"switchyard/routing"
)

// encodePlan turns a plan into Envoy's answer to the request body, for the
// plan's first attempt. clientPath is the :path the client sent. In
// full-duplex mode headers go first (with the body's final length), then
// the body; buffered, one body answer carries both, and the body only when
// it changed.
func encodePlan(p *Plan, clientPath string, duplex bool) []*extprocv3.ProcessingResponse {
	if p.Fallback() {
		return encodeFallback(p, duplex)
	}
	a := &p.Attempts[0]
	hm := &extprocv3.HeaderMutation{SetHeaders: make([]*corev3.HeaderValueOption, 0, len(a.SetHeaders)+2), RemoveHeaders: a.RemoveHeaders}
	for _, h := range a.SetHeaders {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(h.Name, h.Value))
	}
	if a.Path != clientPath {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(":path", a.Path))
	}
	var metadata *structpb.Struct
	if p.Response.Translate {
		metadata = clientMetadata[p.ClientAPI]
	}
	if duplex {
		hm.SetHeaders = append(hm.SetHeaders, setHeader("content-length", strconv.Itoa(len(a.Body))))
		return []*extprocv3.ProcessingResponse{
			{DynamicMetadata: metadata, Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{HeaderMutation: hm, ClearRouteCache: true},
			}}},
			{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
				Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
					Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: a.Body, EndOfStream: true}},
				}},
			}}},
		}
	}
	common := &extprocv3.CommonResponse{HeaderMutation: hm, ClearRouteCache: true}
	if a.BodyChanged {
		// Envoy refuses a buffered body whose length disagrees with Content-Length.
		hm.SetHeaders = append(hm.SetHeaders, setHeader("content-length", strconv.Itoa(len(a.Body))))
		common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: a.Body}}
	}
	return []*extprocv3.ProcessingResponse{{DynamicMetadata: metadata, Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}}
}

// clientMetadata tells Envoy a translated request's client API
// (routing.ClientNamespace): the errors Envoy answers itself then take the
// client's shape. Built once; Envoy only reads them.
var clientMetadata = map[config.API]*structpb.Struct{
	config.APIOpenAI:    apiMetadata(config.APIOpenAI),
	config.APIAnthropic: apiMetadata(config.APIAnthropic),
}

func apiMetadata(api config.API) *structpb.Struct {
	s, _ := structpb.NewStruct(map[string]any{routing.ClientNamespace: map[string]any{"api": string(api)}}) // plain values: cannot fail
	return s
}

func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// immediate answers the request from the gateway itself.
func immediate(code int, body []byte, details string, extra ...routing.Header) *extprocv3.ProcessingResponse {
	hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-type", "application/json")}}
	for _, h := range extra {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(h.Name, h.Value))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
		Headers: hm,
		Body:    body,
		Details: details,
	}}}
}

// encodeFallback answers the request body of a plan with several attempts.
// Envoy's route entry for the plan's retry policy and attempt count
// (routing.FallbackHeader) retries it over the attempt clusters listed in
// the dynamic metadata, one per attempt; the upstream filter of each gives
// the attempt its key, model and path from the attempts header. Here the
// request only loses the client's key and gains the hooks' changes.
func encodeFallback(p *Plan, duplex bool) []*extprocv3.ProcessingResponse {
	h := attemptsHeader{Path: p.Path, API: p.ClientAPI, Model: p.BodyModel, Retry: p.Retry.Key, Session: sessionLogID(p.Session),
		Usage: p.Response.Usage}
	if p.Response.Translate {
		h.Upstream = p.Attempts[0].API
	}
	groups := make([]any, 0, len(p.Attempts))
	for i, a := range p.Attempts {
		h.Attempts = append(h.Attempts, attemptRef{Provider: a.Provider, Model: a.Model, Key: a.Key})
		groups = append(groups, map[string]any{"name": strconv.Itoa(i + 1), "clusters": []any{
			map[string]any{"cluster_name": routing.AttemptClusterPrefix + a.Cluster, "weight": 1},
		}})
	}
	md := map[string]any{routing.AttemptsNamespace: map[string]any{"priority_groups": groups}}
	if p.Response.Translate {
		md[routing.ClientNamespace] = map[string]any{"api": string(p.ClientAPI)}
	}
	metadata, _ := structpb.NewStruct(md) // plain values: cannot fail
	hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader(routing.FallbackHeader, routing.RetryRouteKey(p.Retry.Key, len(p.Attempts))),
		setHeader(routing.AttemptsHeader, encodeAttempts(h)),
		setHeader("content-length", strconv.Itoa(len(p.Body))),
	}, RemoveHeaders: slices.Clone(routing.ClientKeyHeaders)}
	if p.Response.Usage {
		// A counted answer must come as it is, not compressed.
		hm.RemoveHeaders = append(hm.RemoveHeaders, "accept-encoding")
	}
	if p.Hooks != nil {
		for _, name := range slices.Sorted(maps.Keys(p.Hooks.SetHeaders)) {
			hm.SetHeaders = append(hm.SetHeaders, setHeader(name, p.Hooks.SetHeaders[name]))
		}
		hm.RemoveHeaders = append(hm.RemoveHeaders, p.Hooks.RemoveHeaders...)
	}
	if duplex {
		return []*extprocv3.ProcessingResponse{
			{DynamicMetadata: metadata, Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{HeaderMutation: hm, ClearRouteCache: true},
			}}},
			{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
				Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
					Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: p.Body, EndOfStream: true}},
				}},
			}}},
		}
	}
	common := &extprocv3.CommonResponse{HeaderMutation: hm, ClearRouteCache: true,
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: p.Body}}}
	return []*extprocv3.ProcessingResponse{{DynamicMetadata: metadata, Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}}
}

// encodeAttempt answers one attempt's buffered body (the upstream filter,
// BUFFERED): its path, credential and length set, every other credential
// header and the attempts header removed, and its body when it differs.
func encodeAttempt(a *Attempt, credentialHeaders []string) *extprocv3.ProcessingResponse {
	hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader(":path", a.Path),
		setHeader("content-length", strconv.Itoa(len(a.Body))),
	}, RemoveHeaders: []string{routing.AttemptsHeader}}
	for _, h := range a.SetHeaders {
		if h.Name != routing.ClusterHeader {
			hm.SetHeaders = append(hm.SetHeaders, setHeader(h.Name, h.Value))
		}
	}
	for _, name := range credentialHeaders {
		if name != a.Credential {
			hm.RemoveHeaders = append(hm.RemoveHeaders, name)
		}
	}
	common := &extprocv3.CommonResponse{HeaderMutation: hm}
	// The body is replayed from Envoy's buffer on each attempt, so only
	// this attempt's own rewrite is needed.
	common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: a.Body}}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}
}
