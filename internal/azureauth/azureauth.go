// Package azureauth keeps Microsoft Entra access tokens for Azure OpenAI
// providers (auth type "entra"). A Source fetches its token in the
// background, at start and again before it expires, and a request only
// reads the token it holds: no request ever waits for Entra. Credentials
// come from azure-sdk-for-go's azidentity: a service principal's client
// secret, or the default chain (environment, workload identity, managed
// identity, the Azure CLI).
package azureauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"switchyard/config"
)

// Scope is the token scope of Azure OpenAI (Cognitive Services).
const Scope = "https://cognitiveservices.azure.com/.default"

// Credential is what a Source fetches tokens from (azidentity's credentials).
type Credential interface {
	GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error)
}

// Timing of the background refresh.
const (
	// refreshBefore is how long before expiry a token is replaced (a
	// shorter-lived one at half its life).
	refreshBefore = 5 * time.Minute
	// retryMin and retryMax bound the wait after a failed fetch.
	retryMin = time.Second
	retryMax = 30 * time.Second
	// fetchTimeout bounds one fetch.
	fetchTimeout = 30 * time.Second
)

// ErrNoToken is returned while a Source holds no valid token; errFetching
// when, moreover, the last fetch failed. Neither says more: Entra's answer
// names internal addresses, and goes to the log only.
var (
	ErrNoToken  = errors.New("no Entra token yet")
	errFetching = fmt.Errorf("%w: fetching one failed (the gateway's log says why)", ErrNoToken)
)

// Source holds one identity's current token and refreshes it.
type Source struct {
	cred   Credential
	log    *slog.Logger
	now    func() time.Time
	cur    atomic.Pointer[token]
	failed atomic.Bool // the last fetch failed (the log says why)
}

type token struct {
	bearer  string // "Bearer <token>", the authorization header's value
	expires time.Time
}

// NewSource starts a Source that keeps cred's token for Scope until ctx
// ends. The first fetch runs in the background too: Bearer reports
// ErrNoToken until it succeeds.
func NewSource(ctx context.Context, cred Credential, log *slog.Logger) *Source {
	s := &Source{cred: cred, log: log, now: time.Now}
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
	at, err := s.cred.GetToken(fctx, policy.TokenRequestOptions{Scopes: []string{Scope}})
	if err != nil {
		s.failed.Store(true)
		s.log.LogAttrs(ctx, slog.LevelWarn, "fetching an Entra token failed; retrying", slog.String("error", err.Error()))
		return 0, false
	}
	s.failed.Store(false)
	s.cur.Store(&token{bearer: "Bearer " + at.Token, expires: at.ExpiresOn})
	return refreshIn(s.now(), at), true
}

// refreshIn is when to replace a token: refreshBefore its expiry, or at
// half its life for a token that lives less than twice that, and no later
// than Entra's suggested refresh time when it gave one.
func refreshIn(now time.Time, at azcore.AccessToken) time.Duration {
	life := at.ExpiresOn.Sub(now)
	d := max(life-refreshBefore, life/2)
	if !at.RefreshOn.IsZero() {
		d = min(d, at.RefreshOn.Sub(now))
	}
	return max(d, retryMin)
}

// NewCredential builds the azidentity credential an entra config names;
// secret is the client secret (empty for the default chain).
func NewCredential(e *config.EntraConfig, secret string) (Credential, error) {
	opts := azcore.ClientOptions{}
	disableDiscovery := false
	if e != nil && e.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: e.AuthorityHost, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
		// Instance discovery asks the public cloud about the authority.
		disableDiscovery = true
	}
	if e.ClientSecret() {
		return azidentity.NewClientSecretCredential(e.TenantID, e.ClientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disableDiscovery})
	}
	return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts,
		DisableInstanceDiscovery: disableDiscovery})
}

// sources are the process's Sources by identity: a reload that keeps a
// provider's identity keeps its Source and token. They live as long as the
// process (an identity a reload drops keeps refreshing; there are few).
var sources struct {
	sync.Mutex
	m map[string]*Source
}

// Shared returns the process's Source for an entra config and client
// secret, starting it on first use.
func Shared(e *config.EntraConfig, secret string, log *slog.Logger) (*Source, error) {
	key := identityKey(e, secret)
	sources.Lock()
	defer sources.Unlock()
	if s := sources.m[key]; s != nil {
		return s, nil
	}
	cred, err := NewCredential(e, secret)
	if err != nil {
		return nil, err
	}
	if sources.m == nil {
		sources.m = map[string]*Source{}
	}
	s := NewSource(context.Background(), cred, log)
	sources.m[key] = s
	return s, nil
}

// TokensLogged is config.Env.EntraTokens for the gateway: Shared, its
// failed fetches logged to log.
func TokensLogged(log *slog.Logger) func(*config.EntraConfig, string) (config.TokenSource, error) {
	return func(e *config.EntraConfig, secret string) (config.TokenSource, error) {
		return Shared(e, secret, log)
	}
}

// identityKey names an identity without holding its secret.
func identityKey(e *config.EntraConfig, secret string) string {
	if e == nil {
		e = &config.EntraConfig{}
	}
	h := sha256.Sum256([]byte(secret))
	return e.AuthorityHost + "\x00" + e.TenantID + "\x00" + e.ClientID + "\x00" + hex.EncodeToString(h[:])
}
