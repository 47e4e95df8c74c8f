package processor

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"switchyard/config"
	"switchyard/luahooks"
	"switchyard/routing"
)

// Request is what the gateway knows of a request when it plans it: plain
// data, gathered from Envoy's messages or given by `extproc hooks test`.
type Request struct {
	API       config.API // the API of the endpoint the client called
	Method    string
	Path      string // with the query string
	RequestID string
	// Headers holds every request header by lower-case name; only hooks
	// read it, so it is nil when no on_request hook runs.
	Headers map[string]string
	Body    []byte
	// summary: Body is the body module's summary of a body Envoy kept
	// (decideFromSummary); hooks run without a body (luahooks.Request.BodyKept).
	summary bool
	// hooked is what the on_request hooks did to the request from its
	// summary, which planning on its body takes instead of running them
	// again: they did not read the body.
	hooked    *hookRun
	Principal routing.Principal
	// session holds the session headers when Headers is nil (no hooks).
	session sessionHeaders
	// retry: the client's SDK says the request retries an attempt that got
	// no answer (routing.RetryCountHeader), when Headers is nil.
	retry bool
	// Beta is the anthropic-beta header, which Bedrock attempts move into
	// the body; Version the anthropic-version header.
	Beta, Version string
	// pick, when set, makes routing's random choices (routing.Request.Pick).
	pick func(total int) int
}

// Plan is what the gateway does with one request, as plain data. The
// processor encodes it for Envoy (encode.go); the dry run prints it.
type Plan struct {
	// ID is the gateway's own id of the request when its attempts or its
	// answer pass extproc again (flights.go), "" otherwise.
	ID        string
	ClientAPI config.API
	Model     string // the model the client named
	KeyName   string
	// Session is the request's session key ("" for none) and
	// SessionSource where it came from (session.go), after the hooks.
	Session, SessionSource string
	// Hooks is what the on_request hooks did; nil when none ran.
	Hooks *luahooks.Result
	// HookErr is the hook failure that failed the request (fail_closed), or
	// nil. The client only learns that a hook failed; this has file and line.
	HookErr error
	// HooksStart is when the on_request hooks began and HooksTook how long
	// they ran; zero when none ran.
	HooksStart time.Time
	HooksTook  time.Duration
	// Body is the body after the hooks, before any attempt's model rewrite,
	// and BodyModel the model it names.
	Body      []byte
	BodyModel string
	// Attempts are the upstream tries in order: one, or for a route with
	// fallbacks one per target and fallback (healthy providers first).
	Attempts []Attempt
	// Retry says which failures move on to the next attempt; nil with one.
	Retry *routing.RetryPolicy
	// Path is the path every attempt calls, before its provider's prefix:
	// the client's, or the upstream API's when translated.
	Path string
	// Response is what the gateway does with the answer (response.go).
	Response ResponsePlan
	// Answer, when set, is the gateway's own answer (200, JSON) in place of
	// the provider's: a count_tokens estimate for a model served with the
	// OpenAI API. The plan then has no attempts.
	Answer []byte
	// bodyChanged: Body differs from what the client sent (translated, or
	// asking for usage), so every attempt carries its own length.
	bodyChanged bool
	// Beta is the client's anthropic-beta header (Bedrock attempts), and
	// Version its anthropic-version header.
	Beta, Version string
}

// Fallback reports whether the plan has more than one attempt.
func (p *Plan) Fallback() bool { return len(p.Attempts) > 1 }

// Attempt is one upstream try: where it goes and what it carries.
type Attempt struct {
	Provider string
	Cluster  string
	Route    string     // the route that matched, "" when chosen directly
	Model    string     // the model the upstream sees
	API      config.API // the API the upstream speaks
	Path     string     // the upstream :path, query string included
	// SetHeaders are set on the upstream request in order, the routing
	// header first; RemoveHeaders are removed.
	SetHeaders    []routing.Header
	RemoveHeaders []string
	// Credential names the header in SetHeaders that carries the
	// provider's key, "" when the provider takes none.
	Credential  string
	Body        []byte // the body the upstream gets
	BodyChanged bool   // Body differs from what the client sent
	// Affinity is true when the session key chose this attempt's target
	// among several, KeyAffinity when it chose its pool key.
	Affinity, KeyAffinity bool
	// Vertex is true for an attempt to Vertex AI (vertex.go).
	Vertex bool
	// Key names the pool key the credential holds (its key_env or
	// key_file), "" without a key pool.
	Key string
	// Bedrock: the attempt is a Bedrock call, signed (bedrock.go);
	// Converse: a Converse one, not InvokeModel.
	Bedrock, Converse bool
}

// Tags are the request's tags set by hooks, or nil.
func (p *Plan) Tags() map[string]string {
	if p.Hooks == nil {
		return nil
	}
	return p.Hooks.Tags
}

// plan decides a request whose endpoint, method and key were accepted:
// validate the body, run the on_request hooks, route, and build the
// attempt. Without a router (a dry run with no config) it stops after the
// hooks. On error the plan still holds what was known, for the log.
func plan(ctx context.Context, router *routing.Router, hooks *luahooks.Set, st *state, req *Request) (Plan, *apiError) {
	fields, err := readBody(req.Body)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{ClientAPI: req.API, Model: fields.model, KeyName: req.Principal.Name, Beta: req.Beta, Version: req.Version}
	if req.Headers != nil {
		p.Beta, p.Version = req.Headers[routing.BetaHeader], req.Headers[routing.VersionHeader]
	}
	sh, retry := req.session, req.retry
	if req.Headers != nil {
		sh, retry = sessionHeadersFrom(req.Headers), isRetry(req.Headers[routing.RetryCountHeader])
	}
	p.Session, p.SessionSource = sessionKey(sh, &fields)
	rreq := routing.Request{API: req.API, Model: fields.model, Principal: req.Principal, Translate: translatable(req.Path), Pick: req.pick}
	body, sent := req.Body, fields
	if hooks != nil && hooks.HasOnRequest() {
		if body, err = p.runHooks(ctx, hooks, router, req, &rreq); err != nil {
			return p, err
		}
		if p.Hooks.Body != nil {
			// What the plan reads (stream, stream_options) comes from the
			// body the upstream gets.
			if fields, err = readHookedBody(body); err != nil {
				p.HookErr = err.cause
				return p, err
			}
		}
	}
	if err := backgroundCharged(req, &fields); err != nil {
		return p, err
	}
	rreq.Session = p.Session
	p.hookedAnthropicHeaders()
	if router == nil {
		return p, nil
	}
	d, rerr := router.Decide(ctx, &rreq)
	if rerr != nil {
		return p, fromRouting(rerr)
	}
	p.Body, p.BodyModel = body, rreq.Model
	if g := req.Principal.LoopGuard(); g != nil && st != nil {
		// The loop guard compares what the client sent.
		fp := st.loops.fingerprint(req.Principal.Name, p.Session, req.API, &sent, req.Body)
		if !st.loops.allow(fp, g, !retry, time.Now()) {
			return p, loopRefusal(g)
		}
	}
	path, err := p.planUpstreamBody(router, d, req, &fields)
	if err != nil || p.Answer != nil {
		return p, err
	}
	if err := unpriced(router, req.Principal, d, p.Model); err != nil && pathOnly(req.Path) != countTokensPath {
		return p, err
	}
	if err := p.addAttempts(d, st, path); err != nil {
		return p, err
	}
	p.Path = path
	p.planResponse()
	return p, nil
}

// hookedAnthropicHeaders takes the Anthropic headers as the hooks left
// them: the attempts of a chain set them again (Attempt.restoreAnthropic),
// and Bedrock's move the beta into the body.
func (p *Plan) hookedAnthropicHeaders() {
	if p.Hooks == nil {
		return
	}
	for _, h := range []struct {
		name string
		v    *string
	}{{routing.BetaHeader, &p.Beta}, {routing.VersionHeader, &p.Version}} {
		if v, ok := p.Hooks.SetHeaders[h.name]; ok {
			*h.v = v
		}
		if slices.Contains(p.Hooks.RemoveHeaders, h.name) {
			*h.v = ""
		}
	}
}

// planUpstreamBody makes the body every attempt starts from: translated
// when the provider speaks the other API, and asking a chat stream for its
// usage when the answer is counted (usage enabled, or the key has a token
// or money budget). It decides what is done with the answer (p.Response) and
// returns the path the attempts call.
func (p *Plan) planUpstreamBody(router *routing.Router, d routing.Decision, req *Request, f *bodyFields) (string, *apiError) {
	path, err := p.planTranslation(d, req)
	if err != nil || p.Answer != nil {
		return path, err
	}
	// A traced request is counted: its span carries its tokens.
	counted := router.Config().CountsUsage() || router.Config().Traced() || charged(req.Principal)
	if d.Bedrock != nil || d.Attempts != nil && bedrockAttempts(d) {
		p.Response.Bedrock, counted = d.Bedrock != nil, true
	}
	if !p.Response.Translate && !counted {
		return path, nil
	}
	p.Response.Usage, p.Response.Stream = true, f.stream
	if f.stream && !f.includeUsage && !p.Response.Translate && d.API.Wire() == config.APIOpenAI && isChatPath(req.Path) {
		// Chat streams report usage only when asked: ask, and the client
		// gets the usage chunk (no choices) before [DONE] too.
		b, err := askForUsage(p.Body)
		if err != nil { // stream_options is an array
			return path, newAPIError(routing.KindInvalidRequest, "invalid_type", `"stream_options" must be an object`)
		}
		p.Body, p.bodyChanged = b, true
	}
	return path, nil
}

// askForUsage returns a copy of a chat body whose stream_options asks for
// the usage chunk. Most bodies have no stream_options: it is added before
// the body's end in one copy, without the copies sjson makes.
func askForUsage(body []byte) ([]byte, error) {
	if gjson.GetBytes(body, "stream_options").Exists() {
		return sjson.SetBytes(body, "stream_options.include_usage", true)
	}
	const option = `,"stream_options":{"include_usage":true}`
	end := bytes.LastIndexByte(body, '}') // a JSON object, with a model before it
	out := make([]byte, 0, len(body)+len(option))
	return append(append(append(out, body[:end]...), option...), body[end:]...), nil
}

// planResponse finishes the attempts for what is done with the answer: a
// translated attempt's headers, a changed body's length; and a request
// without fallbacks whose answer is read goes to a response cluster (one
// with fallbacks is read by the filter of the attempt that answers).
func (p *Plan) planResponse() {
	for i := range p.Attempts {
		a := &p.Attempts[i]
		a.BodyChanged = a.BodyChanged || p.bodyChanged
		if p.Response.Translate {
			a.translated()
		}
	}
	if !p.Response.needed() || p.Fallback() {
		return
	}
	a := &p.Attempts[0]
	a.SetHeaders[0].Value = p.Response.cluster(a.Cluster)
	// Counted and translated answers must come as they are, not compressed.
	a.RemoveHeaders = slices.Concat(a.RemoveHeaders, []string{"accept-encoding"})
}

// runHooks runs the on_request hooks and applies what they chose to the
// plan and the routing request; it returns the body the upstream gets.
func (p *Plan) runHooks(ctx context.Context, hooks *luahooks.Set, router *routing.Router, req *Request, rreq *routing.Request) ([]byte, *apiError) {
	var res luahooks.Result
	if h := req.hooked; h != nil {
		res, p.HooksStart, p.HooksTook = h.res, h.start, h.took
	} else {
		p.HooksStart = time.Now()
		var err *apiError
		res, err = runRequestHooks(ctx, hooks, router, req, p.Model, p.Session)
		p.HooksTook = time.Since(p.HooksStart)
		if err != nil {
			p.Hooks, p.HookErr = &res, err.cause
			return nil, err
		}
	}
	p.Hooks = &res
	body := req.Body
	if res.Body != nil {
		body = res.Body
	}
	if res.Model != "" {
		rreq.Model = res.Model
	}
	rreq.Provider, rreq.Route = res.Provider, res.Route
	if res.SessionSet && res.Session != p.Session {
		p.Session, p.SessionSource = res.Session, sessionFromHook
		if res.Session == "" {
			p.SessionSource = ""
		}
	}
	return body, nil
}

// hookRun is one run of the on_request hooks that ended without error.
type hookRun struct {
	res   luahooks.Result
	start time.Time
	took  time.Duration
}

// readHookedBody reads the body on_request hooks left, which the gateway
// checks as it checks a client's: a hook that breaks it fails the request
// as a hook failure, never sends it on.
func readHookedBody(body []byte) (bodyFields, *apiError) {
	f, err := readBody(body)
	if err != nil {
		e := newAPIError(routing.KindAPI, "hook_failed", "the gateway could not process the request (request hook failed)")
		e.cause = errors.New("on_request hooks left a body the gateway refuses: " + err.message)
		return f, e
	}
	return f, nil
}

// addAttempts builds the plan's attempts from the decision: one, or for a
// route with fallbacks or a key pool one per attempt, healthy first.
func (p *Plan) addAttempts(d routing.Decision, st *state, path string) *apiError {
	if len(d.Attempts) < 2 {
		a, err := newAttempt(d, path, p.Body, p.Hooks, p.Beta)
		p.Attempts = []Attempt{a}
		return err
	}
	p.Retry = d.Retry
	for _, d := range st.order(d.Attempts) {
		a, err := newAttempt(d, path, p.Body, p.Hooks, p.Beta)
		if err != nil {
			return err
		}
		p.Attempts = append(p.Attempts, a)
	}
	return nil
}

// state is what the gateway remembers across requests that plans read:
// provider health and the loop guard's windows. Nil in a dry run.
type state struct {
	health *health
	loops  *loopGuard
}

// order is health.order, keeping the order without state.
func (st *state) order(attempts []routing.Decision) []routing.Decision {
	if st == nil {
		return attempts
	}
	return st.health.order(attempts)
}

// newAttempt turns a routing decision into what the upstream request
// carries: the routing header, the hooks' headers, the provider credential
// in place of the client's key, the path prefix and the model rewrite.
func newAttempt(d routing.Decision, path string, body []byte, hooked *luahooks.Result, beta string) (Attempt, *apiError) {
	a := Attempt{Provider: d.Provider, Cluster: d.Cluster, Route: d.Route, Model: d.Model, API: d.API,
		Path: upstreamPath(&d, path), Body: body, Affinity: d.Affinity, Key: d.Key, KeyAffinity: d.KeyAffinity, Vertex: d.Vertex}
	a.SetHeaders = make([]routing.Header, 0, 2)
	a.SetHeaders = append(a.SetHeaders, routing.Header{Name: routing.ClusterHeader, Value: d.Cluster})
	a.RemoveHeaders = d.Strip // shared and read-only, unless hooks add to it
	if hooked != nil {
		a.BodyChanged = hooked.Body != nil
		for _, name := range slices.Sorted(maps.Keys(hooked.SetHeaders)) {
			a.SetHeaders = append(a.SetHeaders, routing.Header{Name: name, Value: hooked.SetHeaders[name]})
		}
		a.RemoveHeaders = append(slices.Clone(hooked.RemoveHeaders), d.Strip...)
	}
	if d.Credential != nil {
		a.SetHeaders = append(a.SetHeaders, *d.Credential)
		a.Credential = d.Credential.Name
	}
	if d.Bedrock != nil {
		// The model goes in the path; the signature covers the final body.
		return a, a.toBedrock(d.Bedrock, d.Model, routing.KeepBetas(beta, d.Betas))
	}
	if vertexClaudeAttempt(&d) {
		return a, a.vertexClaude(&d, path, beta)
	}
	if d.RewriteModel && bodyNamesModel(d.API) {
		b, err := rewriteModel(a.Body, d.Model)
		if err != nil {
			return a, newAPIError(routing.KindAPI, "internal_error", "internal gateway error")
		}
		a.Body, a.BodyChanged = b, true
	}
	return a, nil
}

// DryRun plans a request as the gateway would, without Envoy: the same
// endpoint, method and body checks, hooks, routing and upstream request. The
// client key is given by name. router may be nil (no config): the plan then
// stops after the hooks. The error is the one the client would get.
func DryRun(ctx context.Context, router *routing.Router, hooks *luahooks.Set, req Request, keyName string) (Plan, error) {
	ep, api := lookupEndpoint(req.Path)
	req.API = api
	if err := checkEndpoint(ep, req.Method, req.Path); err != nil {
		return Plan{}, err
	}
	req.Principal = routing.Principal{Name: keyName}
	if router != nil && keyName != "" {
		pr, ok := router.PrincipalNamed(keyName)
		if !ok {
			return Plan{}, fromRouting(routing.Errorf(routing.KindAuthentication, "no client key is named %q", keyName))
		}
		req.Principal = pr
	}
	p, err := plan(ctx, router, hooks, nil, &req)
	if err != nil {
		return p, err
	}
	return p, nil
}
