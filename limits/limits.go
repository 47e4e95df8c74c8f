// Package limits enforces client keys' request and token budgets: requests
// per minute, tokens per minute and tokens per day. Windows are calendar
// ones, in UTC: a minute budget starts afresh at each whole minute, a day
// budget at midnight UTC.
//
// Admit counts one request and checks that no token budget of the key is
// spent; Charge adds a finished response's tokens. Tokens are charged after
// the response with the real usage, so the request that crosses a token
// budget is admitted and finishes over it; the next one is refused.
//
// Two implementations: Local keeps the counts in this process (correct for
// one replica), Global keeps them in Envoy's rate-limit service
// (envoyproxy/ratelimit, backed by Redis), shared by every replica that
// talks to it.
package limits

import (
	"time"
)

// Limits are one key's budgets; 0 means no budget of that kind.
type Limits struct {
	RequestsPerMinute int64
	TokensPerMinute   int64
	TokensPerDay      int64
}

// Any says whether some budget is set.
func (l Limits) Any() bool {
	return l.RequestsPerMinute > 0 || l.TokensPerMinute > 0 || l.TokensPerDay > 0
}

// The budgets, as Decision.Which and as the rate-limit service's descriptor
// values.
const (
	RequestsPerMinute = "requests_per_minute"
	TokensPerMinute   = "tokens_per_minute"
	TokensPerDay      = "tokens_per_day"
)

// Decision is the answer to one request.
type Decision struct {
	// OK admits the request.
	OK bool
	// Which names the budget that refused it ("" when OK).
	Which string
	// Limit and Remaining describe that budget (when OK, the requests per
	// minute if set); Reset is the time until its window starts afresh.
	Limit, Remaining int64
	Reset            time.Duration
}

// windowStart is the start of the window of the given length (a minute or a
// day) that now is in, in UTC.
func windowStart(now time.Time, length time.Duration) time.Time {
	return now.UTC().Truncate(length)
}
