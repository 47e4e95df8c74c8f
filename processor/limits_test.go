package processor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"switchyard/config"
	"switchyard/internal/testkit"
	"switchyard/limits"
	"switchyard/routing"
)

// scriptedLimiter answers Admit with a fixed decision and error and records
// Charge calls.
type scriptedLimiter struct {
	d       limits.Decision
	err     error
	charged []string
}

func (l *scriptedLimiter) Admit(context.Context, string, limits.Limits) (limits.Decision, error) {
	return l.d, l.err
}

func (l *scriptedLimiter) Charge(_ context.Context, key string, lim limits.Limits, s limits.Spent) error {
	l.charged = append(l.charged, key)
	return l.err
}

func headerMap(hs []routing.Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Name] = h.Value
	}
	return m
}

func TestRequestLimitAnswers(t *testing.T) {
	t.Parallel()
	p := routing.Principal{Name: "team-a", Limits: config.LimitsConfig{RequestsPerMinute: 1, TokensPerMinute: 10, TokensPerDay: 100}}
	down := errors.New("asking the rate-limit service: unavailable")
	for _, tc := range []struct {
		name      string
		d         limits.Decision
		err       error
		status    int
		headers   map[string]string
		anthropic string
	}{
		{name: "admitted", d: limits.Decision{OK: true}},
		{
			name: "requests per minute", d: limits.Decision{Which: limits.RequestsPerMinute, Limit: 1, Reset: 9500 * time.Millisecond}, status: 429,
			headers:   map[string]string{"retry-after": "10", "x-ratelimit-limit-requests": "1", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "10s"},
			anthropic: `{"type":"error","error":{"type":"rate_limit_error","message":"rate limit of 1 requests per minute reached for key \"team-a\"; retry in 10s"}}`,
		},
		{
			name: "tokens per minute", d: limits.Decision{Which: limits.TokensPerMinute, Limit: 10, Reset: 30 * time.Second}, status: 429,
			headers:   map[string]string{"retry-after": "30", "x-ratelimit-limit-tokens": "10", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "30s"},
			anthropic: `{"type":"error","error":{"type":"rate_limit_error","message":"token limit of 10 tokens per minute reached for key \"team-a\"; retry in 30s"}}`,
		},
		{
			name: "tokens per day", d: limits.Decision{Which: limits.TokensPerDay, Limit: 100, Reset: 3 * time.Hour}, status: 429,
			headers:   map[string]string{"retry-after": "10800", "x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "10800s"},
			anthropic: `{"type":"error","error":{"type":"rate_limit_error","message":"token limit of 100 tokens per day reached for key \"team-a\"; retry in 10800s"}}`,
		},
		{name: "service down, allow", d: limits.Decision{OK: true}, err: down},
		{
			name: "service down, deny", err: down, status: 503,
			headers:   map[string]string{"retry-after": "1"},
			anthropic: `{"type":"error","error":{"type":"overloaded_error","message":"the gateway cannot check rate limits right now; retry shortly"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := NewMetrics(nil)
			var logs testkit.SyncBuffer
			r := compileRouter(t, testConfigYAML)
			s := New(Options{Router: func() *routing.Router { return r }, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Limiter: &scriptedLimiter{d: tc.d, err: tc.err}})
			e := s.checkRequestLimit(t.Context(), p)
			if tc.status == 0 {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
			} else {
				if e == nil || e.status != tc.status {
					t.Fatalf("answer %v, want %d", e, tc.status)
				}
				if diff := cmp.Diff(tc.headers, headerMap(e.headers)); diff != "" {
					t.Errorf("headers (-want +got):\n%s", diff)
				}
				if body := string(e.body("anthropic")); body != tc.anthropic {
					t.Errorf("anthropic body %s", body)
				}
			}
			wantErrors := 0.0
			if tc.err != nil {
				wantErrors = 1
				// A second failure is counted but not logged again.
				s.checkRequestLimit(t.Context(), p)
				wantErrors = 2
				if n := strings.Count(logs.String(), "rate-limit service unreachable"); n != 1 {
					t.Errorf("%d warnings for two failures, want 1:\n%s", n, logs.String())
				}
			}
			if got := testutil.ToFloat64(m.limiterErrors.WithLabelValues("admit")); got != wantErrors {
				t.Errorf("service errors %v, want %v", got, wantErrors)
			}
		})
	}
}

func TestRequestLimitWithLocalLimiter(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	p := routing.Principal{Name: "team-a", Limits: config.LimitsConfig{RequestsPerMinute: 2, TokensPerMinute: 50}}
	ctx := t.Context()
	for i := 0; i < 2; i++ {
		if e := s.checkRequestLimit(ctx, p); e != nil {
			t.Fatalf("request %d refused: %v", i, e)
		}
	}
	if e := s.checkRequestLimit(ctx, p); e == nil || e.status != 429 || !strings.Contains(e.message, "requests per minute") {
		// The minute may have turned between the calls; only then is the third admitted.
		if e != nil || time.Now().Second() != 0 {
			t.Fatalf("third request: %v", e)
		}
	}
	tokens := routing.Principal{Name: "team-b", Limits: config.LimitsConfig{TokensPerMinute: 50}}
	s.charge(ctx, tokens, limits.Spent{Tokens: 80})
	if e := s.checkRequestLimit(ctx, tokens); (e == nil || !strings.Contains(e.message, "tokens per minute")) && time.Now().Second() != 0 {
		t.Fatalf("after 80 of 50 tokens: %v", e)
	}
	if s.checkRequestLimit(ctx, routing.Principal{Name: "free"}) != nil {
		t.Error("a key without a limit was refused")
	}
}

func TestCharge(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil)
	l := &scriptedLimiter{}
	r := compileRouter(t, testConfigYAML)
	s := New(Options{Router: func() *routing.Router { return r }, Metrics: m, Limiter: l})
	s.charge(t.Context(), routing.Principal{Name: "requests-only", Limits: config.LimitsConfig{RequestsPerMinute: 5}}, limits.Spent{Tokens: 10})
	s.charge(t.Context(), routing.Principal{Name: "a", Limits: config.LimitsConfig{TokensPerDay: 5}}, limits.Spent{Tokens: 0})
	s.charge(t.Context(), routing.Principal{Name: "b", Limits: config.LimitsConfig{TokensPerDay: 5}}, limits.Spent{Tokens: 7})
	s.charge(t.Context(), routing.Principal{Name: "usd", Limits: config.LimitsConfig{USDPerDay: 1}}, limits.Spent{MicroUSD: 3})
	s.charge(t.Context(), routing.Principal{Name: "usd-no-cost", Limits: config.LimitsConfig{USDPerMonth: 1}}, limits.Spent{})
	if diff := cmp.Diff([]string{"b", "usd"}, l.charged); diff != "" {
		t.Errorf("charged (-want +got):\n%s", diff)
	}
	l.err = errors.New("down")
	s.charge(t.Context(), routing.Principal{Name: "c", Limits: config.LimitsConfig{TokensPerMinute: 5}}, limits.Spent{Tokens: 7})
	if got := testutil.ToFloat64(m.limiterErrors.WithLabelValues("charge")); got != 1 {
		t.Errorf("charge errors %v, want 1", got)
	}
}

// TestTeamBudget: a team's budget is counted under its budget name for
// every member key, on top of each key's own, and tokens are charged to
// both; keys without a team pay nothing for teams.
func TestTeamBudget(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	ctx := t.Context()
	member := func(name string) routing.Principal {
		return routing.Principal{Name: name, Team: "ml", TeamBudget: routing.TeamBudgetPrefix + "ml",
			TeamLimits: config.LimitsConfig{RequestsPerMinute: 3, TokensPerMinute: 1000}}
	}
	a, b := member("dev-a"), member("dev-b")
	for time.Now().Second() >= 58 { // the counts are per calendar minute
		time.Sleep(50 * time.Millisecond)
	}
	minute := time.Now().Truncate(time.Minute)
	var refused []string
	for _, p := range []routing.Principal{a, a, b, b} {
		if e := s.checkRequestLimit(ctx, p); e != nil {
			refused = append(refused, p.Name+": "+e.message)
		}
	}
	if time.Now().Truncate(time.Minute) != minute {
		t.Fatal("the minute turned during the test: the counts restarted")
	}
	if len(refused) != 1 || !strings.HasPrefix(refused[0], `dev-b: rate limit of 3 requests per minute reached for team "ml"`) {
		t.Errorf("refused %q, want only dev-b's fourth request of the team", refused)
	}
	lim := &scriptedLimiter{d: limits.Decision{OK: true}}
	s2 := New(Options{Router: s.opts.Router, Limiter: lim})
	s2.charge(ctx, a, limits.Spent{Tokens: 10})
	s2.charge(ctx, routing.Principal{Name: "solo", Limits: config.LimitsConfig{TokensPerMinute: 5}}, limits.Spent{Tokens: 10})
	if diff := cmp.Diff([]string{"team:ml", "solo"}, lim.charged); diff != "" {
		t.Errorf("charged (-want +got)\n%s", diff)
	}
}

// TestTeamMoneyBudget: a team's money budget is charged with each member's
// answer, counts the answers of a member without budgets of its own, and
// refuses the other members once spent, naming the team.
func TestTeamMoneyBudget(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	ctx := t.Context()
	member := func(name string) routing.Principal {
		return routing.Principal{Name: name, Team: "ml", TeamBudget: routing.TeamBudgetPrefix + "ml",
			TeamLimits: config.LimitsConfig{USDPerDay: 1}}
	}
	a, b := member("dev-a"), member("dev-b")
	if !charged(a) {
		t.Fatal("a member of a team with a money budget: answers not counted")
	}
	if e := s.checkRequestLimit(ctx, a); e != nil {
		t.Fatalf("first request refused: %s", e.message)
	}
	s.charge(ctx, a, limits.Spent{MicroUSD: 1_000_000})
	e := s.checkRequestLimit(ctx, b)
	if e == nil || e.status != 429 || !strings.Contains(e.message, `spend limit of $1 per day reached for team "ml"`) {
		t.Fatalf("the other member after the team's dollar: %+v", e)
	}
}
