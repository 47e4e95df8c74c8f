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
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"switchyard/config"
	"switchyard/internal/bearer"
)

// Scope is the token scope of Vertex AI.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// ErrNoToken is returned while a Source holds no valid token (wrapped,
// when the last fetch failed).
var ErrNoToken = errors.New("no Google access token yet")

// Finder makes a token source whose first Token call fetches a new token.
// Each fetch starts from a new one: x/oauth2's sources cache their token
// until seconds before it expires, and the Source replaces it minutes
// before; a key file read again also picks up a rotated key.
type Finder func(ctx context.Context) (oauth2.TokenSource, error)

// Source holds one identity's current token and refreshes it.
type Source = bearer.Source

// NewSource starts a Source that keeps find's tokens until ctx ends. The
// first fetch runs in the background too: Bearer reports ErrNoToken until
// it succeeds.
func NewSource(ctx context.Context, find Finder, log *slog.Logger) *Source {
	fetch := func(ctx context.Context) (bearer.Token, error) {
		ts, err := find(ctx)
		if err != nil {
			return bearer.Token{}, err
		}
		tok, err := ts.Token()
		if err != nil {
			return bearer.Token{}, err
		}
		return bearer.Token{Value: tok.AccessToken, Expires: tok.Expiry}, nil
	}
	return bearer.New(ctx, fetch, bearer.Options{NoToken: ErrNoToken, What: "a Google access token", RetryMin: 500 * time.Millisecond, Log: log})
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
