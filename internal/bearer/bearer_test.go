package bearer

import (
	"testing"
	"time"
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
