package processor

import (
	"slices"
	"strings"
	"time"
)

// ProviderState is one provider's standing in the fallback chains.
type ProviderState struct {
	Provider string
	// Failures is the count of consecutive failed attempts so far.
	Failures int
	// Until is when the provider is tried first again; zero or past: it
	// is in rotation.
	Until time.Time
}

// RestingKey is a pool key resting after a 429, named by its key_env or
// key_file (never the key).
type RestingKey struct {
	Provider, Key string
	Until         time.Time
}

// HealthSnapshot is what the processor remembers about providers at one
// moment, for the status page.
type HealthSnapshot struct {
	Providers []ProviderState // by provider name
	Keys      []RestingKey    // still resting, by provider and key
}

// Health returns a copy of the providers' health and the pool keys still
// resting. It takes the lock requests with fallbacks take, once.
func (s *Server) Health() HealthSnapshot { return s.health.snapshot() }

func (h *health) snapshot() HealthSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	var out HealthSnapshot
	for name, p := range h.providers {
		st := ProviderState{Provider: name, Failures: p.failures}
		if now.Before(p.until) {
			st.Until = p.until
		}
		out.Providers = append(out.Providers, st)
	}
	for ref, until := range h.keys {
		if now.Before(until) {
			out.Keys = append(out.Keys, RestingKey{Provider: ref.provider, Key: ref.key, Until: until})
		}
	}
	slices.SortFunc(out.Providers, func(a, b ProviderState) int { return strings.Compare(a.Provider, b.Provider) })
	slices.SortFunc(out.Keys, func(a, b RestingKey) int {
		return strings.Compare(a.Provider+"\x00"+a.Key, b.Provider+"\x00"+b.Key)
	})
	return out
}
