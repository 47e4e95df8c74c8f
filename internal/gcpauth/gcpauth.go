// Package gcpauth keeps Google OAuth access tokens for Vertex AI providers
// (auth type "gcp_oauth"). A Source fetches its token in the background, at
// start and again before it expires, and a request only reads the token it
// holds: no request ever waits for Google. Credentials come from
// golang.org/x/oauth2/google: a service account key file, or Application
// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file,
// workload identity, the metadata server).
package gcpauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"switchyard/config"
)

// Scope is the token scope of Vertex AI.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// Timing of the background refresh.
const (
	// refreshBefore is how long before expiry a token is replaced (a
	// shorter-lived one at half its life).
	refreshBefore = 5 * time.Minute
	// retryMin and retryMax bound the wait after a failed fetch.
	retryMin = 500 * time.Millisecond
	retryMax = 30 * time.Second
	// fetchTimeout bounds one fetch.
	fetchTimeout = 30 * time.Second
)

// ErrNoToken is returned while a Source holds no valid token; errFetching
// when, moreover, the last fetch failed. Neither says more: Google's answer
// goes to the log only.
var (
	ErrNoToken  = errors.New("no Google access token yet")
	errFetching = fmt.Errorf("%w: fetching one failed (the gateway's log says why)", ErrNoToken)
)

// Finder makes a token source whose first Token call fetches a new token.
// Each fetch starts from a new one: x/oauth2's sources cache their token
// until seconds before it expires, and the Source replaces it minutes
// before; a key file read again also picks up a rotated key.
type Finder func(ctx context.Context) (oauth2.TokenSource, error)

// Source holds one identity's current token and refreshes it.
type Source struct {
	find   Finder
	log    *slog.Logger
	now    func() time.Time
	cur    atomic.Pointer[token]
	failed atomic.Bool // the last fetch failed (the log says why)
}

type token struct {
	bearer  string // "Bearer <token>", the authorization header's value
	expires time.Time
}

// NewSource starts a Source that keeps find's tokens until ctx ends. The
// first fetch runs in the background too: Bearer reports ErrNoToken until
// it succeeds.
func NewSource(ctx context.Context, find Finder, log *slog.Logger) *Source {
	s := &Source{find: find, log: log, now: time.Now}
	go s.run(ctx)
	return s
}

// Bearer returns the authorization header's value, or why there is none.
// It never waits: it reads what the background refresh left.
func (s *Source) Bearer() (string, error) {
	t := s.cur.Load()
	if t == nil || !s.now().Before(t.expires) {
		if s.failed.Load() {
			return "", errFetching
		}
		return "", ErrNoToken
	}
	return t.bearer, nil
}

func (s *Source) run(ctx context.Context) {
	retry := retryMin
	for {
		wait, ok := s.fetch(ctx)
		if ok {
			retry = retryMin
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

// fetch gets a new token and returns when to fetch the next one.
func (s *Source) fetch(ctx context.Context) (time.Duration, bool) {
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	tok, err := s.token(fctx)
	if err != nil {
		s.failed.Store(true)
		s.log.LogAttrs(ctx, slog.LevelWarn, "fetching a Google access token failed; retrying", slog.String("error", err.Error()))
		return 0, false
	}
	s.failed.Store(false)
	s.cur.Store(&token{bearer: "Bearer " + tok.AccessToken, expires: tok.Expiry})
	return refreshIn(s.now(), tok.Expiry), true
}

func (s *Source) token(ctx context.Context) (*oauth2.Token, error) {
	ts, err := s.find(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := ts.Token()
	switch {
	case err != nil:
		return nil, err
	case tok.AccessToken == "":
		return nil, errors.New("the token endpoint answered no access token")
	case tok.Expiry.IsZero():
		return nil, errors.New("the token endpoint answered a token without an expiry")
	}
	return tok, nil
}

// refreshIn is when to replace a token expiring at exp: refreshBefore its
// expiry, or at half its life for a token that lives less than twice that.
func refreshIn(now, exp time.Time) time.Duration {
	life := exp.Sub(now)
	return max(life-refreshBefore, life/2, retryMin)
}

// NewFinder finds the credentials of a service account key file, or
// Application Default Credentials when file is empty. The file is read now
// to report a missing or malformed one at once, and again at each fetch.
func NewFinder(ctx context.Context, file string) (Finder, error) {
	if file == "" {
		if _, err := google.FindDefaultCredentials(ctx, Scope); err != nil {
			return nil, err
		}
		return func(ctx context.Context) (oauth2.TokenSource, error) {
			c, err := google.FindDefaultCredentials(ctx, Scope)
			if err != nil {
				return nil, err
			}
			return c.TokenSource, nil
		}, nil
	}
	find := func(ctx context.Context) (oauth2.TokenSource, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		c, err := google.CredentialsFromJSONWithType(ctx, b, google.ServiceAccount, Scope)
		if err != nil {
			return nil, fmt.Errorf("credentials_file %s: %w", file, err)
		}
		return c.TokenSource, nil
	}
	_, err := find(ctx)
	return find, err
}

// sources are the process's Sources by credentials file: a reload that
// keeps a provider's credentials keeps its Source and token. They live as
// long as the process (there are few).
var sources struct {
	sync.Mutex
	m map[string]*Source
}

// Shared returns the process's Source for a credentials file ("" for
// Application Default Credentials), starting it on first use.
func Shared(file string, log *slog.Logger) (*Source, error) {
	sources.Lock()
	defer sources.Unlock()
	if s := sources.m[file]; s != nil {
		return s, nil
	}
	find, err := NewFinder(context.Background(), file)
	if err != nil {
		return nil, err
	}
	if sources.m == nil {
		sources.m = map[string]*Source{}
	}
	s := NewSource(context.Background(), find, log)
	sources.m[file] = s
	return s, nil
}

// TokensLogged is config.Env.GCPTokens for the gateway: Shared, its failed
// fetches logged to log.
func TokensLogged(log *slog.Logger) func(string) (config.TokenSource, error) {
	return func(file string) (config.TokenSource, error) {
		return Shared(file, log)
	}
}
