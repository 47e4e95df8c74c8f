package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/config"
	"switchyard/internal/azureauth"
	"switchyard/internal/gcpauth"
	"switchyard/reload"
	"switchyard/routing"
)

// configDebounce lets a burst of file events (write, chmod, rename) settle
// into one reload.
const configDebounce = 100 * time.Millisecond

// configMetrics are the gauges and counters of config reloads.
type configMetrics struct {
	lastOK          prometheus.Gauge
	restartRequired prometheus.Gauge
	reloads         *prometheus.CounterVec
}

func newConfigMetrics(reg prometheus.Registerer) configMetrics {
	m := configMetrics{
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_config_last_reload_successful",
			Help: "1 if the last load of the gateway config succeeded, 0 if the running config is older than the file.",
		}),
		restartRequired: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_config_restart_required",
			Help: "1 if the config file changes fields that apply only after a restart (the reload was refused), else 0.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_config_reloads_total",
			Help: "Gateway config reload attempts by result (success or failure).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.lastOK, m.restartRequired, m.reloads)
	return m
}

// envoyUpdater hands Envoy the clusters and routes of a config over xDS
// (xds.Server).
type envoyUpdater interface {
	Update(ctx context.Context, r *routing.Router) error
}

// newConfigHolder loads the config at path and keeps the routing snapshot
// new requests start with. A reload that changes a field needing a restart
// is refused as a whole: the running config keeps serving and the log and
// switchyard_config_restart_required say which field. With xds (nil: Envoy
// runs a static config) Envoy's clusters and route entries are live: each
// load hands them to Envoy and waits until Envoy has accepted them before
// the new config serves requests; a config they cannot be built for, or
// that Envoy rejects, is refused. With xds max_body_bytes is live too, up
// to the body limit extproc's gRPC server was sized for at start, and so is
// the hooks section: the new hooks are built and checked first, and serve
// once Envoy has what they need (response headers, sent per route).
func newConfigHolder(path string, log *slog.Logger, reg prometheus.Registerer, xds envoyUpdater, hooks *liveHooks) (*reload.Holder[routing.Router], error) {
	m := newConfigMetrics(reg)
	// The largest body limit extproc's gRPC server, sized at start, takes.
	var bodyCeiling int64
	load := func(current *routing.Router) (*routing.Router, error) {
		r, err := routing.LoadEnv(path, config.Env{EntraTokens: azureauth.TokensLogged(log), GCPTokens: gcpauth.TokensLogged(log)})
		if err != nil {
			return nil, err
		}
		if current == nil {
			bodyCeiling = maxBodyCeiling(r.MaxBodyBytes(), xds != nil)
		}
		commitHooks := func() {}
		if current != nil {
			fields := config.ProcessRestartNeeded(current.Config(), r.Config())
			if xds != nil && r.MaxBodyBytes() <= bodyCeiling {
				// Envoy's buffers come over xDS; extproc reads the limit
				// per request.
				fields = slices.DeleteFunc(fields, func(f string) bool { return f == "max_body_bytes" })
			}
			if xds != nil && slices.Contains(fields, "hooks") {
				fields = slices.DeleteFunc(fields, func(f string) bool { return f == "hooks" })
				if len(fields) == 0 {
					if commitHooks, err = hooks.prepare(r.Hooks()); err != nil {
						return nil, err
					}
				}
			}
			if xds == nil {
				fields = append(fields, config.ClustersChanged(current.Config(), r.Config())...)
				fields = append(fields, routing.MissingRetryRoutes(current, r)...)
			}
			if len(fields) > 0 {
				m.restartRequired.Set(1)
				return nil, fmt.Errorf("%s changed in %s: these apply only after a restart", strings.Join(fields, ", "), path)
			}
		}
		if xds != nil {
			if err := xds.Update(context.Background(), r); err != nil {
				return nil, err
			}
		}
		commitHooks()
		if current != nil {
			log.Info("config reloaded", "path", path)
		}
		m.restartRequired.Set(0)
		for _, p := range r.CredentialProblems() {
			log.Warn("provider key missing: the provider (or this key of its pool) is unavailable until it is set", "reason", p)
		}
		return r, nil
	}
	return reload.New(reload.Options[routing.Router]{
		Name:      "config",
		Load:      load,
		Logger:    log,
		LastOK:    m.lastOK,
		Succeeded: m.reloads.WithLabelValues("success"),
		Failed:    m.reloads.WithLabelValues("failure"),
	})
}

// xdsBodyCeiling is the body limit extproc's gRPC server is sized for with
// -xds, whatever the config says at start: max_body_bytes then reloads live
// up to it (the server's message limit is fixed when it starts). It costs
// nothing until a message that large arrives, and only Envoy, which
// enforces max_body_bytes itself, sends extproc messages.
const xdsBodyCeiling = 1 << 30

// maxBodyCeiling is the largest body limit a gRPC server sized at start for
// startBody takes.
func maxBodyCeiling(startBody int64, xds bool) int64 {
	if xds {
		return max(startBody, xdsBodyCeiling)
	}
	return startBody
}

// grpcMaxMsg is extproc's gRPC message limit for a body limit: a buffered
// body arrives as one message, plus headroom for the protobuf framing.
func grpcMaxMsg(maxBody int64) int {
	return int(max(maxBody+1<<20, 16<<20))
}
