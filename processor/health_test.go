package processor

import (
	"testing"
	"time"

	"switchyard/routing"
)

// TestHealthCoolKey: a pool key answered 429 goes last among the attempts
// for its Retry-After (or DefaultKeyCooldown without one), the provider and
// its other keys keep their places, and the key comes back after.
func TestHealthCoolKey(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	h := newHealth()
	h.now = func() time.Time { return now }
	attempts := []routing.Decision{
		{Provider: "pool", Key: "K1"}, {Provider: "pool", Key: "K2"}, {Provider: "pool", Key: "K3"}, {Provider: "backup"},
	}
	order := func() string {
		var s string
		for _, d := range h.order(attempts) {
			s += d.Provider + ":" + d.Key + " "
		}
		return s
	}
	h.coolKey("pool", "K1", "2")
	if got, want := order(), "pool:K2 pool:K3 backup: pool:K1 "; got != want {
		t.Errorf("with K1 resting: %q, want %q", got, want)
	}
	h.coolKey("pool", "K2", "")
	now = now.Add(2 * time.Second)
	if got, want := order(), "pool:K1 pool:K3 backup: pool:K2 "; got != want {
		t.Errorf("after K1's Retry-After, K2 resting without one: %q, want %q", got, want)
	}
	now = now.Add(DefaultKeyCooldown)
	if got, want := order(), "pool:K1 pool:K2 pool:K3 backup: "; got != want {
		t.Errorf("after every rest: %q, want %q", got, want)
	}
	h.coolKey("pool", "K3", "1")
	if len(h.keys) != 1 {
		t.Errorf("%d resting keys remembered, want 1 (expired rests are dropped)", len(h.keys))
	}
}
