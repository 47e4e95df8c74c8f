package processor

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/internal/usage"
	"switchyard/limits"
	"switchyard/pricing"
	"switchyard/routing"
)

// spendMetrics are the money series of counted responses (README "Spend").
type spendMetrics struct {
	cost *prometheus.CounterVec
	// unpriced counts counted answers with tokens whose model matches no
	// price: they cost nothing in cost and in money budgets.
	unpriced *prometheus.CounterVec
	// estimated counts answers cut before they reported any usage, whose
	// tokens were estimated (Server.unfinished).
	estimated *prometheus.CounterVec
}

func newSpendMetrics() spendMetrics {
	return spendMetrics{
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cost_usd_total",
			Help: "Spend in US dollars: the tokens of counted answers priced by the price table, by client key, provider and model route.",
		}, []string{"key", "provider", "model"}),
		unpriced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_unpriced_requests_total",
			Help: "Counted answers with tokens whose model has no price: no cost counted or charged, by provider and model route.",
		}, []string{"provider", "model"}),
		estimated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_usage_estimated_total",
			Help: "Answers cut before their end that had reported no usage: input estimated from the request body (4 bytes a token), output from the stream's events (one a token), by provider and model route.",
		}, []string{"provider", "model"}),
	}
}

// spend counts one answer's cost, or that it had no price.
func (m spendMetrics) spend(key, provider, model string, t usage.Tokens, cost pricing.Cost, priced bool) {
	switch {
	case !priced && !t.IsZero():
		m.unpriced.WithLabelValues(provider, model).Inc()
	case cost > 0:
		m.cost.WithLabelValues(key, provider, model).Add(cost.USD())
	}
}

// unfinished is the usage of an answer whose stream was cut before its end
// (the client went away, or the provider), or that was too big to read
// whole: the provider bills it all the same. The input the provider had
// reported stands (Anthropic's message_start carries it, with an output of
// 1); when it had reported nothing (an OpenAI chat stream reports usage
// only in its last chunk), the input is estimated from the size of the body
// sent as count_tokens estimates it (estimatedTokens). The output is the
// reported one or the stream's events, one a token, whichever is more, so
// that a client leaving before the last event is charged the output so far
// (every event counts, message_start and pings too: a few tokens over). The
// second result says whether anything was estimated.
func (s *Server) unfinished(j *responseJob, r *usage.Reader, reported usage.Tokens) (usage.Tokens, bool) {
	t, estimated := reported, reported.IsZero()
	if estimated {
		t.Input = int64(estimatedTokens(j.bodyBytes))
	}
	if n := int64(r.Events()); n > t.Output {
		t.Output, estimated = n, true
	}
	if estimated {
		s.opts.Metrics.usage.estimated.WithLabelValues(j.provider, j.metricModel).Inc()
	}
	return t, estimated
}

// spendRefusal is the answer to a request of a key whose money budget is
// spent: 429 with Retry-After.
func spendRefusal(whose, name string, d limits.Decision, secs string) *apiError {
	per := "day"
	if d.Which == limits.USDPerMonth {
		per = "month"
	}
	usd := strconv.FormatFloat(float64(d.Limit)/1e6, 'f', -1, 64)
	e := newAPIError(routing.KindRateLimit, "spend_limit_exceeded",
		"spend limit of $"+usd+" per "+per+" reached for "+whose+" "+strconv.Quote(strings.TrimPrefix(name, routing.TeamBudgetPrefix))+"; retry in "+secs+"s")
	e.headers = []routing.Header{{Name: "retry-after", Value: secs}}
	return e
}
