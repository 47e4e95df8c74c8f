package routing

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchyard/config"
)

// FallbackHeader carries the key of a request's retry policy to Envoy's
// route table: the route entry with that key retries the request over its
// attempts. Envoy strips any client-sent copy before ext_proc runs.
const FallbackHeader = "x-switchyard-retry"

// AttemptsNamespace is the dynamic metadata namespace where extproc puts a
// request's attempt clusters, in the shape Envoy's priority group cluster
// specifier reads.
const AttemptsNamespace = "switchyard.attempts"

// AttemptClusterPrefix names the cluster each provider has for attempts of
// requests with fallbacks: the provider's endpoint behind an upstream
// ext_proc filter that gives each attempt its own key, model and path.
// Provider clusters cannot contain "|", so the names never collide.
const AttemptClusterPrefix = "attempt|"

// ClientNamespace is the dynamic metadata namespace where extproc puts a
// translated request's client API ({"api": "openai"}), so that the errors
// Envoy answers itself take the client's shape, not the provider's.
const ClientNamespace = "switchyard.client"

// The response clusters: each provider's endpoint behind an upstream
// ext_proc filter that sees the response body, for the requests that need
// it and only those. UsageClusterPrefix's filter observes (Envoy does not
// wait for extproc: token accounting adds no latency); TranslateClusterPrefix's
// rewrites the body, chunk by chunk, into the client's API.
const (
	UsageClusterPrefix     = "usage|"
	TranslateClusterPrefix = "translate|"
)

// RetryPolicy is when an attempt has failed and how many a request may
// take. Key names the Envoy route entry that applies it.
type RetryPolicy struct {
	Key              string
	Statuses         []int
	ConnectFailure   bool
	Reset            bool
	Attempts         int           // 0: one per target and fallback
	FirstByteTimeout time.Duration // 0: none
}

func newRetryPolicy(r *config.Retry) *RetryPolicy {
	if r == nil {
		return nil
	}
	p := &RetryPolicy{Statuses: slices.Clone(r.Statuses), ConnectFailure: r.ConnectFailure, Reset: r.Reset,
		Attempts: r.Attempts, FirstByteTimeout: r.FirstByteTimeout}
	slices.Sort(p.Statuses)
	p.Statuses = slices.Compact(p.Statuses)
	h := fnv.New64a()
	fmt.Fprintf(h, "%v|%t|%t|%s", p.Statuses, p.ConnectFailure, p.Reset, p.FirstByteTimeout)
	p.Key = "r" + strconv.FormatUint(h.Sum64(), 36)
	return p
}

// RetryOn is the policy's conditions in Envoy's retry_on syntax.
func (p *RetryPolicy) RetryOn() string {
	var on []string
	if p.ConnectFailure {
		on = append(on, "connect-failure", "refused-stream")
	}
	if p.Reset {
		on = append(on, "reset")
	}
	if len(p.Statuses) > 0 {
		on = append(on, "retriable-status-codes")
	}
	return strings.Join(on, ",")
}

// Fails reports whether an attempt that answered status has failed, so the
// request moves on to its next attempt.
func (p *RetryPolicy) Fails(status int) bool { return slices.Contains(p.Statuses, status) }

// RetryPolicies lists the distinct retry policies of the routes, by key:
// Envoy has one route entry for each.
func (r *Router) RetryPolicies() []RetryPolicy {
	seen := map[string]bool{}
	var out []RetryPolicy
	for _, rt := range r.routes {
		if rt.retry != nil && !seen[rt.retry.Key] {
			seen[rt.retry.Key] = true
			out = append(out, *rt.retry)
		}
	}
	if r.poolRetry != nil && !seen[r.poolRetry.Key] {
		out = append(out, *r.poolRetry)
	}
	slices.SortFunc(out, func(a, b RetryPolicy) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// RetryRoute is one Envoy route entry for requests with fallbacks: a
// policy and the number of attempts, since Envoy's retry count is fixed per
// route entry.
type RetryRoute struct {
	Policy   RetryPolicy
	Attempts int // 2 or more
}

// Key is what FallbackHeader carries to select the entry.
func (rr RetryRoute) Key() string { return RetryRouteKey(rr.Policy.Key, rr.Attempts) }

// RetryRouteKey names the route entry for a policy and a number of attempts.
func RetryRouteKey(policy string, attempts int) string {
	return policy + "-" + strconv.Itoa(attempts)
}

// RetryRoutes lists the route entries Envoy needs: for each retry policy,
// one per number of attempts from 2 to the longest chain that uses it.
func (r *Router) RetryRoutes() []RetryRoute {
	longest := map[string]int{}
	for _, rt := range r.routes {
		if rt.retry == nil {
			continue
		}
		n := 0
		for _, t := range rt.targets {
			n += t.provider.poolSize()
		}
		for _, t := range rt.fallbacks {
			n += t.provider.poolSize()
		}
		if rt.retry.Attempts > 0 {
			n = min(n, rt.retry.Attempts)
		}
		longest[rt.retry.Key] = max(longest[rt.retry.Key], n)
	}
	if r.poolRetry != nil {
		for _, p := range r.providers {
			longest[r.poolRetry.Key] = max(longest[r.poolRetry.Key], p.poolConfigured)
		}
	}
	var out []RetryRoute
	for _, p := range r.RetryPolicies() {
		for n := 2; n <= longest[p.Key]; n++ {
			out = append(out, RetryRoute{Policy: p, Attempts: n})
		}
	}
	return out
}

// chain is the ordered attempts of a request whose first target is first:
// then the route's other targets in config order, then its fallbacks, each
// only when its provider speaks the client's API and has its key, bounded
// by the policy's attempts.
func (rt *route) chain(first Decision, picked *target, req *Request, api int) []Decision {
	out := []Decision{first}
	add := func(t *target) {
		if rt.retry.Attempts > 0 && len(out) >= rt.retry.Attempts {
			return
		}
		if t.provider.info.Schema.Wire() != first.API.Wire() {
			return // a chain speaks one API: the body is translated once, if at all
		}
		if d, err := direct(t.provider, t.modelFor(req), req, rt.name); err == nil {
			out = append(out, d)
		}
	}
	for i := range rt.byAPI[api].targets {
		if t := &rt.byAPI[api].targets[i]; t != picked {
			add(t)
		}
	}
	for i := range rt.fallbacks {
		add(&rt.fallbacks[i])
	}
	return out
}

// Attempt decides one attempt of a request with fallbacks again, by the
// provider, model and pool key its plan named: the attempt gets the
// provider's current key and path prefix (a pool key the config no longer
// has gives way to the pool's first).
func (r *Router) Attempt(provider, model string, api config.API, key string) (Decision, error) {
	p := r.byProvider[provider]
	if p == nil {
		return Decision{}, Errorf(KindUnavailable, "provider %q is no longer configured", provider)
	}
	d, err := direct(p, model, &Request{API: api, Model: model}, "")
	if err != nil || len(p.keys) < 2 {
		return d, err
	}
	k := p.key(key)
	if k == nil {
		k = &p.keys[0]
	}
	if !k.use(&d) {
		return Decision{}, p.noToken()
	}
	return d, nil
}

// CredentialHeaders lists every header a provider credential or a client
// key travels in: an attempt removes all of them but its own. Computed once
// per config; shared, so callers must not modify it.
func (r *Router) CredentialHeaders() []string { return r.credentialHeaders }

func (r *Router) compileCredentialHeaders() {
	r.credentialHeaders = slices.Clone(ClientKeyHeaders)
	for _, p := range r.providers {
		if p.credential != nil && !slices.Contains(r.credentialHeaders, p.credential.Name) {
			r.credentialHeaders = append(r.credentialHeaders, p.credential.Name)
		}
		if p.bedrock != nil && !slices.Contains(r.credentialHeaders, BedrockSigningHeaders[0]) {
			r.credentialHeaders = append(r.credentialHeaders, BedrockSigningHeaders...)
		}
	}
}

// MissingRetryRoutes names the retry route entries next needs that Envoy,
// configured from running, lacks: they come with a restart.
func MissingRetryRoutes(running, next *Router) []string {
	have := map[string]bool{}
	for _, rr := range running.RetryRoutes() {
		have[rr.Key()] = true
	}
	var out []string
	for _, rr := range next.RetryRoutes() {
		if !have[rr.Key()] {
			out = append(out, "a route's fallbacks or retry (Envoy has no retry entry "+rr.Key()+")")
		}
	}
	return slices.Compact(out)
}
