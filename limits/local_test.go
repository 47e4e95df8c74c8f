package limits

import (
	"context"
	"testing"
	"time"
)

func TestLocalRequestsPerMinuteAdmitsExactlyN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)
	l := NewLocal()
	l.now = func() time.Time { return now }
	lim := Limits{RequestsPerMinute: 3}
	for i := 0; i < 3; i++ {
		d, _ := l.Admit(ctx, "a", lim)
		if !d.OK || d.Remaining != int64(2-i) || d.Limit != 3 {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d, _ := l.Admit(ctx, "a", lim)
	if d.OK || d.Which != RequestsPerMinute || d.Reset != 30*time.Second || d.Limit != 3 {
		t.Fatalf("fourth request: %+v; want refused for 30s", d)
	}
	if d, _ := l.Admit(ctx, "b", lim); !d.OK {
		t.Fatal("another key shares a's count")
	}
	now = now.Add(30 * time.Second) // the next minute
	if d, _ := l.Admit(ctx, "a", lim); !d.OK || d.Remaining != 2 {
		t.Fatalf("next minute: %+v", d)
	}
	if d, _ := l.Admit(ctx, "a", Limits{RequestsPerMinute: 5}); !d.OK {
		t.Fatal("a raised limit does not apply at once")
	}
}

func TestLocalTokenBudgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 23, 58, 10, 0, time.UTC)
	l := NewLocal()
	l.now = func() time.Time { return now }
	lim := Limits{TokensPerMinute: 100, TokensPerDay: 250}

	if d, _ := l.Admit(ctx, "a", lim); !d.OK {
		t.Fatalf("first request: %+v", d)
	}
	l.Charge(ctx, "a", lim, Spent{Tokens: 99})
	if d, _ := l.Admit(ctx, "a", lim); !d.OK {
		t.Fatalf("99 of 100 tokens spent: %+v", d)
	}
	// The admitted request finishes over the budget: by design.
	l.Charge(ctx, "a", lim, Spent{Tokens: 60})
	d, _ := l.Admit(ctx, "a", lim)
	if d.OK || d.Which != TokensPerMinute || d.Limit != 100 || d.Reset != 50*time.Second {
		t.Fatalf("159 of 100 tokens spent: %+v", d)
	}
	if d, _ := l.Admit(ctx, "b", lim); !d.OK {
		t.Fatal("another key shares a's tokens")
	}

	now = now.Add(50 * time.Second) // 23:59:00, the next minute of the same day
	if d, _ := l.Admit(ctx, "a", lim); !d.OK {
		t.Fatalf("next minute: %+v", d)
	}
	l.Charge(ctx, "a", lim, Spent{Tokens: 91}) // 250 today
	d, _ = l.Admit(ctx, "a", lim)
	if d.OK || d.Which != TokensPerDay || d.Limit != 250 || d.Reset != time.Minute {
		t.Fatalf("day budget spent: %+v", d)
	}
	now = now.Add(time.Minute) // the next day
	if d, _ := l.Admit(ctx, "a", lim); !d.OK {
		t.Fatalf("next day: %+v", d)
	}
}

func TestLocalWithoutLimitsCountsNothing(t *testing.T) {
	t.Parallel()
	l := NewLocal()
	l.Charge(context.Background(), "free", Limits{}, Spent{Tokens: 1000, MicroUSD: 5})
	if d, _ := l.Admit(context.Background(), "free", Limits{}); !d.OK {
		t.Fatalf("%+v", d)
	}
	if len(l.keys) != 0 {
		t.Fatalf("kept %d keys without limits", len(l.keys))
	}
}

func TestLocalMoneyBudgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC)
	l := NewLocal()
	l.now = func() time.Time { return now }
	lim := Limits{MicroUSDPerDay: 1_000_000, MicroUSDPerMonth: 1_500_000} // $1 a day, $1.50 a month

	l.Charge(ctx, "a", lim, Spent{MicroUSD: 999_999})
	if d, _ := l.Admit(ctx, "a", lim); !d.OK {
		t.Fatalf("a micro-dollar short of the day's budget: %+v", d)
	}
	l.Charge(ctx, "a", lim, Spent{MicroUSD: 1})
	d, _ := l.Admit(ctx, "a", lim)
	if d.OK || d.Which != USDPerDay || d.Limit != 1_000_000 || d.Reset != time.Minute {
		t.Fatalf("day budget spent: %+v", d)
	}
	if d, _ := l.Admit(ctx, "b", lim); !d.OK {
		t.Fatal("another key shares a's spend")
	}

	now = now.Add(time.Minute) // 1 January: a new day and a new month
	if d, _ := l.Admit(ctx, "a", lim); !d.OK {
		t.Fatalf("next day and month: %+v", d)
	}
	now = time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	l.Charge(ctx, "a", lim, Spent{MicroUSD: 800_000})
	now = time.Date(2027, 1, 2, 12, 0, 0, 0, time.UTC)
	l.Charge(ctx, "a", lim, Spent{MicroUSD: 700_000}) // 1.50 this month, 0.70 today
	d, _ = l.Admit(ctx, "a", lim)
	if d.OK || d.Which != USDPerMonth || d.Limit != 1_500_000 || d.Reset != 29*24*time.Hour+12*time.Hour {
		t.Fatalf("month budget spent: %+v", d)
	}
	now = time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	if d, _ := l.Admit(ctx, "a", lim); !d.OK {
		t.Fatalf("next month: %+v", d)
	}
}
