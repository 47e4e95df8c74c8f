package processor

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"switchyard/config"
)

// attemptsHeader is what the router-level filter's plan tells the upstream
// filter of each attempt (routing.AttemptsHeader): the client's path, API
// and model, the retry policy and each attempt's provider and model. It
// carries no credential: each attempt takes its provider's key from the
// running config.
type attemptsHeader struct {
	Path    string     `json:"path"`
	API     config.API `json:"api"`
	Model   string     `json:"model"`       // the model in the body every attempt replays
	Retry   string     `json:"retry"`       // the retry policy's key
	Session string     `json:"s,omitempty"` // the session's log id (sessionLogID), for the log line
	// Usage: the answer's tokens are counted (the attempt that answers
	// reads its body).
	Usage bool `json:"u,omitempty"`
	// Upstream is the API the attempts speak when it is not the client's
	// (API): the body is translated already, Path is the upstream API's.
	Upstream config.API   `json:"up,omitempty"`
	Attempts []attemptRef `json:"attempts"`
}

type attemptRef struct {
	Provider string `json:"p"`
	Model    string `json:"m"`
	Key      string `json:"k,omitempty"` // the pool key's source, never the key
}

// upstreamAPI is the API the attempts speak.
func (h *attemptsHeader) upstreamAPI() config.API {
	if h.Upstream != "" {
		return h.Upstream
	}
	return h.API
}

func encodeAttempts(h attemptsHeader) string {
	b, _ := json.Marshal(h) // plain strings: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeAttempts(s string) (attemptsHeader, error) {
	var h attemptsHeader
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, err
	}
	if len(h.Attempts) == 0 {
		return h, errors.New("no attempts")
	}
	return h, nil
}

// attemptLog keeps the plan and the outcome of each attempt of the requests
// with fallbacks in flight, by request id, for later attempts, the fallback
// reasons and the one log line per request. An answered request's entry
// stays endedAttemptAge more, for an attempt Envoy still starts after it
// (a reset right after a 200 can be retried while nothing has reached the
// client); entries of requests abandoned midway go after maxAttemptAge.
type attemptLog struct {
	mu        sync.Mutex
	requests  map[string]*attemptRecord
	lastSweep time.Time
}

type attemptRecord struct {
	started  time.Time
	ended    time.Time // when the request was answered; zero before
	plan     attemptsHeader
	outcomes []attemptOutcome
}

// attemptOutcome is one attempt: the provider, the status it answered (0
// for none: refused, reset or silent) and how long it took.
type attemptOutcome struct {
	Provider string        `json:"provider"`
	Model    string        `json:"model"`
	Key      string        `json:"key,omitempty"` // the pool key's source
	Status   int           `json:"status,omitempty"`
	Duration time.Duration `json:"-"`
	Ms       float64       `json:"ms"`
}

const (
	maxAttemptAge   = 10 * time.Minute
	endedAttemptAge = 30 * time.Second
	sweepInterval   = time.Second
)

func newAttemptLog() *attemptLog { return &attemptLog{requests: map[string]*attemptRecord{}} }

// begin notes the start of attempt n (from 1) of the request with this
// plan. The first attempt brings the plan (in the attempts header, which it
// removes before the request goes to its provider: Envoy keeps one
// attempt's header changes for the next); later ones, plan unset, get it
// back here. prev is the outcome of the attempt before, if there was one.
func (l *attemptLog) begin(id string, n int, plan *attemptsHeader, now time.Time) (prev attemptOutcome, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > sweepInterval {
		l.sweep(now)
		l.lastSweep = now
	}
	r := l.requests[id]
	if r == nil {
		r = &attemptRecord{started: now, plan: *plan}
		l.requests[id] = r
	}
	if len(plan.Attempts) == 0 {
		*plan = r.plan
	}
	if len(r.outcomes) > 0 && n > 1 {
		prev, ok = r.outcomes[len(r.outcomes)-1], true
	}
	if n >= 1 && n <= len(plan.Attempts) {
		ref := plan.Attempts[n-1]
		r.outcomes = append(r.outcomes, attemptOutcome{Provider: ref.Provider, Model: ref.Model, Key: ref.Key})
	}
	return prev, ok
}

// answered records the status of the request's latest attempt.
func (l *attemptLog) answered(id string, status int, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.requests[id]; r != nil && len(r.outcomes) > 0 {
		o := &r.outcomes[len(r.outcomes)-1]
		o.Status, o.Duration, o.Ms = status, took, float64(took.Microseconds())/1000
	}
}

// end marks the request answered and returns its attempts.
func (l *attemptLog) end(id string, now time.Time) []attemptOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.requests[id]
	if r == nil {
		return nil
	}
	r.ended = now
	return slices.Clone(r.outcomes)
}

func (l *attemptLog) sweep(now time.Time) {
	for id, r := range l.requests {
		if now.Sub(r.started) > maxAttemptAge || (!r.ended.IsZero() && now.Sub(r.ended) > endedAttemptAge) {
			delete(l.requests, id)
		}
	}
}
