package processor

import (
	"github.com/prometheus/client_golang/prometheus"

	"switchyard/internal/buckets"
)

// mcpMetrics are the MCP series. Server names come from the config; tool
// names from calls the key's allow-list let through (a refused call counts
// under its reason, without its tool), so a client cannot grow them with
// names the allow-list does not cover.
type mcpMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refused  *prometheus.CounterVec
	requests *prometheus.CounterVec
}

func newMCPMetrics() mcpMetrics {
	return mcpMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_mcp_calls_total",
			Help: "MCP tool calls, by server, tool, client key and outcome (ok, tool_error, rpc_error, http_error, aborted, refused).",
		}, []string{"server", "tool", "key", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_mcp_call_duration_seconds",
			Help:    "Time from an MCP tool call's arrival to the end of its answer, by server.",
			Buckets: buckets.LLM,
		}, []string{"server"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_mcp_refused_total",
			Help: "MCP requests the gateway refused, by server (\"\" when unknown) and reason.",
		}, []string{"server", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_mcp_requests_total",
			Help: "MCP HTTP requests forwarded, by server and HTTP method.",
		}, []string{"server", "method"}),
	}
}

func (m mcpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.duration, m.refused, m.requests}
}
