package processor

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestHealthSnapshot: the snapshot has each provider's failures, the end of
// an ejection still running (none once it has passed) and the pool keys
// still resting, sorted.
func TestHealthSnapshot(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	h := newHealth()
	h.now = func() time.Time { return now }
	e := ejection{failures: 2, duration: 10 * time.Second}
	h.record("zeta", true, "", e)
	h.record("alpha", true, "", e)
	h.record("alpha", true, "", e) // ejected
	h.record("beta", false, "", e)
	h.coolKey("pool", "KEY_B", "5")
	h.coolKey("pool", "KEY_A", "1")
	now = now.Add(2 * time.Second)
	want := HealthSnapshot{
		Providers: []ProviderState{
			{Provider: "alpha", Until: time.Unix(1_700_000_010, 0)},
			{Provider: "beta"},
			{Provider: "zeta", Failures: 1},
		},
		Keys: []RestingKey{{Provider: "pool", Key: "KEY_B", Until: time.Unix(1_700_000_005, 0)}},
	}
	if diff := cmp.Diff(want, h.snapshot()); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
	now = now.Add(time.Minute)
	if got := h.snapshot(); !got.Providers[0].Until.IsZero() || len(got.Keys) != 0 {
		t.Errorf("a minute later: %+v, want no ejection and no resting key", got)
	}
}
