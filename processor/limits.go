package processor

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"switchyard/limits"
	"switchyard/routing"
)

// Limiter counts client keys' requests, tokens and spend against their
// budgets: limits.Local in this process, limits.Global in Envoy's
// rate-limit service shared by every replica. Admit counts one request and
// checks that no token or money budget is spent; Charge adds a finished
// response's tokens and cost. An error means
// the counts could not be reached; the decision returned with it is the
// configured failure mode's.
type Limiter interface {
	Admit(ctx context.Context, key string, l limits.Limits) (limits.Decision, error)
	Charge(ctx context.Context, key string, l limits.Limits, s limits.Spent) error
}

var (
	_ Limiter = (*limits.Local)(nil)
	_ Limiter = (*limits.Global)(nil)
)

// limiterWarnEvery spaces the warnings about an unreachable rate-limit
// service: one per interval, however many requests meet it (the metric
// counts them all).
const limiterWarnEvery = 10 * time.Second

func budgets(p routing.Principal) limits.Limits { return limits.Of(p.Limits) }

// teamBudgets are the budgets the principal's team shares (none without a
// team).
func teamBudgets(p routing.Principal) limits.Limits {
	if p.TeamBudget == "" {
		return limits.Limits{}
	}
	return limits.Of(p.TeamLimits)
}

// checkRequestLimit counts the request against its key's budgets, then its
// team's (a budget under routing.TeamBudgetPrefix + the team's name, shared
// by the team's keys), and refuses it when one is spent.
func (s *Server) checkRequestLimit(ctx context.Context, p routing.Principal) *apiError {
	if e := s.checkBudget(ctx, p.Name, "key", budgets(p)); e != nil || p.TeamBudget == "" {
		return e
	}
	return s.checkBudget(ctx, p.TeamBudget, "team", teamBudgets(p))
}

// checkBudget counts the request against the budget named name and refuses
// it when one is spent: 429 with Retry-After and OpenAI's x-ratelimit-*
// headers, or 503 when the rate-limit service cannot answer and
// failure_mode is deny.
func (s *Server) checkBudget(ctx context.Context, name, whose string, lim limits.Limits) *apiError {
	if !lim.Any() {
		return nil
	}
	d, err := s.limiter.Admit(ctx, name, lim)
	if err != nil {
		s.limiterFailed(ctx, "admit", err)
		if !d.OK {
			e := newAPIError(routing.KindUnavailable, "rate_limit_service_unavailable", "the gateway cannot check rate limits right now; retry shortly")
			e.headers = []routing.Header{{Name: "retry-after", Value: "1"}}
			return e
		}
		return nil
	}
	if d.OK {
		return nil
	}
	s.opts.Metrics.limited.WithLabelValues(name, d.Which).Inc()
	secs := strconv.FormatInt(int64((d.Reset+time.Second-1)/time.Second), 10) // whole seconds, rounded up
	if secs == "0" {
		secs = "1"
	}
	limit := strconv.FormatInt(d.Limit, 10)
	if d.Which == limits.USDPerDay || d.Which == limits.USDPerMonth {
		return spendRefusal(whose, name, d, secs)
	}
	var what, suffix string
	switch d.Which {
	case limits.RequestsPerMinute:
		what, suffix = "rate limit of "+limit+" requests per minute", "requests"
	case limits.TokensPerMinute:
		what, suffix = "token limit of "+limit+" tokens per minute", "tokens"
	default:
		what, suffix = "token limit of "+limit+" tokens per day", "tokens"
	}
	e := newAPIError(routing.KindRateLimit, "rate_limit_exceeded", what+" reached for "+whose+" "+strconv.Quote(strings.TrimPrefix(name, routing.TeamBudgetPrefix))+"; retry in "+secs+"s")
	e.headers = []routing.Header{
		{Name: "retry-after", Value: secs},
		{Name: "x-ratelimit-limit-" + suffix, Value: limit},
		{Name: "x-ratelimit-remaining-" + suffix, Value: strconv.FormatInt(d.Remaining, 10)},
		{Name: "x-ratelimit-reset-" + suffix, Value: secs + "s"},
	}
	return e
}

// charge adds a finished response's tokens and cost to its key's
// budgets. The request was admitted under them, so it may finish over them;
// the next request of the key is refused then.
func (s *Server) charge(ctx context.Context, p routing.Principal, spent limits.Spent) {
	s.chargeBudget(ctx, p.Name, budgets(p), spent)
	s.chargeBudget(ctx, p.TeamBudget, teamBudgets(p), spent)
}

// unpriced refuses a request of a key or team with a money budget when a
// model any of its attempts would run has no price: its answer would spend
// nothing against the budget, and the client names the model (a route glob
// passes any name on).
func unpriced(router *routing.Router, p routing.Principal, d routing.Decision, model string) *apiError {
	if !budgets(p).Money() && !teamBudgets(p).Money() {
		return nil
	}
	attempts := d.Attempts
	if attempts == nil {
		attempts = []routing.Decision{d}
	}
	for _, a := range attempts {
		if _, ok := router.Prices().Lookup(a.Model); !ok {
			return newAPIError(routing.KindPermission, "model_not_priced", "model "+strconv.Quote(model)+
				" runs a model without a price, and key "+strconv.Quote(p.Name)+" (or its team) has a money budget: the gateway's operator must price it first (prices:)")
		}
	}
	return nil
}

// charged reports whether the principal or its team has a budget charged
// after the answer (tokens or money): its answers must be counted.
func charged(p routing.Principal) bool {
	return budgets(p).Charged() || teamBudgets(p).Charged()
}

// backgroundCharged refuses a Responses request run in the background for
// a key whose answers are charged: the provider answers at once with the
// job queued and no usage, and what the job spends reaches no answer the
// gateway counts.
func backgroundCharged(req *Request, f *bodyFields) *apiError {
	if !f.background || pathOnly(req.Path) != responsesPath || !charged(req.Principal) {
		return nil
	}
	return newAPIError(routing.KindInvalidRequest, "background_not_charged",
		`key "`+req.Principal.Name+`" has a token or money budget, and a "background" response could not be charged to it: send it without "background"`)
}

func (s *Server) chargeBudget(ctx context.Context, name string, lim limits.Limits, spent limits.Spent) {
	if (spent.Tokens <= 0 && spent.MicroUSD <= 0) || !lim.Charged() {
		return
	}
	if err := s.limiter.Charge(ctx, name, lim, spent); err != nil {
		s.limiterFailed(ctx, "charge", err)
	}
}

// limiterFailed counts a failed call to the rate-limit service and logs it,
// at most once per limiterWarnEvery.
func (s *Server) limiterFailed(ctx context.Context, op string, err error) {
	s.opts.Metrics.limiterErrors.WithLabelValues(op).Inc()
	now := time.Now().UnixNano()
	last := s.limiterWarned.Load()
	if now-last < int64(limiterWarnEvery) || !s.limiterWarned.CompareAndSwap(last, now) {
		return
	}
	s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "rate-limit service unreachable; applying failure_mode (further failures in the next 10s are only counted)",
		slog.String("op", op), slog.String("err", err.Error()))
}
