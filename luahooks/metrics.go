package luahooks

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/internal/buckets"
)

// metrics are every Prometheus metric of the package.
type metrics struct {
	version        prometheus.Gauge
	reloadFailures prometheus.Counter
	lastReloadOK   prometheus.Gauge
	errors         *prometheus.CounterVec   // script, reason
	duration       *prometheus.HistogramVec // script, hook
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_hooks_version",
			Help: "Version number of the hook set that serves new requests (0 = no hooks loaded).",
		}),
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_hooks_reload_failures_total",
			Help: "Hook reloads refused because a script failed to compile or validate.",
		}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_hooks_last_reload_successful",
			Help: "1 if the last hook reload succeeded, 0 if the old set is still serving after a failure.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_hooks_errors_total",
			Help: "Hook calls that failed, by script file and reason (runtime, timeout, malformed, limit, load).",
		}, []string{"script", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_hook_duration_seconds",
			Help:    "Time spent in one hook call, by script file and hook (on_request, on_response).",
			Buckets: buckets.Work,
		}, []string{"script", "hook"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.version, m.reloadFailures, m.lastReloadOK, m.errors, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering hook metrics: %w", err)
		}
	}
	return m, nil
}
