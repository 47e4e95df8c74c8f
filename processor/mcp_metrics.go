package processor

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/internal/buckets"
)

// mcpMetrics are the MCP series. Server names come from the config; tool
// names from calls the key's allow-list let through (a refused call counts
// under its reason, without its tool), and at most maxToolLabels of them
// per server (toolLabel): a key whose allow-list is a glob, or absent, can
// call any name, and each new name would be a series kept for good.
type mcpMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refused  *prometheus.CounterVec
	requests *prometheus.CounterVec
	tools    *toolLabels
}

// maxToolLabels is how many tool names of one server label calls; real
// servers offer tens.
const maxToolLabels = 1000

// toolLabels are the tool names each server's calls were labelled with.
type toolLabels struct {
	mu    sync.Mutex
	names map[string]map[string]struct{}
}

// toolLabel is the label of a call of tool on server: its name, or
// "other" once the server has maxToolLabels names.
func (m mcpMetrics) toolLabel(server, tool string) string {
	t := m.tools
	t.mu.Lock()
	defer t.mu.Unlock()
	names := t.names[server]
	if _, ok := names[tool]; ok {
		return tool
	}
	if len(names) >= maxToolLabels {
		return "other"
	}
	if names == nil {
		names = map[string]struct{}{}
		t.names[server] = names
	}
	names[tool] = struct{}{}
	return tool
}

func newMCPMetrics() mcpMetrics {
	return mcpMetrics{
		tools: &toolLabels{names: map[string]map[string]struct{}{}},
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
