package luahooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Defaults for Options.
const (
	DefaultTimeout = 5 * time.Millisecond
	// minLoadTimeout is the least time a top-level chunk or a reload's
	// validation call gets: they run on cold states, off the request's budget.
	minLoadTimeout = 100 * time.Millisecond
)

// Source is one script file's name and contents.
type Source struct {
	Name string // file name, used in errors, logs and metric labels
	Code []byte
}

// script is one compiled script.
type script struct {
	name  string
	proto *lua.FunctionProto
	// mentionsBody: the source names body or set_model (Set.MayReadBody).
	mentionsBody bool
	onRequest    bool
	onResponse   bool
	reqTime      prometheus.Observer
	resTime      prometheus.Observer
	// MCP tool hooks (tools.go).
	onToolCall, onToolResult     bool
	toolCallTime, toolResultTime prometheus.Observer
}

// compile parses and compiles one script.
func compile(src Source) (*script, error) {
	chunk, err := parse.Parse(bytes.NewReader(src.Code), src.Name)
	if err != nil {
		he := &HookError{Script: src.Name, Hook: "load", Reason: ReasonSyntax, Message: err.Error()}
		var pe *parse.Error
		if errors.As(err, &pe) {
			he.Line = pe.Pos.Line
			he.Message = pe.Message
			switch {
			case pe.Pos.Line == parse.EOF:
				he.Line = bytes.Count(src.Code, []byte("\n")) + 1
				he.Message += " at end of file"
			case pe.Token != "":
				he.Message += " near '" + pe.Token + "'"
			}
		}
		return nil, he
	}
	proto, err := lua.Compile(chunk, src.Name)
	if err != nil {
		he := &HookError{Script: src.Name, Hook: "load", Reason: ReasonSyntax, Message: err.Error()}
		var ce *lua.CompileError
		if errors.As(err, &ce) {
			he.Line = ce.Line
			he.Message = ce.Message
		}
		return nil, he
	}
	mentions := bytes.Contains(src.Code, []byte("body")) || bytes.Contains(src.Code, []byte("set_model"))
	return &script{name: src.Name, proto: proto, mentionsBody: mentions}, nil
}

// setConfig is what every Set of a Manager shares.
type setConfig struct {
	timeout     time.Duration
	loadTimeout time.Duration
	failOpen    bool
	poolSize    int
	logger      *slog.Logger
	metrics     *metrics // nil: no metrics
}

// Set is one immutable, numbered version of the compiled scripts with its
// pool of LStates. A request uses one Set for its whole life.
type Set struct {
	version uint64
	digest  [sha256.Size]byte // of the sources, to skip reloads that change nothing
	cfg     setConfig
	scripts []*script
	hasReq  bool
	// readsBody: MayReadBody.
	readsBody bool
	hasResp   bool
	// hasToolCall, hasToolResult: some script defines on_tool_call,
	// on_tool_result (tools.go).
	hasToolCall, hasToolResult bool
	pool                       chan *vm      // idle states
	tokens                     chan struct{} // one per live state, bounding how many exist
}

var emptySet = &Set{}

// Version is the set's number: 0 for no hooks, then 1, 2, ... per reload.
func (s *Set) Version() uint64 { return s.version }

// HasOnRequest reports whether any script defines on_request.
func (s *Set) HasOnRequest() bool { return s.hasReq }

// MayReadBody reports whether an on_request hook may read or change the
// request body: its script mentions body (req.body) or set_model (which
// rewrites the model in the body). A set that may not runs on a request
// whose body stayed in Envoy (Request.BodyKept); one that may is given the
// body at once. A hook that reaches the body some other way
// (req["bo".."dy"]) ends the chain with ErrNeedsBody, and gets it then.
func (s *Set) MayReadBody() bool { return s.readsBody }

// HasOnResponse reports whether any script defines on_response; when false,
// the gateway need not ask Envoy for response headers.
func (s *Set) HasOnResponse() bool { return s.hasResp }

// Scripts returns the script names in the order they run.
func (s *Set) Scripts() []string {
	out := make([]string, len(s.scripts))
	for i, sc := range s.scripts {
		out[i] = sc.name
	}
	return out
}

// syntheticRequest and syntheticResponse are what each hook runs against once
// before a new set goes live.
func syntheticRequest() *Request {
	return &Request{
		API:    "openai",
		Method: "POST",
		Path:   "/v1/chat/completions",
		Headers: map[string]string{
			"content-type": "application/json",
			"user-agent":   "switchyard-hooks-check",
		},
		Body:      []byte(`{"model":"synthetic-model","messages":[{"role":"system","content":"You are a test."},{"role":"user","content":"hello"}]}`),
		Model:     "synthetic-model",
		KeyName:   "synthetic-key",
		RequestID: "hooks-check",
	}
}

func syntheticResponse() *Response {
	return &Response{
		Status:    200,
		Headers:   map[string]string{"content-type": "application/json"},
		RequestID: "hooks-check",
	}
}

// buildSet compiles sources, loads them into a fresh state, runs every hook
// once against a synthetic request and response, and returns the ready Set.
// All problems are reported, joined.
func buildSet(cfg setConfig, version uint64, sources []Source) (*Set, error) {
	s := &Set{version: version, cfg: cfg}
	var errs []error
	for _, src := range sources {
		sc, err := compile(src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.scripts = append(s.scripts, sc)
	}
	if len(s.scripts) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return s, nil
	}
	v, err := newVM(s.scripts, cfg.logger, cfg.loadTimeout)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	// Run the hooks in order, as a request would, against a synthetic
	// request and response. After a failure go on in a fresh state so that
	// every failure is reported.
	var res Result
	rc := newReqCall(syntheticRequest(), &res)
	var out ResponseResult
	resp := syntheticResponse()
	pc := &resCall{res: resp, out: &out, hdr: headerState{base: resp.Headers, changes: &out.Changes}}
	for i, sc := range s.scripts {
		vs := v.scripts[i]
		if vs.onRequest == nil && vs.onResponse == nil && vs.onToolCall == nil && vs.onToolResult == nil {
			errs = append(errs, &HookError{Script: sc.name, Hook: "load", Reason: ReasonMalformed,
				Message: "defines neither on_request nor on_response (nor on_tool_call, on_tool_result)"})
			continue
		}
		sc.onRequest, sc.onResponse = vs.onRequest != nil, vs.onResponse != nil
		sc.onToolCall, sc.onToolResult = vs.onToolCall != nil, vs.onToolResult != nil
		err := v.checkToolHooks(context.Background(), cfg.loadTimeout, sc, i)
		if err == nil && sc.onRequest {
			rc.begin(sc.name)
			if err = v.runRequest(context.Background(), cfg.loadTimeout, sc.name, vs.onRequest, rc); err == nil {
				rc.commit()
			} else {
				rc.rollback(err)
			}
		}
		if err == nil && sc.onResponse {
			pc.begin(sc.name)
			if err = v.runResponse(context.Background(), cfg.loadTimeout, sc.name, vs.onResponse, pc); err == nil {
				pc.commit()
			} else {
				pc.rollback(err)
			}
		}
		if err != nil {
			errs = append(errs, err)
			v.close()
			if v, err = newVM(s.scripts, cfg.logger, cfg.loadTimeout); err != nil {
				return nil, errors.Join(append(errs, err)...)
			}
		}
	}
	v.close()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, sc := range s.scripts {
		s.hasReq = s.hasReq || sc.onRequest
		s.readsBody = s.readsBody || sc.onRequest && sc.mentionsBody
		s.hasResp = s.hasResp || sc.onResponse
		s.hasToolCall = s.hasToolCall || sc.onToolCall
		s.hasToolResult = s.hasToolResult || sc.onToolResult
		if cfg.metrics != nil {
			sc.reqTime = cfg.metrics.duration.WithLabelValues(sc.name, "on_request")
			sc.resTime = cfg.metrics.duration.WithLabelValues(sc.name, "on_response")
			sc.toolCallTime = cfg.metrics.duration.WithLabelValues(sc.name, "on_tool_call")
			sc.toolResultTime = cfg.metrics.duration.WithLabelValues(sc.name, "on_tool_result")
		}
	}
	s.pool = make(chan *vm, cfg.poolSize)
	s.tokens = make(chan struct{}, cfg.poolSize)
	return s, nil
}

// runRequest calls one on_request hook and checks what it returned.
func (v *vm) runRequest(ctx context.Context, timeout time.Duration, name string, fn *lua.LFunction, c *reqCall) error {
	v.req, v.requestID = c, c.req.RequestID
	defer func() { v.req = nil }()
	ret, err := v.call(ctx, timeout, name, "on_request", fn, v.newReqUD(c))
	if err != nil {
		return err
	}
	if ret != lua.LNil && ret != lua.LValue(v.rejectMarker) {
		return &HookError{Script: name, Hook: "on_request", Line: fn.Proto.LineDefined, Reason: ReasonMalformed,
			Message: fmt.Sprintf("on_request returned a %s; return nothing or req:reject(status, message)", ret.Type())}
	}
	return nil
}

// runResponse calls one on_response hook and checks what it returned.
func (v *vm) runResponse(ctx context.Context, timeout time.Duration, name string, fn *lua.LFunction, c *resCall) error {
	v.res, v.requestID = c, c.res.RequestID
	defer func() { v.res = nil }()
	ret, err := v.call(ctx, timeout, name, "on_response", fn, v.newResUD(c))
	if err != nil {
		return err
	}
	if ret != lua.LNil {
		return &HookError{Script: name, Hook: "on_response", Line: fn.Proto.LineDefined, Reason: ReasonMalformed,
			Message: fmt.Sprintf("on_response returned a %s; return nothing", ret.Type())}
	}
	return nil
}

// acquire takes an idle state, or creates one while fewer than poolSize
// exist, or waits for one to be released.
func (s *Set) acquire(ctx context.Context) (*vm, error) {
	select {
	case v := <-s.pool:
		return v, nil
	default:
	}
	select {
	case v := <-s.pool:
		return v, nil
	case s.tokens <- struct{}{}:
		v, err := newVM(s.scripts, s.cfg.logger, s.cfg.loadTimeout)
		if err != nil {
			<-s.tokens
			return nil, err
		}
		return v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a lua state: %w", ctx.Err())
	}
}

func (s *Set) release(v *vm) { s.pool <- v }

// discard drops a state after a failed call: its globals may be half-changed.
func (s *Set) discard(v *vm) {
	v.close()
	<-s.tokens
}

// hookError is a failed call's error as a HookError, the error OnRequest or
// OnResponse returns under the fail_closed policy.
func hookError(err error) *HookError {
	var he *HookError
	if !errors.As(err, &he) {
		he = &HookError{Hook: "load", Reason: ReasonLoad, Message: err.Error()}
	}
	return he
}

// report counts and logs a hook failure.
func (s *Set) report(he *HookError, requestID string) {
	if s.cfg.metrics != nil {
		s.cfg.metrics.errors.WithLabelValues(he.Script, he.Reason).Inc()
	}
	policy := "fail_closed"
	if s.cfg.failOpen {
		policy = "fail_open"
	}
	s.cfg.logger.Warn("hook failed",
		"script", he.Script, "hook", he.Hook, "line", he.Line, "reason", he.Reason,
		"error", he.Message, "request_id", requestID, "policy", policy, "hooks_version", s.version)
}

// OnRequest runs every on_request hook in order and merges what they
// changed. A hook that calls req:reject ends the chain with Result.Reject
// set. A failing hook makes OnRequest return an error wrapping ErrHookFailed
// (fail_closed) or is skipped as if absent (fail_open). On error the Result
// carries only Changes, for diagnostics.
func (s *Set) OnRequest(ctx context.Context, req *Request) (Result, error) {
	var res Result
	if !s.hasReq {
		return res, nil
	}
	c := newReqCall(req, &res)
	if err := s.runChain(ctx, req.RequestID, c); err != nil {
		return Result{Changes: res.Changes}, err
	}
	c.finish()
	return res, nil
}

// OnResponse runs every on_response hook in order, with the same failure
// policy as OnRequest.
func (s *Set) OnResponse(ctx context.Context, resp *Response) (ResponseResult, error) {
	var out ResponseResult
	if !s.hasResp {
		return out, nil
	}
	c := &resCall{res: resp, out: &out}
	c.hdr = headerState{base: resp.Headers, changes: &out.Changes}
	if err := s.runChain(ctx, resp.RequestID, c); err != nil {
		return ResponseResult{Changes: out.Changes}, err
	}
	out.SetHeaders = c.hdr.set
	out.RemoveHeaders = c.hdr.removedList()
	return out, nil
}

// phaseCall is one OnRequest or OnResponse call, as runChain drives it.
type phaseCall interface {
	has(sc *script) bool                                                            // the script defines this phase's hook
	timer(sc *script) prometheus.Observer                                           // its duration series, or nil
	run(ctx context.Context, v *vm, timeout time.Duration, i int, sc *script) error // call script i's hook
	begin(script string)                                                            // a script starts: stage its changes
	commit()                                                                        // it succeeded: keep them
	rollback(err error)                                                             // it failed: drop them, record why
	stop() bool                                                                     // end the chain early (a rejection)
}

// runChain runs the phase's hook of every script, in order, on one pooled
// state, under the set's failure policy: a failing hook ends the chain with
// its error (fail_closed) or is dropped as if absent (fail_open). A failed
// state is discarded, since its globals may be half-changed. The failures
// a fail_open chain dropped are reported when it ends, unless it ends with
// ErrNeedsBody: it then runs again on the body, and reports them there.
func (s *Set) runChain(ctx context.Context, requestID string, c phaseCall) error {
	var v *vm
	var dropped []*HookError
	defer func() {
		if v != nil {
			s.release(v)
		}
	}()
	for i, sc := range s.scripts {
		if !c.has(sc) {
			continue
		}
		c.begin(sc.name)
		if v == nil {
			var err error
			if v, err = s.acquire(ctx); err != nil {
				if ctx.Err() != nil {
					return err
				}
				he := hookError(err)
				if !s.cfg.failOpen {
					s.report(he, requestID)
					return he
				}
				dropped = append(dropped, he)
				c.rollback(he)
				continue
			}
		}
		start := time.Now()
		err := c.run(ctx, v, s.cfg.timeout, i, sc)
		if t := c.timer(sc); t != nil {
			t.Observe(time.Since(start).Seconds())
		}
		if err != nil {
			s.discard(v)
			v = nil
			if ctx.Err() != nil || errors.Is(err, ErrNeedsBody) {
				return err
			}
			he := hookError(err)
			c.rollback(he)
			if !s.cfg.failOpen {
				s.report(he, requestID)
				return he
			}
			dropped = append(dropped, he)
			continue
		}
		c.commit()
		if c.stop() {
			break
		}
	}
	for _, he := range dropped {
		s.report(he, requestID)
	}
	return nil
}

func (c *reqCall) has(sc *script) bool                  { return sc.onRequest }
func (c *reqCall) timer(sc *script) prometheus.Observer { return sc.reqTime }
func (c *reqCall) stop() bool                           { return c.cur.reject != nil }
func (c *reqCall) run(ctx context.Context, v *vm, timeout time.Duration, i int, sc *script) error {
	err := v.runRequest(ctx, timeout, sc.name, v.scripts[i].onRequest, c)
	if c.needsBody {
		// Even if the script caught the error: it went on without the body.
		return ErrNeedsBody
	}
	return err
}

func (c *resCall) has(sc *script) bool                  { return sc.onResponse }
func (c *resCall) timer(sc *script) prometheus.Observer { return sc.resTime }
func (c *resCall) stop() bool                           { return false }
func (c *resCall) run(ctx context.Context, v *vm, timeout time.Duration, i int, sc *script) error {
	return v.runResponse(ctx, timeout, sc.name, v.scripts[i].onResponse, c)
}
