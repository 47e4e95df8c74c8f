package keys

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	up      prometheus.Gauge
	keys    prometheus.Gauge
	teams   prometheus.Gauge
	reloads prometheus.Counter
	errors  prometheus.Counter
	changes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_key_store_up",
			Help: "1 when the key store's last read succeeded; 0 while it cannot be read and the keys last seen are served."}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_key_store_keys",
			Help: "Keys served from the key store."}),
		teams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_key_store_teams",
			Help: "Teams in the key store."}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_key_store_reloads_total",
			Help: "Times the keys were reloaded after a change made elsewhere (another replica)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_key_store_errors_total",
			Help: "Failed reads of the key store."}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_admin_changes_total",
			Help: "Admin API changes by action and result (ok, or refused: nothing changed)."}, []string{"action", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.keys, m.teams, m.reloads, m.errors, m.changes)
	}
	return m
}
