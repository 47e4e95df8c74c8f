package limits

import (
	"context"
	"fmt"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Spent is what a key has used of its current windows.
type Spent struct {
	RequestsThisMinute int64
	TokensThisMinute   int64
	TokensToday        int64
}

// Spent returns what key has used of its current windows, without counting
// anything. Local counts only the kinds a key has a budget for: the others
// read 0. It never fails.
func (l *Local) Spent(_ context.Context, key string, _ Limits) (Spent, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys[key]
	if k == nil {
		return Spent{}, nil
	}
	return Spent{
		RequestsThisMinute: k.requests.in(now, time.Minute),
		TokensThisMinute:   k.tokensMinute.in(now, time.Minute),
		TokensToday:        k.tokensDay.in(now, 24*time.Hour),
	}, nil
}

// in is the count in the window of length that now is in, leaving the
// counter as it is.
func (c *counter) in(now time.Time, length time.Duration) int64 {
	if !c.start.Equal(windowStart(now, length)) {
		return 0
	}
	return c.n
}

// Spent asks the service what key has used of the budgets lim sets,
// adding nothing (every descriptor's hits_addend is 0). The service says
// only how much is left: a budget it reports over its limit reads as
// spent in full. Budgets lim does not set read 0.
func (g *Global) Spent(ctx context.Context, key string, lim Limits) (Spent, error) {
	var s Spent
	var ds []*ratelimitv3.RateLimitDescriptor
	var into []*int64
	var budgets []int64
	add := func(name string, budget int64, unit typev3.RateLimitUnit, v *int64) {
		if budget > 0 {
			ds = append(ds, descriptor(key, name, budget, unit, 0))
			into, budgets = append(into, v), append(budgets, budget)
		}
	}
	add(RequestsPerMinute, lim.RequestsPerMinute, typev3.RateLimitUnit_MINUTE, &s.RequestsThisMinute)
	add(TokensPerMinute, lim.TokensPerMinute, typev3.RateLimitUnit_MINUTE, &s.TokensThisMinute)
	add(TokensPerDay, lim.TokensPerDay, typev3.RateLimitUnit_DAY, &s.TokensToday)
	if len(ds) == 0 {
		return s, nil
	}
	resp, err := g.call(ctx, ds)
	if err != nil {
		return Spent{}, err
	}
	if len(resp.GetStatuses()) != len(ds) {
		return Spent{}, fmt.Errorf("asking the rate-limit service: %d statuses for %d descriptors", len(resp.GetStatuses()), len(ds))
	}
	for i, st := range resp.GetStatuses() {
		if st.GetCurrentLimit() == nil {
			return Spent{}, ErrNoLimit
		}
		limit := int64(st.GetCurrentLimit().GetRequestsPerUnit()) // the override: the budget, or budget - 1 for tokens
		switch {
		case st.GetCode() == rlsv3.RateLimitResponse_OVER_LIMIT:
			*into[i] = budgets[i]
		default:
			*into[i] = limit - int64(st.GetLimitRemaining())
		}
	}
	return s, nil
}
