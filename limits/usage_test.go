package limits

import (
	"context"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
)

// TestLocalUsage: Usage reads the current windows' counts, counts nothing
// itself, and reads 0 for a window that has turned.
func TestLocalUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 23, 59, 10, 0, time.UTC)
	l := NewLocal()
	l.now = func() time.Time { return now }
	lim := Limits{RequestsPerMinute: 10, TokensPerMinute: 1000, TokensPerDay: 5000}
	l.Admit(ctx, "a", lim)
	l.Admit(ctx, "a", lim)
	l.Charge(ctx, "a", lim, Spent{Tokens: 70})
	for range 2 { // reading twice: nothing counted by the first read
		if got, want := must(l.Usage(ctx, "a", lim)), (Usage{RequestsThisMinute: 2, TokensThisMinute: 70, TokensToday: 70}); got != want {
			t.Fatalf("Usage = %+v, want %+v", got, want)
		}
	}
	if got := must(l.Usage(ctx, "unknown", lim)); got != (Usage{}) {
		t.Errorf("a key never seen: %+v", got)
	}
	now = now.Add(time.Minute) // the next minute and the next day
	if got := must(l.Usage(ctx, "a", lim)); got != (Usage{}) {
		t.Errorf("after the windows turned: %+v, want nothing spent", got)
	}
}

func must(s Usage, err error) Usage {
	if err != nil {
		panic(err)
	}
	return s
}

// TestGlobalUsage: Usage asks the service with hits 0 for each budget set
// and reads what is spent from what is left (the token budgets travel as
// budget - 1); a budget over its limit reads as spent in full.
func TestGlobalUsage(t *testing.T) {
	t.Parallel()
	ok, over := rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT
	f, addr := startFake(t, statuses(ok, over)) // 7 left of each
	g, err := NewGlobal(GlobalOptions{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got, err := g.Usage(context.Background(), "team-a", Limits{RequestsPerMinute: 10, TokensPerDay: 500})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Usage{RequestsThisMinute: 3, TokensToday: 500}); got != want {
		t.Errorf("Usage = %+v, want %+v", got, want)
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
	if got, _ := g2.Usage(context.Background(), "k", Limits{TokensPerMinute: 100}); got.TokensThisMinute != 92 {
		t.Errorf("tokens this minute with 7 left of 99: %d, want 92", got.TokensThisMinute)
	}
}

// TestUsageMoney: money spent today and this month, in micro-dollars, from
// this process's windows and from the service's (a budget counted in a
// larger unit reads back in micro-dollars).
func TestUsageMoney(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 23, 59, 10, 0, time.UTC)
	l := NewLocal()
	l.now = func() time.Time { return now }
	lim := Limits{MicroUSDPerDay: 5_000_000, MicroUSDPerMonth: 50_000_000}
	l.Admit(ctx, "a", lim)
	l.Charge(ctx, "a", lim, Spent{MicroUSD: 1_250_000})
	if got, want := must(l.Usage(ctx, "a", lim)), (Usage{RequestsThisMinute: 1, MicroUSDToday: 1_250_000, MicroUSDThisMonth: 1_250_000}); got != want {
		t.Errorf("Usage = %+v, want %+v", got, want)
	}
	now = now.Add(time.Minute) // the next day, the same month
	if got, want := must(l.Usage(ctx, "a", lim)), (Usage{MicroUSDThisMonth: 1_250_000}); got != want {
		t.Errorf("the next day: %+v, want %+v", got, want)
	}

	_, addr := startFake(t, statuses(rlsv3.RateLimitResponse_OK)) // 7 left of each
	g, err := NewGlobal(GlobalOptions{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// $5,000 a month is counted in units of 10 micro-dollars: 499,999,999
	// units travel, 7 are left.
	got, err := g.Usage(ctx, "k", Limits{MicroUSDPerMonth: 5_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(499_999_992) * 10; got.MicroUSDThisMonth != want {
		t.Errorf("micro-dollars this month %d, want %d", got.MicroUSDThisMonth, want)
	}
}
