package bearer

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

	"switchyard/internal/testkit"
)

func TestRefreshIn(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	floor := time.Second
	tests := []struct {
		name string
		tok  Token
		want time.Duration
	}{
		{"an hour: 5 min before", Token{Expires: now.Add(time.Hour)}, 55 * time.Minute},
		{"short: half its life", Token{Expires: now.Add(4 * time.Minute)}, 2 * time.Minute},
		{"seconds: half its life", Token{Expires: now.Add(4 * time.Second)}, 2 * time.Second},
		{"the issuer's refresh time", Token{Expires: now.Add(time.Hour), RefreshOn: now.Add(30 * time.Minute)}, 30 * time.Minute},
		{"expired: soon, not at once", Token{Expires: now.Add(-time.Minute)}, floor},
	}
	for _, tc := range tests {
		if got := refreshIn(now, tc.tok, floor); got != tc.want {
			t.Errorf("%s: refreshIn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// fakeIssuer hands out tokens "t1", "t2", ... living life each; fail makes
// fetches fail.
type fakeIssuer struct {
	n    atomic.Int64
	life time.Duration
	fail atomic.Bool
}

func (f *fakeIssuer) fetch(context.Context) (Token, error) {
	if f.fail.Load() {
		return Token{}, errors.New("the issuer said no")
	}
	n := f.n.Add(1)
	return Token{Value: "t" + strconv.FormatInt(n, 10), Expires: time.Now().Add(f.life)}, nil
}

var errNone = errors.New("no test token yet")

func start(t *testing.T, f *fakeIssuer) *Source {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return New(ctx, f.fetch, Options{NoToken: errNone, What: "a test token", RetryMin: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func waitBearer(t *testing.T, s *Source, want string) {
	t.Helper()
	testkit.WaitBearer(t, s.Bearer, want)
}

// TestSourceRefreshesBeforeExpiry: a token living 2 s is replaced at half
// its life, so Bearer never goes without one.
func TestSourceRefreshesBeforeExpiry(t *testing.T) {
	t.Parallel()
	s := start(t, &fakeIssuer{life: 2 * time.Second})
	waitBearer(t, s, "Bearer t1")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Bearer(); err != nil {
			t.Fatalf("Bearer during refreshes: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := s.Bearer(); got == "Bearer t1" {
		t.Errorf("after 3 s of a 2 s token, Bearer still = %q", got)
	}
}

// TestSourceKeepsTokenWhileFailing: failed refreshes keep the token until it
// expires; then Bearer says why there is none, without the issuer's answer.
func TestSourceKeepsTokenWhileFailing(t *testing.T) {
	t.Parallel()
	f := &fakeIssuer{life: 1500 * time.Millisecond}
	s := start(t, f)
	waitBearer(t, s, "Bearer t1")
	f.fail.Store(true)
	if got, err := s.Bearer(); err != nil || got != "Bearer t1" {
		t.Fatalf("Bearer right after a failure began = %q, %v", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Bearer()
		if err != nil {
			if !errors.Is(err, errNone) || !strings.Contains(err.Error(), "failed") || strings.Contains(err.Error(), "said no") {
				t.Errorf("Bearer after expiry: %v, want the NoToken error saying a fetch failed, without the issuer's answer", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an expired token was still served")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.fail.Store(false)
	waitBearer(t, s, "Bearer t2") // a failed fetch hands out nothing: the next success is t2
}
