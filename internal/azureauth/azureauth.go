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
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"switchyard/config"
	"switchyard/internal/bearer"
)

// Scope is the token scope of Azure OpenAI (Cognitive Services).
const Scope = "https://cognitiveservices.azure.com/.default"

// Credential is what a Source fetches tokens from (azidentity's credentials).
type Credential interface {
	GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error)
}

// ErrNoToken is returned while a Source holds no valid token (wrapped,
// when the last fetch failed).
var ErrNoToken = errors.New("no Entra token yet")

// Source holds one identity's current token and refreshes it.
type Source = bearer.Source

// NewSource starts a Source that keeps cred's token for Scope until ctx
// ends. The first fetch runs in the background too: Bearer reports
// ErrNoToken until it succeeds.
func NewSource(ctx context.Context, cred Credential, log *slog.Logger) *Source {
	fetch := func(ctx context.Context) (bearer.Token, error) {
		at, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{Scope}})
		if err != nil {
			return bearer.Token{}, err
		}
		return bearer.Token{Value: at.Token, Expires: at.ExpiresOn, RefreshOn: at.RefreshOn}, nil
	}
	return bearer.New(ctx, fetch, bearer.Options{NoToken: ErrNoToken, What: "an Entra token", RetryMin: time.Second, Log: log})
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
