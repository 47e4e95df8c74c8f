package limits

import (
	"context"
	"testing"
	"time"
)

// TestLocalSpent: Spent reads the current windows' counts, counts nothing
// itself, and reads 0 for a window that has turned.
func TestLocalSpent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 23, 59, 10, 0, time.UTC)
	l := NewLocal()
	l.now = func() time.Time { return now }
	lim := Limits{RequestsPerMinute: 10, TokensPerMinute: 1000, TokensPerDay: 5000}
	l.Admit(ctx, "a", lim)
	l.Admit(ctx, "a", lim)
	l.Charge(ctx, "a", lim, 70)
	for range 2 { // reading twice: nothing counted by the first read
		if got, want := l.Spent("a"), (Spent{RequestsThisMinute: 2, TokensThisMinute: 70, TokensToday: 70}); got != want {
			t.Fatalf("Spent = %+v, want %+v", got, want)
		}
	}
	if got := l.Spent("unknown"); got != (Spent{}) {
		t.Errorf("a key never seen: %+v", got)
	}
	now = now.Add(time.Minute) // the next minute and the next day
	if got := l.Spent("a"); got != (Spent{}) {
		t.Errorf("after the windows turned: %+v, want nothing spent", got)
	}
}
