package limits

import (
	"context"
	"fmt"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Usage is what a key has used of its current windows.
type Usage struct {
	RequestsThisMinute int64
	TokensThisMinute   int64
	TokensToday        int64
	MicroUSDToday      int64
	MicroUSDThisMonth  int64
}

// Usage returns what key has used of its current windows, without counting
// anything. Local counts only the kinds a key has a budget for: the others
// read 0. It never fails.
func (l *Local) Usage(_ context.Context, key string, _ Limits) (Usage, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys[key]
	if k == nil {
		return Usage{}, nil
	}
	return Usage{
		RequestsThisMinute: k.requests.count(windowStart(now, time.Minute)),
		TokensThisMinute:   k.tokensMinute.count(windowStart(now, time.Minute)),
		TokensToday:        k.tokensDay.count(windowStart(now, 24*time.Hour)),
		MicroUSDToday:      k.usdDay.count(windowStart(now, 24*time.Hour)),
		MicroUSDThisMonth:  k.usdMonth.count(monthStart(now)),
	}, nil
}

// count is the count in the window that starts at start, leaving the
// counter as it is.
func (c *counter) count(start time.Time) int64 {
	if !c.start.Equal(start) {
		return 0
	}
	return c.n
}

// Usage asks the service what key has used of the budgets lim sets,
// adding nothing (every descriptor's hits_addend is 0). The service says
// only how much is left: a budget it reports over its limit reads as
// spent in full. Budgets lim does not set read 0.
func (g *Global) Usage(ctx context.Context, key string, lim Limits) (Usage, error) {
	var s Usage
	var ds []*ratelimitv3.RateLimitDescriptor
	var into []*int64
	var budgets, scales []int64
	add := func(d *ratelimitv3.RateLimitDescriptor, budget, scale int64, v *int64) {
		ds, into = append(ds, d), append(into, v)
		budgets, scales = append(budgets, budget), append(scales, scale)
	}
	for _, b := range []struct {
		name   string
		budget int64
		unit   typev3.RateLimitUnit
		v      *int64
	}{
		{RequestsPerMinute, lim.RequestsPerMinute, typev3.RateLimitUnit_MINUTE, &s.RequestsThisMinute},
		{TokensPerMinute, lim.TokensPerMinute, typev3.RateLimitUnit_MINUTE, &s.TokensThisMinute},
		{TokensPerDay, lim.TokensPerDay, typev3.RateLimitUnit_DAY, &s.TokensToday},
	} {
		if b.budget > 0 {
			add(descriptor(key, b.name, b.budget, b.unit, 0), b.budget, 1, b.v)
		}
	}
	now := time.Now()
	for _, b := range usdBudgets(lim) {
		v := &s.MicroUSDToday
		if b.which == USDPerMonth {
			v = &s.MicroUSDThisMonth
		}
		add(usdDescriptor(key, b, now, 0), b.micro, usdScale(b.micro), v)
	}
	if len(ds) == 0 {
		return s, nil
	}
	resp, err := g.call(ctx, ds)
	if err != nil {
		return Usage{}, err
	}
	if len(resp.GetStatuses()) != len(ds) {
		return Usage{}, fmt.Errorf("asking the rate-limit service: %d statuses for %d descriptors", len(resp.GetStatuses()), len(ds))
	}
	for i, st := range resp.GetStatuses() {
		if st.GetCurrentLimit() == nil {
			return Usage{}, ErrNoLimit
		}
		limit := int64(st.GetCurrentLimit().GetRequestsPerUnit()) // the override: the budget, or budget - 1 for the charged ones
		switch {
		case st.GetCode() == rlsv3.RateLimitResponse_OVER_LIMIT:
			*into[i] = budgets[i]
		default:
			*into[i] = (limit - int64(st.GetLimitRemaining())) * scales[i]
		}
	}
	return s, nil
}
