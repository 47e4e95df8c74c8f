package processor

import (
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// encodePlan turns a plan into Envoy's answer to the request body, for the
// plan's first attempt. clientPath is the :path the client sent. In
// full-duplex mode headers go first (with the body's final length), then
// the body; buffered, one body answer carries both, and the body only when
// it changed.
func encodePlan(p *Plan, clientPath string, duplex bool) []*extprocv3.ProcessingResponse {
	a := &p.Attempts[0]
	hm := &extprocv3.HeaderMutation{SetHeaders: make([]*corev3.HeaderValueOption, 0, len(a.SetHeaders)+2), RemoveHeaders: a.RemoveHeaders}
	for _, h := range a.SetHeaders {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(h.Name, h.Value))
	}
	if a.Path != clientPath {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(":path", a.Path))
	}
	if duplex {
		hm.SetHeaders = append(hm.SetHeaders, setHeader("content-length", strconv.Itoa(len(a.Body))))
		return []*extprocv3.ProcessingResponse{
			{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
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
	return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}}
}

func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// immediate answers the request from the gateway itself.
func immediate(code int, body []byte, details string) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-type", "application/json")}},
		Body:    body,
		Details: details,
	}}}
}
