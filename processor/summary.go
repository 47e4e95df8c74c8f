package processor

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"switchyard/luahooks"
	"switchyard/routing"
)

// summaryOf is the body summary Envoy's body module left for a request
// whose body Envoy kept, or nil.
func summaryOf(msg *extprocv3.ProcessingRequest) []byte {
	v := msg.GetMetadataContext().GetFilterMetadata()[routing.BodyNamespace].GetFields()[routing.BodySummaryKey]
	if s := v.GetStringValue(); s != "" {
		return []byte(s)
	}
	return nil
}

// decideFromSummary plans a request whose body Envoy kept (body mode NONE)
// from the module's summary of it (bodyscan.Summary). The plan stands when it sends the body
// on as it came; when it would change the body or read more of it than the
// summary holds (hooks that read it, the loop guard, a translation, a model
// rewrite, a count_tokens estimate, fallbacks, traced content), or there is
// no summary, or no announced length, or planning from it fails, Envoy is
// asked for the body, and the request is planned on it as in BUFFERED mode:
// the summary never decides what the body would decide otherwise, and no
// error comes from it. Only what on_request hooks that never read the body
// decide stands as it is, a refusal or a failure too: on the body they
// would decide it again from the same headers, model and session; planned
// on the body, the request takes what they did (Request.hooked).
func (x *exchange) decideFromSummary(ctx context.Context) *extprocv3.ProcessingResponse {
	// Envoy keeps bodies that announce their length (checked against the
	// limit with the headers) and fit its buffer; a request for any other
	// is answered on its body.
	if x.summary == nil || x.bodyLen == 0 || x.hooks != nil && x.hooks.MayReadBody() || x.req.Principal.LoopGuard() != nil ||
		x.srv.opts.Tracer != nil && x.srv.opts.Tracer.CapturesContent() ||
		x.overHTTP && x.router.SendsResponseHeaders() {
		return x.askForBody()
	}
	x.bodyStart = time.Now()
	// Planned again on the body, the request makes the random choices it
	// made here: a weighted target that changes the body is not rolled twice.
	var picks replay
	x.req.Body, x.req.pick, x.req.summary = x.summary, picks.record, true
	p, err := plan(ctx, x.router, x.hooks, &x.srv.state, &x.req)
	x.req.Body, x.req.pick, x.req.summary = nil, picks.again, false
	if err != nil && hooksRefused(&p) {
		if r := x.admitChecked(ctx); r != nil {
			return r
		}
		x.decided, x.summarized = true, true
		x.noteDecision(&p)
		return x.failModel(err, p.Model)
	}
	if err != nil || !sendsBodyAsItCame(&p) || x.overHTTP && !checkable(&p, x.req.Path) {
		if p.Hooks != nil && p.HookErr == nil && p.Hooks.Reject == nil {
			// The hooks did not read the body: planned on it, the request
			// takes what they did rather than running them twice.
			x.req.hooked = &hookRun{res: *p.Hooks, start: p.HooksStart, took: p.HooksTook}
		}
		return x.askForBody()
	}
	if r := x.admitChecked(ctx); r != nil {
		return r
	}
	x.decided, x.summarized = true, true
	return x.answer(ctx, &p, true)[0]
}

// admitChecked counts a request a check answers itself against its key's
// request budget, as onRequestHeaders does a stream's: a request the check
// sends on to the stream is admitted there, once.
func (x *exchange) admitChecked(ctx context.Context) *extprocv3.ProcessingResponse {
	if !x.overHTTP {
		return nil
	}
	if e := x.srv.checkRequestLimit(ctx, x.req.Principal); e != nil {
		return x.fail(e)
	}
	return nil
}

// hooksRefused reports whether a plan's error is its on_request hooks'
// refusal or failure, decided without reading the body.
func hooksRefused(p *Plan) bool {
	if p.Hooks == nil {
		return false
	}
	return p.Hooks.Reject != nil || errors.Is(p.HookErr, luahooks.ErrHookFailed)
}

// sendsBodyAsItCame reports whether a plan forwards the client's body
// unchanged to one upstream, with nothing read from it.
func sendsBodyAsItCame(p *Plan) bool {
	if p.Answer != nil || p.Fallback() || p.Response.Translate {
		return false
	}
	for i := range p.Attempts {
		if p.Attempts[i].BodyChanged {
			return false
		}
	}
	return true
}

// askForBody answers the headers of a request whose body Envoy kept with a
// request for it, BUFFERED: it is then planned on its body.
func (x *exchange) askForBody() *extprocv3.ProcessingResponse {
	x.askedForBody = true
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
		ModeOverride: &filterv3.ProcessingMode{
			RequestHeaderMode:   filterv3.ProcessingMode_SEND,
			RequestBodyMode:     filterv3.ProcessingMode_BUFFERED,
			RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  x.responseHeaderMode(),
			ResponseBodyMode:    filterv3.ProcessingMode_NONE,
			ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
		},
	}
}

// responseHeaderMode is what Envoy does with the answer's headers, as the
// routes render it (routing.Router.SendsResponseHeaders).
func (x *exchange) responseHeaderMode() filterv3.ProcessingMode_HeaderSendMode {
	if x.router.SendsResponseHeaders() {
		return filterv3.ProcessingMode_SEND
	}
	return filterv3.ProcessingMode_SKIP
}

// replay records random picks, then makes them again in the same order
// (past the recorded ones, new random ones).
type replay struct {
	picks []int
	next  int
}

func (r *replay) record(total int) int {
	n := rand.IntN(total)
	r.picks = append(r.picks, n)
	return n
}

func (r *replay) again(total int) int {
	if r.next < len(r.picks) && r.picks[r.next] < total {
		r.next++
		return r.picks[r.next-1]
	}
	return rand.IntN(total)
}
