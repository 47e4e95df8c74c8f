// Package bearer keeps an access token fetched in the background, for the
// providers whose credential is a short-lived bearer token (Entra for Azure
// OpenAI, Google OAuth for Vertex AI). A Source fetches at start and again
// before the token expires, and a request only reads the token it holds: no
// request ever waits for the issuer.
package bearer

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Token is a fetched access token: its value, when it expires and, when
// the issuer suggested one, when to replace it.
type Token struct {
	Value     string
	Expires   time.Time
	RefreshOn time.Time
}

// Fetch gets a new token from the issuer.
type Fetch func(ctx context.Context) (Token, error)

// Options name a Source's token and pace its retries.
type Options struct {
	// NoToken is what Bearer returns while no valid token is held, e.g.
	// "no Entra token yet". It says no more: the issuer's answer may name
	// internal addresses, and goes to the log only.
	NoToken error
	// What names the token in the log line of a failed fetch, e.g. "an
	// Entra token".
	What string
	// RetryMin is the first wait after a failed fetch; it doubles up to
	// 30 s.
	RetryMin time.Duration
	Log      *slog.Logger
}

// Timing of the background refresh.
const (
	// refreshBefore is how long before expiry a token is replaced (a
	// shorter-lived one at half its life).
	refreshBefore = 5 * time.Minute
	retryMax      = 30 * time.Second
	// fetchTimeout bounds one fetch.
	fetchTimeout = 30 * time.Second
)

// Source holds one identity's current token and refreshes it.
type Source struct {
	fetch    Fetch
	opts     Options
	fetching error // NoToken, saying that the last fetch failed
	now      func() time.Time
	cur      atomic.Pointer[held]
	failed   atomic.Bool // the last fetch failed (the log says why)
}

type held struct {
	bearer  string // "Bearer <token>", the authorization header's value
	expires time.Time
}

// New starts a Source that keeps fetch's tokens until ctx ends. The first
// fetch runs in the background too: Bearer reports opts.NoToken until it
// succeeds.
func New(ctx context.Context, fetch Fetch, opts Options) *Source {
	s := &Source{fetch: fetch, opts: opts, now: time.Now,
		fetching: fmt.Errorf("%w: fetching one failed (the gateway's log says why)", opts.NoToken)}
	go s.run(ctx)
	return s
}

// Bearer returns the authorization header's value, or why there is none.
// It never waits: it reads what the background refresh left.
func (s *Source) Bearer() (string, error) {
	t := s.cur.Load()
	if t == nil || !s.now().Before(t.expires) {
		if s.failed.Load() {
			return "", s.fetching
		}
		return "", s.opts.NoToken
	}
	return t.bearer, nil
}

func (s *Source) run(ctx context.Context) {
	retry := s.opts.RetryMin
	for {
		wait, ok := s.refresh(ctx)
		if ok {
			retry = s.opts.RetryMin
		} else {
			wait, retry = retry, min(2*retry, retryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// refresh fetches a new token and returns when to fetch the next one.
func (s *Source) refresh(ctx context.Context) (time.Duration, bool) {
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	t, err := s.fetch(fctx)
	if err == nil && (t.Value == "" || t.Expires.IsZero()) {
		err = fmt.Errorf("the issuer answered a token without a value or an expiry")
	}
	if err != nil {
		s.failed.Store(true)
		s.opts.Log.LogAttrs(ctx, slog.LevelWarn, "fetching "+s.opts.What+" failed; retrying", slog.String("error", err.Error()))
		return 0, false
	}
	s.failed.Store(false)
	s.cur.Store(&held{bearer: "Bearer " + t.Value, expires: t.Expires})
	return refreshIn(s.now(), t, s.opts.RetryMin), true
}

// refreshIn is when to replace t: refreshBefore its expiry, or at half its
// life for a token that lives less than twice that, and no later than the
// issuer's suggested refresh time when it gave one; never sooner than
// floor.
func refreshIn(now time.Time, t Token, floor time.Duration) time.Duration {
	life := t.Expires.Sub(now)
	d := max(life-refreshBefore, life/2)
	if !t.RefreshOn.IsZero() {
		d = min(d, t.RefreshOn.Sub(now))
	}
	return max(d, floor)
}
