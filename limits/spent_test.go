package limits

import (
	"context"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
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
		if got, want := must(l.Spent(ctx, "a", lim)), (Spent{RequestsThisMinute: 2, TokensThisMinute: 70, TokensToday: 70}); got != want {
			t.Fatalf("Spent = %+v, want %+v", got, want)
		}
	}
	if got := must(l.Spent(ctx, "unknown", lim)); got != (Spent{}) {
		t.Errorf("a key never seen: %+v", got)
	}
	now = now.Add(time.Minute) // the next minute and the next day
	if got := must(l.Spent(ctx, "a", lim)); got != (Spent{}) {
		t.Errorf("after the windows turned: %+v, want nothing spent", got)
	}
}

func must(s Spent, err error) Spent {
	if err != nil {
		panic(err)
	}
	return s
}

// TestGlobalSpent: Spent asks the service with hits 0 for each budget set
// and reads what is spent from what is left (the token budgets travel as
// budget - 1); a budget over its limit reads as spent in full.
func TestGlobalSpent(t *testing.T) {
	t.Parallel()
	ok, over := rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT
	f, addr := startFake(t, statuses(ok, over)) // 7 left of each
	g, err := NewGlobal(GlobalOptions{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got, err := g.Spent(context.Background(), "team-a", Limits{RequestsPerMinute: 10, TokensPerDay: 500})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Spent{RequestsThisMinute: 3, TokensToday: 500}); got != want {
		t.Errorf("Spent = %+v, want %+v", got, want)
	}
	want := []string{
		"switchyard switchyard_key=team-a limit=requests_per_minute limit=requests_per_unit:10 unit:MINUTE hits=0",
		"switchyard switchyard_key=team-a limit=tokens_per_day limit=requests_per_unit:499 unit:DAY hits=0",
	}
	if diff := cmp.Diff(want, normalize(f.asked)); diff != "" {
		t.Errorf("asked (-want +got):\n%s", diff)
	}
	_, addr = startFake(t, statuses(ok))
	g2, _ := NewGlobal(GlobalOptions{Address: addr, Timeout: 5 * time.Second})
	defer g2.Close()
	if got, _ := g2.Spent(context.Background(), "k", Limits{TokensPerMinute: 100}); got.TokensThisMinute != 92 {
		t.Errorf("tokens this minute with 7 left of 99: %d, want 92", got.TokensThisMinute)
	}
}
