package processor

import (
	"strconv"
	"sync"
	"time"

	"switchyard/routing"
)

// limiter counts each client key's requests per calendar minute, in this
// process: a key limited to N admits exactly N requests in a minute, the
// rest get 429 until the next minute begins. Keys without a limit are not
// counted at all.
type limiter struct {
	mu      sync.Mutex
	now     func() time.Time
	windows map[string]*window // by key name
}

type window struct {
	minute time.Time
	count  int
}

func newLimiter() *limiter {
	return &limiter{now: time.Now, windows: map[string]*window{}}
}

// admit counts one request of key against limit and says whether it is
// within it, how many remain and how long until the window resets.
func (l *limiter) admit(key string, limit int) (ok bool, remaining int, reset time.Duration) {
	now := l.now()
	minute := now.Truncate(time.Minute)
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[key]
	if w == nil {
		w = &window{}
		l.windows[key] = w
	}
	if !w.minute.Equal(minute) {
		w.minute, w.count = minute, 0
	}
	reset = minute.Add(time.Minute).Sub(now)
	if w.count >= limit {
		return false, 0, reset
	}
	w.count++
	return true, limit - w.count, reset
}

// checkRequestLimit refuses a request over its key's requests per minute,
// with Retry-After and OpenAI's x-ratelimit-* headers.
func (s *Server) checkRequestLimit(p routing.Principal) *apiError {
	if p.RequestsPerMinute <= 0 {
		return nil
	}
	ok, _, reset := s.limits.admit(p.Name, p.RequestsPerMinute)
	if ok {
		return nil
	}
	s.opts.Metrics.limited.WithLabelValues(p.Name, "requests_per_minute").Inc()
	secs := int(reset.Seconds() + 0.999) // whole seconds, rounded up
	e := newAPIError(routing.KindRateLimit, "rate_limit_exceeded",
		"rate limit of "+strconv.Itoa(p.RequestsPerMinute)+" requests per minute reached for key "+strconv.Quote(p.Name)+"; retry in "+strconv.Itoa(secs)+"s")
	e.headers = []routing.Header{
		{Name: "retry-after", Value: strconv.Itoa(secs)},
		{Name: "x-ratelimit-limit-requests", Value: strconv.Itoa(p.RequestsPerMinute)},
		{Name: "x-ratelimit-remaining-requests", Value: "0"},
		{Name: "x-ratelimit-reset-requests", Value: strconv.Itoa(secs) + "s"},
	}
	return e
}
