// Package limits enforces client keys' request, token and money budgets:
// requests per minute, tokens per minute and per day, US dollars per day
// and per month. Windows are calendar ones, in UTC: a minute budget starts
// afresh at each whole minute, a day budget at midnight UTC, a month budget
// on the first of the month.
//
// Admit counts one request and checks that no token or money budget of the
// key is spent; Charge adds a finished response's tokens and cost. They are
// charged after the response with the real usage, so the request that
// crosses a budget is admitted and finishes over it; the next one is
// refused. Money is counted in micro-dollars (1e-6 USD), integers.
//
// Two implementations: Local keeps the counts in this process (correct for
// one replica), Global keeps them in Envoy's rate-limit service
// (envoyproxy/ratelimit, backed by Redis), shared by every replica that
// talks to it.
package limits

import (
	"time"

	"switchyard/config"
)

// Limits are one key's budgets; 0 means no budget of that kind.
type Limits struct {
	RequestsPerMinute int64
	TokensPerMinute   int64
	TokensPerDay      int64
	// Money budgets in micro-dollars.
	MicroUSDPerDay   int64
	MicroUSDPerMonth int64
}

// Of are the budgets a key's config sets.
func Of(c config.LimitsConfig) Limits {
	return Limits{
		RequestsPerMinute: c.RequestsPerMinute,
		TokensPerMinute:   c.TokensPerMinute,
		TokensPerDay:      c.TokensPerDay,
		MicroUSDPerDay:    config.MicroUSD(c.USDPerDay),
		MicroUSDPerMonth:  config.MicroUSD(c.USDPerMonth),
	}
}

// Any says whether some budget is set.
func (l Limits) Any() bool {
	return l.RequestsPerMinute > 0 || l.Charged()
}

// Charged says whether some budget is charged after the response (tokens
// or money).
func (l Limits) Charged() bool {
	return l.TokensPerMinute > 0 || l.TokensPerDay > 0 || l.MicroUSDPerDay > 0 || l.MicroUSDPerMonth > 0
}

// Money reports whether l has a money budget.
func (l Limits) Money() bool { return l.MicroUSDPerDay > 0 || l.MicroUSDPerMonth > 0 }

// Spent is what one response is charged.
type Spent struct {
	Tokens   int64
	MicroUSD int64
}

// The budgets, as Decision.Which and as the rate-limit service's descriptor
// values.
const (
	RequestsPerMinute = "requests_per_minute"
	TokensPerMinute   = "tokens_per_minute"
	TokensPerDay      = "tokens_per_day"
	USDPerDay         = "usd_per_day"
	USDPerMonth       = "usd_per_month"
)

// Decision is the answer to one request.
type Decision struct {
	// OK admits the request.
	OK bool
	// Which names the budget that refused it ("" when OK).
	Which string
	// Limit and Remaining describe that budget (when OK, the requests per
	// minute if set), money ones in micro-dollars; Reset is the time until
	// its window starts afresh.
	Limit, Remaining int64
	Reset            time.Duration
}

// windowStart is the start of the window of the given length (a minute or a
// day) that now is in, in UTC.
func windowStart(now time.Time, length time.Duration) time.Time {
	return now.UTC().Truncate(length)
}

// monthStart is the start of the calendar month, in UTC, that now is in.
func monthStart(now time.Time) time.Time {
	y, m, _ := now.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}
