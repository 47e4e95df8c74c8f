package processor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the processor's Prometheus series. Label values come from the
// configuration (provider names, route patterns) or a fixed set, never from
// raw client input, so cardinality stays bounded.
type Metrics struct {
	requests *prometheus.CounterVec
	decision prometheus.Histogram
	streams  prometheus.Gauge
}

// NewMetrics registers the processor's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_requests_total",
			Help: "Requests decided by the gateway, by provider, model route and status (\"routed\" or the error status sent to the client).",
		}, []string{"provider", "model", "status"}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_decision_duration_seconds",
			Help:    "Time from the complete request body to the routing answer sent to Envoy, hooks included.",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2},
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_extproc_active_streams",
			Help: "ext_proc streams currently open from Envoy.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.decision, m.streams)
	}
	return m
}
