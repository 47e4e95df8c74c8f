package processor

import (
	"maps"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

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
	hm := attemptHeaders(a, clientPath)
	metadata := planMetadata(p, nil)
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

// encodePlanAtHeaders answers the headers of a request whose body Envoy
// kept and sends on unchanged, planned from its summary (decideFromSummary):
// the first attempt's headers, as a buffered plan's body answer carries them.
func encodePlanAtHeaders(p *Plan, clientPath string) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{DynamicMetadata: planMetadata(p, nil), Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: attemptHeaders(&p.Attempts[0], clientPath), ClearRouteCache: true,
		}},
	}}
}

// attemptHeaders is the header mutation of an attempt: its routing header,
// credential and hooks' headers, and its path when it differs from the
// client's.
func attemptHeaders(a *Attempt, clientPath string) *extprocv3.HeaderMutation {
	hm := &extprocv3.HeaderMutation{SetHeaders: make([]*corev3.HeaderValueOption, 0, len(a.SetHeaders)+2), RemoveHeaders: a.RemoveHeaders}
	for _, h := range a.SetHeaders {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(h.Name, h.Value))
	}
	if a.Path != clientPath {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(":path", a.Path))
	}
	return hm
}

// planMetadata is the dynamic metadata of a plan's answer: the request's
// own id for its later streams (routing.RequestNamespace); a translated
// request's client API (routing.ClientNamespace), so that the errors Envoy
// answers itself take the client's shape; and the attempt clusters of a
// plan with fallbacks (attempts). Nil when there is none.
func planMetadata(p *Plan, attempts *structpb.Value) *structpb.Struct {
	if p.ID == "" && !p.Response.Translate && attempts == nil {
		return nil
	}
	md := &structpb.Struct{Fields: make(map[string]*structpb.Value, 3)}
	if p.ID != "" {
		md.Fields[routing.RequestNamespace] = namespace("id", structpb.NewStringValue(p.ID))
	}
	if p.Response.Translate {
		md.Fields[routing.ClientNamespace] = namespace("api", structpb.NewStringValue(string(p.ClientAPI)))
	}
	if attempts != nil {
		md.Fields[routing.AttemptsNamespace] = namespace("priority_groups", attempts)
	}
	return md
}

func namespace(key string, v *structpb.Value) *structpb.Value {
	return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{key: v}})
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
// the dynamic metadata, one per attempt; the upstream filter of each finds
// the request's flight by its id and gives the attempt its key, model and
// path. Here the request only loses the client's key and gains the hooks'
// changes.
func encodeFallback(p *Plan, duplex bool) []*extprocv3.ProcessingResponse {
	groups := make([]*structpb.Value, 0, len(p.Attempts))
	for i, a := range p.Attempts {
		groups = append(groups, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"name": structpb.NewStringValue(strconv.Itoa(i + 1)),
			"clusters": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{
				structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
					"cluster_name": structpb.NewStringValue(routing.AttemptClusterPrefix + a.Cluster),
					"weight":       structpb.NewNumberValue(1),
				}}),
			}}),
		}}))
	}
	metadata := planMetadata(p, structpb.NewListValue(&structpb.ListValue{Values: groups}))
	hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader(routing.FallbackHeader, routing.RetryRouteKey(p.Retry.Key, len(p.Attempts))),
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
// header and those it goes without removed, and its body.
func encodeAttempt(a *Attempt, credentialHeaders []string) *extprocv3.ProcessingResponse {
	hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader(":path", a.Path),
		setHeader("content-length", strconv.Itoa(len(a.Body))),
	}}
	for _, h := range a.SetHeaders {
		if h.Name != routing.ClusterHeader {
			hm.SetHeaders = append(hm.SetHeaders, setHeader(h.Name, h.Value))
		}
	}
	for _, name := range slices.Concat(a.RemoveHeaders, credentialHeaders) {
		if name != a.Credential && !a.sets(name) && !slices.Contains(hm.RemoveHeaders, name) {
			hm.RemoveHeaders = append(hm.RemoveHeaders, name)
		}
	}
	common := &extprocv3.CommonResponse{HeaderMutation: hm}
	// The body is replayed from Envoy's buffer on each attempt, so only
	// this attempt's own rewrite is needed.
	common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: a.Body}}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}
}

// sets reports whether the attempt sets header name.
// unset drops what the attempt sets of header name.
func (a *Attempt) unset(name string) {
	a.SetHeaders = slices.DeleteFunc(a.SetHeaders, func(h routing.Header) bool { return h.Name == name })
}

func (a *Attempt) sets(name string) bool {
	for _, h := range a.SetHeaders {
		if h.Name == name {
			return true
		}
	}
	return false
}
