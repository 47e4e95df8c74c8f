package azureauth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"switchyard/config"
	"switchyard/internal/testkit"
)

// fakeCred hands out tokens "t1", "t2", ... living life each, after
// release lets a fetch through; fail makes fetches fail.
type fakeCred struct {
	n       atomic.Int64
	life    time.Duration
	fail    atomic.Bool
	release chan struct{}
	scopes  atomic.Pointer[[]string]
}

func (c *fakeCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.scopes.Store(&o.Scopes)
	if c.release != nil {
		select {
		case <-c.release:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	if c.fail.Load() {
		return azcore.AccessToken{}, errors.New("entra said no")
	}
	n := c.n.Add(1)
	return azcore.AccessToken{Token: "t" + strconv.FormatInt(n, 10), ExpiresOn: time.Now().Add(c.life)}, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func waitBearer(t *testing.T, s *Source, want string) {
	t.Helper()
	testkit.WaitBearer(t, s.Bearer, want)
}

// TestSourceNeverWaits: while the first fetch hangs, Bearer answers at once
// with ErrNoToken; once it lands, the token; the scope is Azure OpenAI's.
func TestSourceNeverWaits(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &fakeCred{life: time.Hour, release: make(chan struct{})}
	s := NewSource(ctx, c, quiet)
	start := time.Now()
	if _, err := s.Bearer(); !errors.Is(err, ErrNoToken) && err.Error() != ErrNoToken.Error() {
		t.Fatalf("Bearer before the first token: %v, want ErrNoToken", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Bearer waited %v for a fetch", d)
	}
	close(c.release)
	waitBearer(t, s, "Bearer t1")
	if got := *c.scopes.Load(); len(got) != 1 || got[0] != Scope {
		t.Errorf("scopes = %v, want [%s]", got, Scope)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestSharedByIdentity: one Source per identity, a changed secret makes
// another; the key holds no secret.
func TestSharedByIdentity(t *testing.T) {
	e := &config.EntraConfig{TenantID: "t", ClientID: "c", ClientSecretEnv: "S", AuthorityHost: "https://127.0.0.1:1/"}
	a, err := Shared(e, "secret-1", quiet)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Shared(e, "secret-1", quiet)
	c, _ := Shared(e, "secret-2", quiet)
	if a != b || a == c {
		t.Errorf("Shared: same identity gave %p and %p, another secret %p", a, b, c)
	}
	if k := identityKey(e, "secret-1"); contains(k, "secret-1") {
		t.Errorf("identity key %q holds the secret", k)
	}
}
