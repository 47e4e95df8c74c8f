package processor

import (
	"github.com/prometheus/client_golang/prometheus"

	"switchyard/internal/buckets"
	"switchyard/internal/usage"
)

// usageMetrics are the series of counted responses. The names follow
// OpenTelemetry's gen_ai metrics (gen_ai.client.token.usage,
// gen_ai.server.time_to_first_token, gen_ai.server.request.duration) as
// Prometheus spells them.
type usageMetrics struct {
	tokens     *prometheus.CounterVec
	firstToken *prometheus.HistogramVec
	duration   *prometheus.HistogramVec
	answers    *prometheus.CounterVec
	spendMetrics
}

func newUsageMetrics() usageMetrics {
	return usageMetrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_tokens_total",
			Help: "Tokens as the provider reported them, by client key, provider, model route and type (input, output, cache_read, cache_creation, reasoning; cache_creation_1h is the part of cache_creation written to a 1-hour cache).",
		}, []string{"key", "provider", "model", "type"}),
		firstToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_time_to_first_token_seconds",
			Help:    "Time from the gateway's decision (or, with fallbacks, the answering attempt's start) to the first byte of the answer's body, for counted requests.",
			Buckets: buckets.LLM,
		}, []string{"provider", "model"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_request_duration_seconds",
			Help:    "Time from the gateway's decision (or, with fallbacks, the answering attempt's start) to the end of the answer, for counted requests.",
			Buckets: buckets.LLM,
		}, []string{"provider", "model"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_upstream_answers_total",
			Help: "Answers of providers to counted requests (and to each attempt of a fallback chain), by provider and HTTP status.",
		}, []string{"provider", "status"}),
		spendMetrics: newSpendMetrics(),
	}
}

func (m usageMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.tokens, m.firstToken, m.duration, m.answers, m.cost, m.unpriced, m.estimated}
}

// count adds one response's tokens; types with none add no series.
func (m usageMetrics) count(key, provider, model string, t usage.Tokens) {
	for _, c := range []struct {
		name string
		n    int64
	}{{"input", t.Input}, {"output", t.Output}, {"cache_read", t.CacheRead}, {"cache_creation", t.CacheCreation}, {"cache_creation_1h", t.CacheCreation1h}, {"reasoning", t.Reasoning}} {
		if c.n > 0 {
			m.tokens.WithLabelValues(key, provider, model, c.name).Add(float64(c.n))
		}
	}
}
