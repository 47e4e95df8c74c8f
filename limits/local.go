package limits

import (
	"context"
	"sync"
	"time"
)

// Local keeps the counts in this process. A key limited to N requests per
// minute admits exactly N in each calendar minute. A request is admitted
// while each token budget's window has spent less than the budget.
// Refused requests are not counted.
type Local struct {
	mu   sync.Mutex
	now  func() time.Time
	keys map[string]*localKey
}

// localKey is one key's current windows.
type localKey struct {
	requests     counter // this minute's requests
	tokensMinute counter // this minute's tokens
	tokensDay    counter // today's tokens
	usdDay       counter // today's micro-dollars
	usdMonth     counter // this month's micro-dollars
}

// counter is a count within the window that starts at start.
type counter struct {
	start time.Time
	n     int64
}

// at returns the count in the window of length that now is in, starting a
// new one when the window turned.
func (c *counter) at(now time.Time, length time.Duration) (n int64, reset time.Duration) {
	start := windowStart(now, length)
	return c.in(start, start.Add(length), now)
}

// atMonth is at for the calendar month.
func (c *counter) atMonth(now time.Time) (n int64, reset time.Duration) {
	start := monthStart(now)
	return c.in(start, start.AddDate(0, 1, 0), now)
}

func (c *counter) in(start, end, now time.Time) (n int64, reset time.Duration) {
	if !c.start.Equal(start) {
		c.start, c.n = start, 0
	}
	return c.n, end.Sub(now)
}

// NewLocal returns an empty in-process limiter.
func NewLocal() *Local {
	return &Local{now: time.Now, keys: map[string]*localKey{}}
}

func (l *Local) key(name string) *localKey {
	k := l.keys[name]
	if k == nil {
		k = &localKey{}
		l.keys[name] = k
	}
	return k
}

// Admit counts one request of key and checks its budgets. It never fails.
func (l *Local) Admit(_ context.Context, key string, lim Limits) (Decision, error) {
	if !lim.Any() {
		return Decision{OK: true}, nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(key)
	rpm, rpmReset := k.requests.at(now, time.Minute)
	if lim.RequestsPerMinute > 0 && rpm >= lim.RequestsPerMinute {
		return Decision{Which: RequestsPerMinute, Limit: lim.RequestsPerMinute, Reset: rpmReset}, nil
	}
	if spent, reset := k.tokensMinute.at(now, time.Minute); lim.TokensPerMinute > 0 && spent >= lim.TokensPerMinute {
		return Decision{Which: TokensPerMinute, Limit: lim.TokensPerMinute, Reset: reset}, nil
	}
	if spent, reset := k.tokensDay.at(now, 24*time.Hour); lim.TokensPerDay > 0 && spent >= lim.TokensPerDay {
		return Decision{Which: TokensPerDay, Limit: lim.TokensPerDay, Reset: reset}, nil
	}
	if lim.MicroUSDPerDay > 0 {
		if spent, reset := k.usdDay.at(now, 24*time.Hour); spent >= lim.MicroUSDPerDay {
			return Decision{Which: USDPerDay, Limit: lim.MicroUSDPerDay, Reset: reset}, nil
		}
	}
	if lim.MicroUSDPerMonth > 0 { // the calendar is only read for a month budget
		if spent, reset := k.usdMonth.atMonth(now); spent >= lim.MicroUSDPerMonth {
			return Decision{Which: USDPerMonth, Limit: lim.MicroUSDPerMonth, Reset: reset}, nil
		}
	}
	k.requests.n++
	d := Decision{OK: true}
	if lim.RequestsPerMinute > 0 {
		d.Limit, d.Remaining, d.Reset = lim.RequestsPerMinute, lim.RequestsPerMinute-k.requests.n, rpmReset
	}
	return d, nil
}

// Charge adds a response's tokens and cost to key's windows. Keys without
// a token or money budget are not counted. It never fails.
func (l *Local) Charge(_ context.Context, key string, lim Limits, s Spent) error {
	if (s.Tokens <= 0 && s.MicroUSD <= 0) || !lim.Charged() {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(key)
	k.tokensMinute.at(now, time.Minute)
	k.tokensDay.at(now, 24*time.Hour)
	k.tokensMinute.n += s.Tokens
	k.tokensDay.n += s.Tokens
	if s.MicroUSD > 0 {
		k.usdDay.at(now, 24*time.Hour)
		k.usdMonth.atMonth(now)
		k.usdDay.n += s.MicroUSD
		k.usdMonth.n += s.MicroUSD
	}
	return nil
}
