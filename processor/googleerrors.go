package processor

import (
	"context"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"

	"switchyard/translate"
)

// The Google errors filter (envoy/googleerrors.go) sits on the clusters of
// Claude on Vertex AI whose answers reach Messages clients as they are.
// Claude's own errors are Anthropic's already, but Google's platform
// answers its own (401, 403, 429, 5xx) in Google's shape,
// {"error":{"code","message","status"}}, which Anthropic's SDKs cannot
// read. The filter sends extproc each answer's headers only; a success
// goes on at once, and only an error's body is asked for (mode_override),
// to be answered in Anthropic's shape with its status.

// googleErrorBody is the mode an error switches the filter to: its body
// whole, the headers waiting for it.
var googleErrorBody = &filterv3.ProcessingMode{
	RequestHeaderMode:   filterv3.ProcessingMode_SKIP,
	ResponseHeaderMode:  filterv3.ProcessingMode_SEND,
	RequestBodyMode:     filterv3.ProcessingMode_NONE,
	ResponseBodyMode:    filterv3.ProcessingMode_BUFFERED,
	RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
	ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
}

// processGoogleErrors serves one answer's stream of the filter.
func (s *Server) processGoogleErrors(stream extprocv3.ExternalProcessor_ProcessServer) error {
	var g googleErrorStream
	return serveStream(stream, g.handle, func() bool { return g.done }, false)
}

// googleErrorStream is one answer: its status, and whether the stream has
// nothing more to do.
type googleErrorStream struct {
	status int
	done   bool
}

func (g *googleErrorStream) handle(_ context.Context, msg *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	switch v := msg.Request.(type) {
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
		for _, hv := range v.ResponseHeaders.GetHeaders().GetHeaders() {
			if hv.Key == ":status" {
				g.status, _ = strconv.Atoi(headerValue(hv))
			}
		}
		if g.status < 400 || v.ResponseHeaders.GetEndOfStream() {
			g.done = true
			return []*extprocv3.ProcessingResponse{resp}
		}
		resp.ModeOverride = googleErrorBody
		return []*extprocv3.ProcessingResponse{resp}
	case *extprocv3.ProcessingRequest_ResponseBody:
		g.done = true
		common := &extprocv3.CommonResponse{}
		if status, body, changed := anthropicFromGoogle(g.status, v.ResponseBody.GetBody()); changed {
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}}
			common.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader(":status", strconv.Itoa(status)), setHeader("content-type", "application/json"),
				setHeader("content-length", strconv.Itoa(len(body)))}}
		}
		return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: common}}}}
	case *extprocv3.ProcessingRequest_RequestHeaders:
		// Not sent (SKIP); answered should a config send it.
		return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}}
	}
	return nil
}

// anthropicFromGoogle is an error answer of Claude on Vertex as Anthropic's
// API answers it: Google's own errors rewritten (a key Google refuses
// becomes 401), anything else that is not already an Anthropic error
// (an HTML page from a proxy) given a generic message naming the status.
// Claude's own errors pass unchanged (changed false).
func anthropicFromGoogle(status int, body []byte) (int, []byte, bool) {
	if gjson.GetBytes(body, "type").String() == "error" && gjson.GetBytes(body, "error.type").Exists() {
		return status, body, false
	}
	status, out := translate.GeminiErrorToMessages(status, body)
	return status, out, true
}
