package processor

import (
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/routing"
)

// CheckHandler answers the checks of Envoy's ext_authz filter over HTTP/1.1
// (the check trip, routing.CheckPathPrefix): the headers of a request
// whose body Envoy kept, and its body module's summary. The request is
// planned as decideFromSummary plans it on an ext_proc stream; the answer
// is a refusal in the API's shape, the attempt's headers, or
// routing.TripHeader when the plan needs the body or more than a check can
// carry: the request then opens an ext_proc stream as before, where it is
// admitted and its on_request hooks run again. A checked request ends for
// extproc with its answer: it counts in flight, and its span ends, at the
// decision.
func (s *Server) CheckHandler() http.Handler { return http.HandlerFunc(s.check) }

func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	s.opened.Add(1)
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	x := exchange{srv: s, overloaded: s.opts.MaxInflight > 0 && n > s.opts.MaxInflight, bodyless: true, overHTTP: true}
	if v := r.Header.Get(routing.CheckSummaryHeader); v != "" && v != "-" {
		x.summary = []byte(v)
	}
	resp := x.onRequestHeaders(r.Context(), checkHeaders(r))
	if !x.askedForBody {
		s.opts.Metrics.bodyModes[bodySummarized].Inc()
		x.closeTrace() // else the stream's span is the request's
	}
	writeCheck(w, resp)
}

// checkHeaders are a check's headers as an ext_proc stream would have sent
// them: the client's path and method, and its body's announced length.
func checkHeaders(r *http.Request) *extprocv3.HttpHeaders {
	m := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(r.Header)+2)}
	add := func(k, v string) { m.Headers = append(m.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)}) }
	add(":path", strings.TrimPrefix(r.RequestURI, routing.CheckPathPrefix))
	add(":method", r.Method)
	for k, vs := range r.Header {
		switch k = strings.ToLower(k); k {
		case "content-length", routing.CheckSummaryHeader:
		case routing.CheckLengthHeader:
			add("content-length", vs[0])
		default:
			add(k, strings.Join(vs, ","))
		}
	}
	return &extprocv3.HttpHeaders{Headers: m}
}

// checkable reports whether a check's answer carries all a plan does: its
// path unchanged, and only headers Envoy takes from a check.
func checkable(p *Plan, clientPath string) bool {
	a := &p.Attempts[0]
	if a.Path != clientPath {
		return false
	}
	for _, h := range a.SetHeaders {
		if !routing.CheckUpstreamHeader(h.Name) {
			return false
		}
	}
	for _, h := range a.RemoveHeaders {
		if strings.HasPrefix(h, ":") || h == "host" {
			return false
		}
	}
	return true
}

// writeCheck turns the answer to a request's headers into a check's: a
// refusal as it is, a decision as 200 with the headers to set and remove
// (x-envoy-auth-headers-to-remove) and the gateway's own id. Envoy takes a
// 5xx as the check failing and a 200 as allowing, so a refusal with either
// status goes to the ext_proc stream, which refuses it in its own words.
func writeCheck(w http.ResponseWriter, resp *extprocv3.ProcessingResponse) {
	h := w.Header()
	switch v := resp.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		ir := v.ImmediateResponse
		code := int(ir.GetStatus().GetCode())
		if code >= 500 || code < 300 {
			break
		}
		for _, o := range ir.GetHeaders().GetSetHeaders() {
			h.Set(o.GetHeader().GetKey(), headerValue(o.GetHeader()))
		}
		h.Set("content-length", strconv.Itoa(len(ir.GetBody())))
		w.WriteHeader(code)
		w.Write(ir.GetBody())
		return
	case *extprocv3.ProcessingResponse_RequestHeaders:
		if resp.GetModeOverride() != nil {
			break
		}
		hm := v.RequestHeaders.GetResponse().GetHeaderMutation()
		for _, o := range hm.GetSetHeaders() {
			h.Set(o.GetHeader().GetKey(), headerValue(o.GetHeader()))
		}
		if rm := hm.GetRemoveHeaders(); len(rm) > 0 {
			h.Set("x-envoy-auth-headers-to-remove", strings.Join(rm, ","))
		}
		if id := resp.GetDynamicMetadata().GetFields()[routing.RequestNamespace].GetStructValue().GetFields()["id"].GetStringValue(); id != "" {
			h.Set(routing.CheckFlightHeader, id)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set(routing.TripHeader, "body")
	w.WriteHeader(http.StatusOK)
}
