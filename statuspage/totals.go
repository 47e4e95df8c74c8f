package statuspage

import (
	"strconv"

	dto "github.com/prometheus/client_model/go"
)

// The series the totals are read from (processor/metrics.go and
// processor/usagemetrics.go declare them).
const (
	requestsMetric   = "switchyard_requests_total"
	tokensMetric     = "switchyard_tokens_total"
	fallbacksMetric  = "switchyard_fallbacks_total"
	costMetric       = "switchyard_cost_usd_total"
	mcpCallsMetric   = "switchyard_mcp_calls_total"
	mcpRefusedMetric = "switchyard_mcp_refused_total"
	// reasoningType is a token type already part of output.
	reasoningType = "reasoning"
)

// totals are the request and token counters at one moment.
type totals struct {
	byProvider map[string]*counts // "" : answered by the gateway itself
	byKey      map[string]float64 // tokens billed, "" for requests without a client key
	usdByKey   map[string]float64 // US dollars spent, by the same keys
	mcpCalls   map[string]float64 // MCP tool calls by server
	mcpRefused map[string]float64 // MCP requests refused by server
}

// counts are a provider's requests, those answered with an error status
// (the gateway's own answers: provider ""), and its attempts that failed
// and moved their request to the next provider.
type counts struct{ requests, errors, failedAttempts float64 }

// isError says whether requestsMetric's status is an error status: the
// others are "routed" and answers of the gateway's own that are not
// errors (a token estimate).
func isError(status string) bool {
	n, err := strconv.Atoi(status)
	return err == nil && n >= 400
}

func (t totals) provider(name string) *counts {
	c := t.byProvider[name]
	if c == nil {
		c = &counts{}
		t.byProvider[name] = c
	}
	return c
}

func (t totals) requests() float64 {
	var n float64
	for _, c := range t.byProvider {
		n += c.requests
	}
	return n
}

func (t totals) errors() float64 {
	var n float64
	for _, c := range t.byProvider {
		n += c.errors
	}
	return n
}

func (t totals) tokens() float64 { return sum(t.byKey) }

func (t totals) usd() float64 { return sum(t.usdByKey) }

func sum(m map[string]float64) float64 {
	var n float64
	for _, v := range m {
		n += v
	}
	return n
}

// totals reads the counters from the registry /metrics serves.
func (p *Page) totals() totals {
	t := totals{byProvider: map[string]*counts{}, byKey: map[string]float64{}, usdByKey: map[string]float64{},
		mcpCalls: map[string]float64{}, mcpRefused: map[string]float64{}}
	if p.src.Metrics == nil {
		return t
	}
	mfs, err := p.src.Metrics.Gather()
	if err != nil {
		p.src.Logger.Warn("reading metrics for the status page", "err", err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case requestsMetric:
			for _, m := range mf.GetMetric() {
				c := t.provider(label(m, "provider"))
				c.requests += m.GetCounter().GetValue()
				if isError(label(m, "status")) {
					c.errors += m.GetCounter().GetValue()
				}
			}
		case fallbacksMetric:
			for _, m := range mf.GetMetric() {
				t.provider(label(m, "from")).failedAttempts += m.GetCounter().GetValue()
			}
		case mcpCallsMetric:
			for _, m := range mf.GetMetric() {
				t.mcpCalls[label(m, "server")] += m.GetCounter().GetValue()
			}
		case mcpRefusedMetric:
			for _, m := range mf.GetMetric() {
				t.mcpRefused[label(m, "server")] += m.GetCounter().GetValue()
			}
		case costMetric:
			for _, m := range mf.GetMetric() {
				t.usdByKey[label(m, "key")] += m.GetCounter().GetValue()
			}
		case tokensMetric:
			for _, m := range mf.GetMetric() {
				if label(m, "type") != reasoningType {
					t.byKey[label(m, "key")] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return t
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
