package routing

import (
	"slices"
	"strings"
)

// RequestIDHeader is the client's request id (Envoy makes one when the
// client sends none). Logs and hooks show it; nothing inside the gateway
// trusts it: a client or a hook can set it to anything, so the streams of a
// request find each other by the gateway's own id (RequestNamespace).
const RequestIDHeader = "x-request-id"

// RequestNamespace is the dynamic metadata namespace where extproc puts the
// gateway's own id of a request ({"id": "…"}) whose later streams (its
// attempts, its answer) must find its plan. Envoy hands the metadata to the
// upstream filters of the same request only; no client and no hook can set
// or read it.
const RequestNamespace = "switchyard.request"

// InternalHeaders carry the gateway's decision to Envoy's route table.
// Envoy strips every client-sent copy before any filter runs, and hooks may
// neither set nor remove them.
var InternalHeaders = []string{ClusterHeader, FallbackHeader}

// CheckHeaders carry the check trip (below); with the check on, Envoy
// strips them as it does InternalHeaders. Hooks may not touch them either
// (ProtectedHeader, by their prefix).
var CheckHeaders = []string{TripHeader, CheckSummaryHeader, CheckLengthHeader}

// protectedHeaders are the headers hooks may neither set nor remove:
// the internal ones, the credentials, the request's identity, and headers
// Envoy owns. Pseudo-headers and Envoy's own x-envoy-* (retries, timeouts)
// are protected by prefix.
var protectedHeaders = func() map[string]bool {
	m := map[string]bool{RequestIDHeader: true, "host": true, "content-length": true, "transfer-encoding": true}
	for _, h := range InternalHeaders {
		m[h] = true
	}
	for _, h := range ClientKeyHeaders {
		m[h] = true
	}
	return m
}()

// ProtectedHeader reports whether hooks are forbidden to set or remove the
// header (name must be lower-case).
func ProtectedHeader(name string) bool {
	return protectedHeaders[name] || strings.HasPrefix(name, ":") || strings.HasPrefix(name, "x-envoy-") ||
		strings.HasPrefix(name, "x-switchyard-")
}

// BodyNamespace is the dynamic metadata namespace where Envoy's body module
// (cmd/bodymodule) leaves its summary of a body it kept (BodySummaryKey):
// the members planning reads, as a small JSON object. Clients cannot write
// dynamic metadata; the router-level ext_proc filter forwards this
// namespace to extproc.
const (
	BodyNamespace  = "switchyard.body"
	BodySummaryKey = "summary"
)

// The check trip: with Envoy's body module, a big body's decision can travel
// over HTTP/1.1 (Envoy's ext_authz filter) instead of an ext_proc stream.
// Envoy adds CheckSummaryHeader (the module's summary) and CheckLengthHeader
// (the body's announced length, which the check itself does not carry) to
// the check; extproc answers with the attempt's headers, CheckFlightHeader
// (the gateway's own id, which Envoy keeps in CheckNamespace), or
// TripHeader when the plan needs the body: the request then goes to
// extproc's ext_proc stream as before. Clients can send none of them.
const (
	CheckPathPrefix    = "/switchyard-check"
	CheckSummaryHeader = "x-switchyard-summary"
	CheckLengthHeader  = "x-switchyard-content-length"
	TripHeader         = "x-switchyard-trip"
	// CheckFlightHeader has no x- prefix: it is not among the headers a
	// check sets on the request (CheckUpstreamHeader).
	CheckFlightHeader = "switchyard-flight"
	CheckNamespace    = "envoy.filters.http.ext_authz"
)

// CheckUpstreamNames and every x- header are what a check's answer may set
// on the request; a plan that sets another goes to ext_proc.
var CheckUpstreamNames = []string{"authorization", "api-key", VersionHeader, BetaHeader}

// CheckUpstreamHeader reports whether a check's answer may set the header.
func CheckUpstreamHeader(name string) bool {
	return strings.HasPrefix(name, "x-") || slices.Contains(CheckUpstreamNames, name)
}
