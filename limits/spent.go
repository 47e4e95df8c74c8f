package limits

import "time"

// Spent is what a key has used of its current windows.
type Spent struct {
	RequestsThisMinute int64
	TokensThisMinute   int64
	TokensToday        int64
}

// Spent returns what key has used of its current windows, without counting
// anything. Local counts only the kinds a key has a budget for: the others
// read 0.
func (l *Local) Spent(key string) Spent {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys[key]
	if k == nil {
		return Spent{}
	}
	return Spent{
		RequestsThisMinute: k.requests.in(now, time.Minute),
		TokensThisMinute:   k.tokensMinute.in(now, time.Minute),
		TokensToday:        k.tokensDay.in(now, 24*time.Hour),
	}
}

// in is the count in the window of length that now is in, leaving the
// counter as it is.
func (c *counter) in(now time.Time, length time.Duration) int64 {
	if !c.start.Equal(windowStart(now, length)) {
		return 0
	}
	return c.n
}
