package processor

import (
	"strings"
	"testing"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// TestDecisionAllocs keeps the allocations of one whole request through
// Process within budget. The budgets are the measured counts plus about
// half, so they catch a regression (a per-request map, a fmt call, a body
// copy) rather than noise. Not parallel: AllocsPerRun counts every
// allocation in the process.
func TestDecisionAllocs(t *testing.T) {
	srv := newTestServer(t, nil)
	budget := map[string]float64{
		// measured: 25, 34, 32, 35
		"buffered/plain":               38,
		"buffered/rewrite":             51,
		"full_duplex_streamed/plain":   48,
		"full_duplex_streamed/rewrite": 53,
	}
	for _, mode := range []filterv3.ProcessingMode_BodySendMode{buffered, fullDuplex} {
		for _, bc := range benchCases() {
			name := strings.ToLower(mode.String()) + "/" + bc.name
			st := decisionStream(mode, bc)
			got := testing.AllocsPerRun(200, func() { runDecision(t, srv, st) })
			t.Logf("%s: %.0f allocs per request", name, got)
			if got > budget[name] {
				t.Errorf("%s: %.0f allocs per request, budget %.0f", name, got, budget[name])
			}
		}
	}
}
