package processor

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/internal/buckets"
)

// Tag series are bounded: past these counts new keys or values are counted
// under otherLabel, so a hook tagging with client input cannot grow the
// exposition without limit.
const (
	maxTagKeys      = 16
	maxValuesPerKey = 64
	otherLabel      = "_other"
)

// Metrics are the processor's Prometheus series. Label values come from the
// configuration (provider names, route patterns) or a fixed set, never from
// raw client input, so cardinality stays bounded.
type Metrics struct {
	requests *prometheus.CounterVec
	decision prometheus.Histogram
	streams  prometheus.Gauge
	tagged   *prometheus.CounterVec
	// flightsExpired counts requests dropped before their attempts or
	// answer ended (flightTable).
	flightsExpired prometheus.Counter
	// bodyModes counts requests by how the body reached the decision,
	// resolved once (bodyFullDuplex, bodyBuffered, bodySummarized).
	bodyModeVec *prometheus.CounterVec
	bodyModes   [3]prometheus.Counter

	// Requests with fallbacks.
	attempts  prometheus.Histogram
	fallbacks *prometheus.CounterVec
	ejections *prometheus.CounterVec

	limited *prometheus.CounterVec
	// limiterErrors counts calls to the rate-limit service that failed.
	limiterErrors *prometheus.CounterVec
	// Sessions, affinity and the loop guard; the counters are resolved once
	// so a request pays no label lookup.
	sessions     map[string]prometheus.Counter // by session source
	affinity     prometheus.Counter
	sessionsVec  *prometheus.CounterVec
	sessionsSeen prometheus.Counter
	affinityVec  *prometheus.CounterVec
	loopGuardVec *prometheus.CounterVec
	keyAffinity  prometheus.Counter
	keyCooldowns *prometheus.CounterVec

	usage usageMetrics
	mcp   mcpMetrics

	tagMu   sync.Mutex
	tagSeen map[string]map[string]bool // key -> values with a series of their own
}

// NewMetrics registers the processor's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{tagSeen: map[string]map[string]bool{}}
	m.newRequestMetrics()
	m.newFallbackMetrics()
	m.newSessionMetrics()
	m.usage = newUsageMetrics()
	m.mcp = newMCPMetrics()
	if reg != nil {
		reg.MustRegister(m.requests, m.decision, m.streams, m.tagged, m.flightsExpired, m.bodyModeVec, m.attempts, m.fallbacks, m.ejections, m.limited, m.limiterErrors,
			m.sessionsVec, m.sessionsSeen, m.affinityVec, m.loopGuardVec, m.keyCooldowns)
		reg.MustRegister(m.usage.collectors()...)
		reg.MustRegister(m.mcp.collectors()...)
	}
	return m
}

// newRequestMetrics makes the series every request counts in.
func (m *Metrics) newRequestMetrics() {
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_requests_total",
		Help: "Requests decided by the gateway, by provider, model route and status (\"routed\" or the error status sent to the client).",
	}, []string{"provider", "model", "status"})
	m.decision = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchyard_decision_duration_seconds",
		Help:    "Time from the complete request body to the routing answer sent to Envoy, hooks included.",
		Buckets: buckets.Work,
	})
	m.streams = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchyard_extproc_active_streams",
		Help: "ext_proc streams currently open from Envoy (one per request, and one per attempt of a request with fallbacks).",
	})
	m.tagged = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_tagged_requests_total",
		Help: "Routed requests by tag set by a Lua hook (at most 16 keys and 64 values per key; the rest count as _other).",
	}, []string{"tag", "value"})
	m.flightsExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_request_records_expired_total",
		Help: "Requests with fallbacks or a counted or translated answer whose record was dropped after 10 minutes because their attempts or answer never came or never ended.",
	})
	m.bodyModeVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_request_body_mode_total",
		Help: "Requests by how their body reached the decision: full_duplex (the body goes to extproc and back), buffered (it comes back only when changed) or summarized (it stayed in Envoy, whose body module summarized it).",
	}, []string{"mode"})
	for mode, label := range [...]string{bodyFullDuplex: "full_duplex", bodyBuffered: "buffered", bodySummarized: "summarized"} {
		m.bodyModes[mode] = m.bodyModeVec.WithLabelValues(label)
	}
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_rate_limited_total",
		Help: "Requests refused with 429 because their client key was over a limit, by key name and limit.",
	}, []string{"key", "limit"})
	m.limiterErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_rate_limit_service_errors_total",
		Help: "Calls to the rate-limit service that failed (unreachable, timed out, Redis down), by operation (admit or charge); failure_mode decides the request.",
	}, []string{"op"})
}

// newFallbackMetrics makes the series of requests with fallbacks.
func (m *Metrics) newFallbackMetrics() {
	m.attempts = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchyard_request_attempts",
		Help:    "Upstream attempts per request on routes with fallbacks, counted when the request is answered.",
		Buckets: []float64{1, 2, 3, 4, 5, 8},
	})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_fallbacks_total",
		Help: "Requests moved from one provider to the next, by the failure that moved them (an HTTP status, or no_response for a refused, reset or silent attempt).",
	}, []string{"from", "to", "reason"})
	m.ejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_provider_ejections_total",
		Help: "Times a provider was put last in every fallback chain after consecutive failed attempts.",
	}, []string{"provider"})
}

// newSessionMetrics makes the series of sessions, affinity, key pools and
// the loop guard; the counters a request uses are resolved once, so it pays
// no label lookup.
func (m *Metrics) newSessionMetrics() {
	m.sessionsVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_session_requests_total",
		Help: "Routed requests that carried a session key, by where the key came from (x-session-id, claude_code, codex, hook).",
	}, []string{"source"})
	m.sessionsSeen = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_sessions_seen_total",
		Help: "Distinct session keys seen; a session idle for an hour counts again when it returns (approximate past 100,000 sessions active within an hour).",
	})
	m.affinityVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_affinity_routed_total",
		Help: "Routed requests whose session key chose among several candidates, by what it chose (target: a weighted alias's target; key: a provider's key).",
	}, []string{"kind"})
	m.loopGuardVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_loop_guard_refusals_total",
		Help: "Requests refused by the loop guard (an identical request repeated over max_repeats within the window), by client key name.",
	}, []string{"key_name"})
	m.keyCooldowns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_key_cooldowns_total",
		Help: "Times a key of a provider's key pool answered 429 and was rested for its Retry-After, by provider and key (its key_env, a digest env:... of one not in upper case, or its key_file; never the key).",
	}, []string{"provider", "key"})
	m.keyAffinity = m.affinityVec.WithLabelValues("key")
	m.affinity = m.affinityVec.WithLabelValues("target")
	m.sessions = make(map[string]prometheus.Counter, len(sessionSources))
	for _, src := range sessionSources {
		m.sessions[src] = m.sessionsVec.WithLabelValues(src)
	}
}

// countTags counts one routed request under each of its hook tags.
func (m *Metrics) countTags(tags map[string]string) {
	for k, v := range tags {
		k, v = m.boundTag(k, v)
		m.tagged.WithLabelValues(k, v).Inc()
	}
}

func (m *Metrics) boundTag(k, v string) (string, string) {
	m.tagMu.Lock()
	defer m.tagMu.Unlock()
	values, ok := m.tagSeen[k]
	if !ok {
		if len(m.tagSeen) >= maxTagKeys {
			return otherLabel, otherLabel
		}
		values = map[string]bool{}
		m.tagSeen[k] = values
	}
	if !values[v] {
		if len(values) >= maxValuesPerKey {
			return k, otherLabel
		}
		values[v] = true
	}
	return k, v
}

// How a request's body reached the decision (Metrics.bodyModes).
const (
	bodyFullDuplex = iota
	bodyBuffered
	bodySummarized
)
