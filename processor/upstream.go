package processor

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/config"
	"switchyard/envoy"
	"switchyard/routing"
	"switchyard/tracing"
)

// phase names the filter a stream comes from: envoy.PhaseUpstream for an
// attempt cluster's (one stream per attempt of a request with fallbacks),
// envoy.PhaseResponse for a response cluster's, "" for the router-level
// filter's.
func phase(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(envoy.PhaseMetadataKey); len(v) == 1 {
		return v[0]
	}
	return ""
}

// processAttempt handles one attempt's stream: give the attempt its
// provider's key, model and path, then note how it went.
func (s *Server) processAttempt(stream extprocv3.ExternalProcessor_ProcessServer) error {
	u := attempt{srv: s}
	defer u.finish()
	return serveStream(stream, func(ctx context.Context, msg *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		if resp := u.handle(ctx, msg); resp != nil {
			return []*extprocv3.ProcessingResponse{resp}
		}
		return nil
	}, nil, true)
}

// attempt is the state of one attempt's stream.
type attempt struct {
	srv *Server
	// flight is the request's, with its plan and config snapshot; nil
	// when none was found.
	flight    *flight
	plan      *attemptPlan
	n         int // the attempt's number, from 1
	started   time.Time
	answered  bool // the upstream's response headers arrived
	concluded bool // the request's answer is this attempt's
	err       *apiError
	// answer reads (counts, translates) the answer of a counted plan's
	// concluding attempt; nil otherwise.
	answer *responseStream
	// bedrock: this attempt went to Bedrock, converse: to its Converse API.
	bedrock, converse bool
	// status is what the upstream answered, 0 before (or without) it.
	status int
	// span is the attempt's, when the request is traced.
	span *tracing.Attempt
}

// countingMode is the processing mode of a counted plan's attempts: as
// rendered, and the response body streamed to extproc as well (Envoy's
// allow_mode_override), so that the attempt that answers is counted.
var countingMode = &filterv3.ProcessingMode{
	RequestHeaderMode:   filterv3.ProcessingMode_SEND,
	ResponseHeaderMode:  filterv3.ProcessingMode_SEND,
	RequestBodyMode:     filterv3.ProcessingMode_BUFFERED,
	ResponseBodyMode:    filterv3.ProcessingMode_STREAMED,
	RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
	ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
}

func (u *attempt) handle(ctx context.Context, msg *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch v := msg.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		u.begin(flightID(msg), msg.GetAttributes())
		if u.err != nil {
			return immediate(u.err.status, u.err.body(u.clientAPI()), "switchyard_"+u.err.code)
		}
		resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
		if u.plan.Usage {
			resp.ModeOverride = countingMode
		}
		return resp
	case *extprocv3.ProcessingRequest_ResponseBody:
		if u.answer != nil {
			return u.answer.bodyAnswer(ctx, v.ResponseBody)
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return u.onBody(v.RequestBody.GetBody())
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		u.onResponse(ctx, v.ResponseHeaders)
		if u.answer != nil {
			return u.answer.headersAnswer(ctx, v.ResponseHeaders)
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

// begin finds the request's flight by the gateway's id and which attempt
// this is by Envoy's attempt count. It counts the fallback that led here.
func (u *attempt) begin(id string, attrs map[string]*structpb.Struct) {
	u.started = time.Now()
	u.n = attemptNumber(attrs)
	f, prev, hadPrev := u.srv.flights.beginAttempt(id, u.n, u.started)
	if f == nil || u.n < 1 || u.n > len(f.attempts.Attempts) {
		u.err = newAPIError(routing.KindAPI, "internal_error", "internal gateway error")
		return
	}
	u.flight, u.plan = f, f.attempts
	reason := ""
	if hadPrev {
		reason = retryReason(prev)
		u.srv.opts.Metrics.fallbacks.WithLabelValues(prev.Provider, u.plan.Attempts[u.n-1].Provider, reason).Inc()
	}
	if f.trace != nil {
		ref := u.plan.Attempts[u.n-1]
		u.span = f.trace.span.StartAttempt(&tracing.AttemptStart{N: u.n, Provider: ref.Provider, Model: ref.Model,
			API: string(u.plan.upstreamAPI()), RetryReason: reason}, u.started)
	}
}

// retryReason is why an attempt failed over to the next: its status, or
// no_response.
func retryReason(prev attemptOutcome) string {
	if prev.Status != 0 {
		return strconv.Itoa(prev.Status)
	}
	return "no_response"
}

// clientAPI is the API errors are answered in: the client's, OpenAI's
// until the plan is known.
func (u *attempt) clientAPI() config.API {
	if u.plan == nil {
		return config.APIOpenAI
	}
	return u.plan.API
}

// onBody answers the buffered body with this attempt's request: its
// provider's credential in place of every other, its path and its model.
// Headers an earlier attempt set are still there, so each is set or
// removed again.
func (u *attempt) onBody(body []byte) *extprocv3.ProcessingResponse {
	if u.plan == nil {
		return nil // refused at the headers already
	}
	ref := u.plan.Attempts[u.n-1]
	router := u.flight.router
	d, err := router.Attempt(ref.Provider, ref.Model, u.plan.upstreamAPI(), ref.Key)
	if err != nil {
		e := fromRouting(err)
		return immediate(e.status, e.body(u.plan.API), "switchyard_"+e.code)
	}
	d.RewriteModel = d.Model != u.plan.Model
	a, aerr := newAttempt(d, u.plan.Path, body, nil, u.plan.Beta)
	if aerr != nil {
		return immediate(aerr.status, aerr.body(u.plan.API), "switchyard_"+aerr.code)
	}
	if u.plan.Upstream != "" {
		a.translated()
	}
	a.restoreAnthropic(u.plan.Version, u.plan.Beta)
	u.bedrock, u.converse = a.Bedrock, a.Converse
	if u.span != nil {
		u.span.Cloud(string(a.API), a.Vertex, a.Bedrock)
	}
	return encodeAttempt(&a, router.CredentialHeaders())
}

// onResponse notes the attempt's status: a failure counts against the
// provider; a success, a failure the policy does not retry, or the last
// attempt answers the request.
func (u *attempt) onResponse(ctx context.Context, h *extprocv3.HttpHeaders) {
	code, retryAfter := 0, ""
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch hv.Key {
		case ":status":
			code, _ = strconv.Atoi(headerValue(hv))
		case "retry-after":
			retryAfter = headerValue(hv)
		}
	}
	if u.plan == nil {
		return
	}
	u.answered, u.status = true, code
	u.srv.flights.answered(u.flight, code, time.Since(u.started))
	policy := u.plan.Retry
	failed := code >= 500 || (policy != nil && policy.Fails(code))
	ref := u.plan.Attempts[u.n-1]
	if ref.Key != "" && code == http.StatusTooManyRequests {
		// One key of a pool is over its limit, not the provider: rest the
		// key, and let the provider's other keys carry on.
		u.srv.health.coolKey(ref.Provider, ref.Key, retryAfter)
		u.srv.opts.Metrics.keyCooldowns.WithLabelValues(ref.Provider, ref.Key).Inc()
	} else {
		u.recordHealth(ctx, failed, retryAfter)
	}
	u.concluded = u.n == len(u.plan.Attempts) || policy == nil || !policy.Fails(code)
	if u.concluded && u.plan.Usage {
		u.readAnswer() // its stream counts the answer
	} else {
		u.srv.opts.Metrics.usage.answers.WithLabelValues(ref.Provider, strconv.Itoa(code)).Inc()
	}
}

// readAnswer sets up the reading of the answer that goes to the client: its
// tokens counted, and translated when the plan is; the request's job names
// this attempt's provider and model.
func (u *attempt) readAnswer() {
	_, j := u.srv.flights.takeJob(u.flight.id)
	if j == nil {
		return
	}
	ref := u.plan.Attempts[u.n-1]
	j.provider, j.upstreamModel, j.bedrock, j.converse = ref.Provider, ref.Model, u.bedrock, u.converse
	u.answer = &responseStream{srv: u.srv, begun: true, job: j, log: u.flight.log, sent: u.started, quiet: true, trace: u.flight.trace}
	u.answer.log.Provider, u.answer.log.UpstreamModel = ref.Provider, ref.Model
}

// recordHealth counts the attempt for or against its provider and ejects
// a provider that keeps failing.
func (u *attempt) recordHealth(ctx context.Context, failed bool, retryAfter string) {
	failures, duration := u.flight.router.Config().EjectionPolicy()
	provider := u.plan.Attempts[u.n-1].Provider
	if !u.srv.health.record(provider, failed, retryAfter, ejection{failures, duration}) {
		return
	}
	u.srv.opts.Metrics.ejections.WithLabelValues(provider).Inc()
	u.srv.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "provider ejected from fallback chains",
		slog.String("provider", provider), slog.Duration("for", duration))
}

// finish ends the stream: the last attempt, or one whose answer goes to the
// client, logs the request with its attempts. An attempt that never
// answered (refused, reset, silent) counts against its provider.
func (u *attempt) finish() {
	if u.err != nil || u.plan == nil {
		return
	}
	if u.answer != nil {
		u.answer.end(context.Background()) // once: a whole answer has ended already
	}
	if u.span != nil {
		u.span.End(u.status, time.Now())
	}
	if !u.answered {
		u.recordHealth(context.Background(), true, "")
		u.concluded = u.n == len(u.plan.Attempts)
	}
	if !u.concluded {
		return
	}
	outcomes := u.srv.flights.endAttempts(u.flight, time.Now())
	u.srv.opts.Metrics.attempts.Observe(float64(len(outcomes)))
	if t := u.flight.trace; t != nil {
		u.endTrace(t)
	}
	if log := u.srv.opts.Logger; log.Enabled(context.Background(), slog.LevelDebug) {
		l := u.flight.log
		if u.answer != nil {
			l = u.answer.log // with the status and tokens
		}
		ref := u.plan.Attempts[u.n-1]
		l.Provider, l.UpstreamModel, l.Attempts = ref.Provider, ref.Model, outcomes
		if l.Status == 0 && len(outcomes) > 0 {
			l.Status = outcomes[len(outcomes)-1].Status
		}
		log.LogAttrs(context.Background(), slog.LevelDebug, "routed", slog.Any("", &l))
	}
}

// attemptNumber reads Envoy's upstream.request_attempt_count attribute.
func attemptNumber(attrs map[string]*structpb.Struct) int {
	v := attrs["envoy.filters.http.ext_proc"].GetFields()["upstream.request_attempt_count"]
	return int(v.GetNumberValue())
}
