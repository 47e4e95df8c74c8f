package processor

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"switchyard/routing"
)

// health remembers which providers fail their attempts, so that requests
// with fallbacks try the others first: a provider whose attempts failed
// consecutiveFailures times in a row is ejected for a while, and one that
// answered 429 with Retry-After waits that long. Either way it goes last in
// every chain until its time has passed, then is tried again. Routes
// without fallbacks have nowhere else to go and are not affected.
type health struct {
	mu        sync.Mutex
	now       func() time.Time
	providers map[string]*providerHealth
	// keys are the pool keys resting after a 429, by provider and key
	// source, until the time they may be used first again.
	keys map[poolKeyRef]time.Time
}

type poolKeyRef struct{ provider, key string }

// DefaultKeyCooldown is how long a pool key rests after a 429 without
// Retry-After.
const DefaultKeyCooldown = 30 * time.Second

// coolKey rests a pool key for retryAfter (or DefaultKeyCooldown): until
// then it goes last among its pool's keys.
func (h *health) coolKey(provider, key, retryAfter string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	d, ok := parseRetryAfter(retryAfter, now)
	if !ok {
		d = DefaultKeyCooldown
	}
	ref := poolKeyRef{provider, key}
	if until := now.Add(d); until.After(h.keys[ref]) {
		h.keys[ref] = until
	}
	for k, until := range h.keys { // few keys: keep the map small
		if !now.Before(until) {
			delete(h.keys, k)
		}
	}
}

type providerHealth struct {
	failures int       // consecutive failed attempts
	until    time.Time // last in every chain until then
}

func newHealth() *health {
	return &health{now: time.Now, providers: map[string]*providerHealth{}, keys: map[poolKeyRef]time.Time{}}
}

// order puts the attempts whose providers are healthy first, keeping the
// order otherwise. A nil health (a dry run) keeps the order.
func (h *health) order(attempts []routing.Decision) []routing.Decision {
	if h == nil {
		return attempts
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	out := make([]routing.Decision, 0, len(attempts))
	var later []routing.Decision
	for _, d := range attempts {
		if p := h.providers[d.Provider]; p != nil && now.Before(p.until) {
			later = append(later, d)
			continue
		}
		if d.Key != "" && now.Before(h.keys[poolKeyRef{d.Provider, d.Key}]) {
			later = append(later, d)
			continue
		}
		out = append(out, d)
	}
	return append(out, later...)
}

// ejection is when a provider is taken out of rotation and for how long.
type ejection struct {
	failures int
	duration time.Duration
}

// record notes one attempt's outcome and reports whether it ejected the
// provider. retryAfter is the attempt's Retry-After header, if any.
func (h *health) record(provider string, failed bool, retryAfter string, e ejection) (ejected bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.providers[provider]
	if p == nil {
		p = &providerHealth{}
		h.providers[provider] = p
	}
	if !failed {
		p.failures = 0
		return false
	}
	now := h.now()
	if d, ok := parseRetryAfter(retryAfter, now); ok && now.Add(d).After(p.until) {
		p.until = now.Add(d)
	}
	p.failures++
	if p.failures < e.failures {
		return false
	}
	p.failures = 0
	if until := now.Add(e.duration); until.After(p.until) {
		p.until = until
	}
	return true
}

// maxRetryAfter bounds how long one answer can keep a provider last.
const maxRetryAfter = 10 * time.Minute

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}
