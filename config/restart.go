package config

import (
	"fmt"
	"slices"
)

// RestartNeeded lists the fields of next that differ from running and take
// effect only when the gateway restarts: the body limit (it sizes extproc's
// gRPC messages and Envoy's buffers), the hooks section (it decides whether
// Envoy sends response headers, and builds the hook engine), and a provider's
// url or cluster, or a new provider (Envoy's clusters are rendered at start),
// rate_limit_service (it picks the limiter, whose counts would be lost)
// and tracing (the exporter and Envoy's tracer are set up at start).
// Everything else — routes, client keys, auth (key pools included), schema
// and path prefixes, loop_guard, removing a provider — applies on reload;
// the Envoy retry entries that fallbacks and key pools need are checked
// against the running config by routing.MissingRetryRoutes.
func RestartNeeded(running, next *Config) []string {
	return append(ProcessRestartNeeded(running, next), ClustersChanged(running, next)...)
}

// ProcessRestartNeeded is the part of RestartNeeded that holds even when
// Envoy takes its clusters and routes from extproc over xDS, but for what
// extproc -xds applies live itself (max_body_bytes up to its ceiling, the
// hooks section).
func ProcessRestartNeeded(running, next *Config) []string {
	var fields []string
	if running.BodyLimit() != next.BodyLimit() {
		fields = append(fields, "max_body_bytes")
	}
	if !hooksEqual(running.Hooks, next.Hooks) {
		fields = append(fields, "hooks")
	}
	if rs, ns := running.GlobalLimits(), next.GlobalLimits(); (rs == nil) != (ns == nil) || (rs != nil && *rs != *ns) {
		fields = append(fields, "rate_limit_service")
	}
	if !tracingEqual(running.Tracing, next.Tracing) {
		// The exporter and Envoy's tracing are set up at start.
		fields = append(fields, "tracing")
	}
	return fields
}

// ClustersChanged lists the providers and MCP servers whose Envoy clusters
// are new or changed: a restart with a static Envoy config, live over xDS.
func ClustersChanged(running, next *Config) []string {
	var fields []string
	for i, np := range next.Providers {
		j := slices.IndexFunc(running.Providers, func(rp ProviderConfig) bool { return rp.Name == np.Name })
		switch {
		case j < 0:
			fields = append(fields, fmt.Sprintf("providers[%d] (new provider %q)", i, np.Name))
		case running.Providers[j].URL != np.URL:
			fields = append(fields, fmt.Sprintf("providers[%d].url", i))
		case running.Providers[j].ClusterName() != np.ClusterName():
			fields = append(fields, fmt.Sprintf("providers[%d].cluster", i))
		}
	}
	return append(fields, mcpClustersChanged(running, next)...)
}

func hooksEqual(a, b HooksSection) bool {
	return a.Dir == b.Dir && slices.Equal(a.Files, b.Files) && a.Timeout == b.Timeout && a.FailurePolicy == b.FailurePolicy
}
