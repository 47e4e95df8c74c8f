package luahooks

import (
	"errors"
	"fmt"
	"strings"

	"switchyard/routing"
)

// ErrHookFailed is wrapped by every error a hook failure produces under the
// fail_closed policy. Its text is safe to show a client.
var ErrHookFailed = errors.New("hook failed")

// ErrNeedsBody ends OnRequest when a hook reads the body of a request whose
// body stayed in Envoy (Request.BodyKept): the caller gets the body and runs
// the hooks again on it. It is not a hook failure.
var ErrNeedsBody = errors.New("a hook reads the request body, which stayed in Envoy")

// Request is what a hook sees of one gateway request.
type Request struct {
	API    string // "openai" or "anthropic"
	Method string
	Path   string
	// Headers holds the request headers with lower-case names. Credential
	// headers are never shown to scripts.
	Headers map[string]string
	Body    []byte // raw JSON request body
	// BodyKept: the body stayed in Envoy, which summarized it (Model and
	// Session come from the summary) and Body is nil; a hook that reads it
	// (req.body, req:set_model) ends the chain with ErrNeedsBody.
	BodyKept  bool
	Model     string // model named in the body
	KeyName   string // configured name of the client key ("" if anonymous)
	RequestID string
	Session   string // the request's session key, "" for none
	// IsProvider and IsRoute validate names given to req:provider and
	// req:route; nil accepts every name.
	IsProvider func(name string) bool
	IsRoute    func(name string) bool
	// UpstreamAPI tells req:upstream_api which API the provider serving a
	// model (or the provider or route a hook chose) speaks, "" when none
	// would; nil answers "".
	UpstreamAPI func(model, provider, route string) string
}

// Reject is a refusal decided by a hook: the client gets Status and Message
// in the called API's error shape.
type Reject struct {
	Status  int
	Message string
}

// Change is one thing a script did to a request or response, for the dry-run
// CLI and debug logs.
type Change struct {
	Script string // file name of the script
	Op     string // set_header, remove_header, set_model, set_body, set_session, provider, route, tag, reject, error
	Key    string // header name, body path, tag key, status...
	Value  string // new value (JSON for set_body), or the error message for Op "error"
}

func (c Change) String() string {
	switch {
	case c.Key == "" && c.Value == "":
		return c.Script + ": " + c.Op
	case c.Key == "":
		return c.Script + ": " + c.Op + " " + c.Value
	case c.Value == "":
		return c.Script + ": " + c.Op + " " + c.Key
	}
	return c.Script + ": " + c.Op + " " + c.Key + " = " + c.Value
}

// Result is what on_request hooks changed, merged over all scripts in order.
type Result struct {
	SetHeaders    map[string]string
	RemoveHeaders []string // sorted
	Model         string   // "" = unchanged
	// Body is nil when unchanged, else the whole new body (including the
	// model rewrite done by req:set_model).
	Body     []byte
	Provider string // "" = not chosen by a hook
	Route    string // "" = not chosen by a hook
	// Session is the session key a hook set ("" drops it) when SessionSet.
	Session    string
	SessionSet bool
	Tags       map[string]string
	Reject     *Reject // non-nil: the request must be refused with this error
	Changes    []Change
}

// Response is what an on_response hook sees of the upstream response.
type Response struct {
	Status    int
	Headers   map[string]string // lower-case names
	RequestID string
	Tags      map[string]string // tags attached by on_request hooks
	// API is the client's API ("openai" or "anthropic"), UpstreamAPI the
	// provider's: they differ when the gateway translated the request.
	API, UpstreamAPI string
}

// ResponseResult is what on_response hooks changed.
type ResponseResult struct {
	SetHeaders    map[string]string
	RemoveHeaders []string // sorted
	Changes       []Change
}

// Failure reasons, the values of the reason label of
// switchyard_hooks_errors_total.
const (
	ReasonSyntax    = "syntax"    // the script does not compile
	ReasonRuntime   = "runtime"   // the script raised an error (including API misuse)
	ReasonTimeout   = "timeout"   // the call ran past its deadline
	ReasonMalformed = "malformed" // the hook returned something it must not
	ReasonLimit     = "limit"     // a memory or stack guard refused an operation
	ReasonLoad      = "load"      // a fresh state could not load the scripts
)

// HookError describes a failed hook call. It wraps ErrHookFailed and never
// contains a stack trace.
type HookError struct {
	Script  string // file name
	Hook    string // on_request, on_response or load
	Line    int    // 0 when unknown
	Reason  string // one of the Reason constants
	Message string // the Lua error message without its position prefix
}

func (e *HookError) Error() string {
	var b strings.Builder
	b.WriteString("hook ")
	b.WriteString(e.Script)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	fmt.Fprintf(&b, " %s (%s): %s", e.Hook, e.Reason, e.Message)
	return b.String()
}

func (e *HookError) Unwrap() error { return ErrHookFailed }

// credentialHeaders are hidden from scripts: req:header returns nil for them.
var credentialHeaders = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range routing.ClientKeyHeaders {
		m[h] = true
	}
	return m
}()
