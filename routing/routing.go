// Package routing turns a gateway configuration into routing decisions.
//
// A Router is compiled once from a decoded Config and never changes; hot
// reload builds a new Router and swaps it in. Decide is pure: given a
// Request it returns a Decision (plain data: cluster, credential, upstream
// model, path prefix) or an *Error that carries the HTTP status and kind of
// the failure. routing knows neither Envoy nor Lua.
//
// The configuration file itself (schema, decoding, secrets) is package
// config; Compile turns a config.Config into a Router.
//
// A model resolves, in order, through an exact route, the "provider/model"
// form (the model after the slash is sent upstream), then glob routes in
// file order. Among weighted targets only those whose schema matches the
// API the client called are candidates; a request with a session key picks
// among them by rendezvous hashing (affinity.go). A provider with a key
// pool turns a decision into attempts over its keys (pool.go).
package routing

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"switchyard/bedrock"
	"switchyard/config"
)

// ClusterHeader carries the routing decision to Envoy's route
// (cluster_header). Envoy strips any client-sent copy before ext_proc runs.
const ClusterHeader = "x-switchyard-cluster"

// ClientKeyHeaders are the headers a client may present its key in, in the
// order they are looked at. None of them goes upstream unless it carries the
// provider's own credential.
var ClientKeyHeaders = []string{"authorization", "x-api-key", "api-key"}

// BedrockCredential is the header a Bedrock signature travels in;
// BedrockSigningHeaders the others a signed request carries, which an
// attempt to another provider removes.
const BedrockCredential = "authorization"

// BetaHeader names the Messages API betas a client asks for; Bedrock takes
// them in the body instead (anthropic_beta).
const BetaHeader = "anthropic-beta"

// VersionHeader is the Messages API's version header. A Bedrock or Vertex
// attempt goes without it, so a later attempt of the chain to Anthropic
// itself sets the client's again.
const VersionHeader = "anthropic-version"

var BedrockSigningHeaders = []string{"x-amz-date", "x-amz-security-token"}

// Session headers, in the order a session key is looked for (the processor
// also reads the body's metadata.user_id after the Claude Code header and
// prompt_cache_key after the Codex one).
const (
	SessionHeader       = "x-session-id"             // explicit, from any client
	ClaudeSessionHeader = "x-claude-code-session-id" // Claude Code
	CodexSessionHeader  = "session-id"               // Codex CLI
)

// RetryCountHeader is how the OpenAI and Anthropic SDKs number a request's
// retries: 1 and up on a retry of an attempt that got no answer (a
// connection error, a timeout, 408, 409, 429, 5xx).
const RetryCountHeader = "x-stainless-retry-count"

// SessionHeaders lists the session headers, for Envoy to forward.
var SessionHeaders = []string{SessionHeader, ClaudeSessionHeader, CodexSessionHeader}

// Header is one HTTP header to set on the upstream request.
type Header struct {
	Name  string
	Value string
}

// Principal is an authenticated client key. The zero value means client keys
// are not configured and the caller is anonymous.
type Principal struct {
	// Name is the key's configured name (never the key itself).
	Name string
	// Limits are the key's request and token budgets; zero fields mean
	// no budget of that kind.
	Limits config.LimitsConfig
	// Team is the key's team, "" for none; TeamBudget names the budget
	// its TeamLimits are counted under, shared by every key of the team.
	Team       string
	TeamBudget string
	TeamLimits config.LimitsConfig
	// models is the allow-list of model patterns; empty allows every model.
	models []pattern
	// loopGuard is the key's loop guard (or the top-level one); nil: off.
	loopGuard *config.LoopGuard
	// mcpTools is the allow-list of MCP tools; empty allows every tool.
	mcpTools []mcpToolPattern
}

// Request is what the processor knows about a request when it asks for a
// decision.
type Request struct {
	// API is the schema of the endpoint the client called.
	API config.API
	// Model is the model named in the request body (possibly changed by a hook).
	Model string
	// Principal is the result of Authenticate.
	Principal Principal
	// Provider, when set (by a hook), forces this configured provider and
	// sends Model unchanged.
	Provider string
	// Route, when set (by a hook), resolves the request through the route
	// with this name instead of matching Model.
	Route string
	// Pick chooses among weighted targets and among the keys of a pool; it
	// must return a value in [0, total). Nil uses math/rand/v2.
	Pick func(total int) int
	// Translate says the client's endpoint has a counterpart in the other
	// API (chat completions and messages): a model served only with the
	// other API is then routed there, and the gateway translates.
	Translate bool
	// Session is the request's session key, "" for none. With one, every
	// request of the session picks the same weighted target (rendezvous
	// hashing) and Pick is not used.
	Session string
}

// pick is Pick, or a uniform random pick without one.
func (r *Request) pick(total int) int {
	if r.Pick != nil {
		return r.Pick(total)
	}
	return rand.IntN(total)
}

// Decision is the outcome of routing one request.
type Decision struct {
	// Provider is the configured provider's name.
	Provider string
	// API is the schema the provider speaks.
	API config.API
	// Cluster is the Envoy cluster that serves the provider.
	Cluster string
	// Model is the model the upstream must see.
	Model string
	// RewriteModel is true when Model differs from the requested model and
	// the body must be rewritten.
	RewriteModel bool
	// PathPrefix is prepended to the request path ("" for none).
	PathPrefix string
	// APIVersion is Azure OpenAI's api_version ("" for other schemas).
	APIVersion string
	// Vertex is true when the provider is Vertex AI: API is then its
	// models' (Anthropic's or Gemini's), reached by Vertex's paths.
	Vertex bool
	// Credential is the provider credential header to set; nil when the
	// provider takes no credential.
	Credential *Header
	// Strip are the client key headers to remove: ClientKeyHeaders but the
	// one Credential travels in. Shared: callers must not modify it.
	Strip []string
	// Route names the route that matched (its model pattern or name), for
	// logs; "" when the provider was chosen directly.
	Route string
	// Attempts are the request's attempts in order, this decision first;
	// nil when the route has no fallbacks (one attempt).
	Attempts []Decision
	// Retry says when an attempt has failed; nil with Attempts.
	Retry *RetryPolicy
	// Affinity is true when the session key chose among several targets.
	Affinity bool
	// Key names the pool key Credential holds (its key_env or key_file),
	// "" when the provider has no key pool; KeyAffinity is true when the
	// session key chose it.
	Key         string
	KeyAffinity bool
	// Bedrock signs each attempt of a Bedrock provider (its body, path and
	// host); nil for every other provider.
	Bedrock *bedrock.Endpoint
	// Betas are the anthropic-beta flags the provider takes (KeepBetas);
	// nil: any. Shared: callers must not modify it.
	Betas []string
}

// KeepBetas is the flags of an anthropic-beta header (comma-separated)
// that allowed lists, in the header's order; every one when allowed is nil.
func KeepBetas(header string, allowed []string) []string {
	var out []string
	for b := range strings.SplitSeq(header, ",") {
		if b = strings.TrimSpace(b); b != "" && (allowed == nil || slices.Contains(allowed, b)) {
			out = append(out, b)
		}
	}
	return out
}

// Error is a routing failure meant for the client. Message never contains a
// credential; it may name an environment variable.
type Error struct {
	Status  int    // HTTP status
	Kind    Kind   // error category, mapped to each API's error type
	Message string // human-readable, safe to show the client
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Kind, e.Message) }

// Kind classifies client-facing errors. The values follow Anthropic's error
// types; the processor maps them to OpenAI's where they differ.
type Kind string

const (
	KindInvalidRequest Kind = "invalid_request_error" // 400
	KindAuthentication Kind = "authentication_error"  // 401
	KindPermission     Kind = "permission_error"      // 403
	KindNotFound       Kind = "not_found_error"       // 404
	KindTooLarge       Kind = "request_too_large"     // 413
	KindAPI            Kind = "api_error"             // 500
	KindRateLimit      Kind = "rate_limit_error"      // 429
	KindUnavailable    Kind = "unavailable_error"     // 503
)

// Errorf builds an *Error with the status that belongs to kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Status: kind.Status(), Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Status is the HTTP status for kind.
func (k Kind) Status() int {
	switch k {
	case KindInvalidRequest:
		return http.StatusBadRequest
	case KindAuthentication:
		return http.StatusUnauthorized
	case KindPermission:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindRateLimit:
		return http.StatusTooManyRequests
	case KindUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// kinds are the kinds Status tells apart.
var kinds = [...]Kind{KindInvalidRequest, KindAuthentication, KindPermission, KindNotFound, KindTooLarge,
	KindRateLimit, KindUnavailable, KindAPI}

// KindOf is the kind of an error answered with status: the one whose
// Status it is, or for another status a client's error (invalid request)
// or the server's (api).
func KindOf(status int) Kind {
	for _, k := range kinds {
		if k.Status() == status {
			return k
		}
	}
	if status < http.StatusInternalServerError {
		return KindInvalidRequest
	}
	return KindAPI
}
