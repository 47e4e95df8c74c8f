package processor

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/luahooks"
	"switchyard/routing"
)

// runRequestHooks runs the on_request hooks of the request's hook version.
// A hook's rejection or failure becomes the client's error; a failure keeps
// the hook's own error, with file and line, as the cause. Without a
// router (a dry run with no config) any provider or route name is accepted.
func runRequestHooks(ctx context.Context, hooks *luahooks.Set, router *routing.Router, req *Request, model, session string) (luahooks.Result, *apiError) {
	hreq := &luahooks.Request{
		API:       string(req.API),
		Method:    req.Method,
		Path:      req.Path,
		Headers:   req.Headers,
		Body:      req.Body,
		Model:     model,
		KeyName:   req.Principal.Name,
		RequestID: req.RequestID,
		Session:   session,
	}
	if req.summary {
		hreq.Body, hreq.BodyKept = nil, true
	}
	if router != nil {
		hreq.IsProvider, hreq.IsRoute = router.HasProvider, router.HasRoute
		// Copies, not req: a closure holding req would move every request's
		// exchange to the heap, hooks or not.
		api, principal, translate := req.API, req.Principal, translatable(req.Path)
		hreq.UpstreamAPI = func(model, provider, route string) string {
			d, err := router.Decide(ctx, &routing.Request{API: api, Model: model, Provider: provider, Route: route,
				Principal: principal, Translate: translate})
			if err != nil {
				return ""
			}
			return string(d.API)
		}
	}
	res, err := hooks.OnRequest(ctx, hreq)
	if err != nil {
		if errors.Is(err, luahooks.ErrHookFailed) {
			// The hook's name and line are in the log; the client learns only
			// that the gateway failed.
			e := newAPIError(routing.KindAPI, "hook_failed", "the gateway could not process the request (request hook failed)")
			e.cause = err
			return res, e
		}
		e := newAPIError(routing.KindAPI, "internal_error", "internal gateway error")
		e.cause = err
		return res, e
	}
	if r := res.Reject; r != nil {
		return res, rejection(r)
	}
	return res, nil
}

// rejection renders a hook's req:reject in the API's error shape, of the
// kind the gateway's own answers with that status have: a hook's 429 is a
// rate_limit_error, as the gateway's limits' are, not an invalid request a
// client should not retry.
func rejection(r *luahooks.Reject) *apiError {
	status := r.Status
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	kind := routing.KindOf(status)
	msg := r.Message
	if msg == "" {
		msg = "request rejected by gateway policy"
	}
	return &apiError{status: status, kind: kind, code: "rejected_by_hook", message: msg}
}

// onResponseHeaders runs the on_response hooks; Envoy sends response headers
// only for requests whose hook version has them.
func (x *exchange) onResponseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	out := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	if x.hooks == nil || !x.hooks.HasOnResponse() {
		return out
	}
	res := &luahooks.Response{Headers: make(map[string]string, len(h.GetHeaders().GetHeaders())), RequestID: x.req.RequestID, Tags: x.tags,
		API: string(x.req.API), UpstreamAPI: string(x.upstreamAPI)}
	for _, hv := range h.GetHeaders().GetHeaders() {
		if hv.Key == ":status" {
			res.Status, _ = strconv.Atoi(headerValue(hv))
			continue
		}
		res.Headers[hv.Key] = headerValue(hv)
	}
	rr, err := x.hooks.OnResponse(ctx, res)
	if err != nil {
		// The upstream answer is already on its way; a failing response hook
		// (fail_closed) cannot turn it into an error, so it changes nothing.
		return out
	}
	if len(rr.SetHeaders) == 0 && len(rr.RemoveHeaders) == 0 {
		return out
	}
	hm := &extprocv3.HeaderMutation{RemoveHeaders: rr.RemoveHeaders}
	for name, value := range rr.SetHeaders {
		hm.SetHeaders = append(hm.SetHeaders, setHeader(name, value))
	}
	out.GetResponseHeaders().Response = &extprocv3.CommonResponse{HeaderMutation: hm}
	return out
}
