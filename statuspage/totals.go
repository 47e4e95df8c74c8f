package statuspage

import (
	dto "github.com/prometheus/client_model/go"
)

// The series the totals are read from (processor/metrics.go and
// processor/usagemetrics.go declare them).
const (
	requestsMetric = "switchyard_requests_total"
	tokensMetric   = "switchyard_tokens_total"
	// routedStatus is requestsMetric's status of a request sent upstream;
	// any other is the error status the client got.
	routedStatus = "routed"
	// reasoningType is a token type already part of output.
	reasoningType = "reasoning"
)

// totals are the request and token counters at one moment.
type totals struct {
	byProvider map[string]*counts // "" : refused before a provider was chosen
	byKey      map[string]float64 // tokens billed, "" for requests without a client key
}

type counts struct{ requests, errors float64 }

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

func (t totals) tokens() float64 {
	var n float64
	for _, v := range t.byKey {
		n += v
	}
	return n
}

// totals reads the counters from the registry /metrics serves.
func (p *Page) totals() totals {
	t := totals{byProvider: map[string]*counts{}, byKey: map[string]float64{}}
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
				c := t.byProvider[label(m, "provider")]
				if c == nil {
					c = &counts{}
					t.byProvider[label(m, "provider")] = c
				}
				c.requests += m.GetCounter().GetValue()
				if label(m, "status") != routedStatus {
					c.errors += m.GetCounter().GetValue()
				}
			}
		// COST PLACEHOLDER: once switchyard_cost_usd_total{key,provider,model}
		// exists, sum it by key here (a usd map beside byKey) and show it in
		// the client keys' table and the traffic tiles.
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
