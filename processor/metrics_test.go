package processor

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"switchyard/routing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestMetricsExposition runs a few requests and compares the exposition of
// the request counter and stream gauge with testdata/metrics/requests.golden.
// The decision histogram's buckets depend on timing, so only its count is
// checked.
func TestMetricsExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := compileRouter(t, testConfigYAML)
	srv := New(Options{Router: func() *routing.Router { return r }, Metrics: m})

	var inStream []float64
	type req struct {
		headers []string
		body    string
		duplex  bool
	}
	reqs := []req{
		{post("/v1/chat/completions", bearer(keyTeamB)...), chatBody, false},
		{post("/v1/chat/completions", bearer(keyTeamB)...), chatBody, true},
		{post("/v1/chat/completions", bearer(keyTeamA)...), `{"model":"fast"}`, true},
		{post("/v1/chat/completions", bearer(keyTeamB)...), `{"model":"openai/gpt-4.1"}`, false},
		{post("/v1/chat/completions", bearer(keyTeamB)...), `{"model":"openai/o3"}`, true},
		{post("/v1/messages", "x-api-key", keyTeamB), `{"model":"claude-haiku"}`, true},
		{post("/v1/chat/completions"), chatBody, true},                                                        // 401
		{post("/v1/chat/completions", bearer(keyTeamB)...), `{"model":"nope"}`, false},                        // 404
		{post("/v1/nope", bearer(keyTeamB)...), chatBody, true},                                               // 404
		{post("/v1/chat/completions", bearer(keyTeamB)...), `{"model":"broken"}`, true},                       // 503
		{post("/v1/chat/completions", append(bearer(keyTeamB), "content-encoding", "br")...), chatBody, true}, // 415
	}
	const routedCount = 6
	for _, rq := range reqs {
		mode := buffered
		if rq.duplex {
			mode = fullDuplex
		}
		st := newFakeStream(t.Context(), script(mode, rq.headers, rq.body)...)
		st.onRecv = func() { inStream = append(inStream, testutil.ToFloat64(m.streams)) }
		if err := srv.Process(st); err != nil {
			t.Fatalf("Process: %v", err)
		}
	}
	for i, v := range inStream {
		if v != 1 {
			t.Fatalf("active streams during a stream (recv %d) = %v, want 1", i, v)
		}
	}

	golden := filepath.Join("testdata", "metrics", "requests.golden")
	names := []string{"switchyard_requests_total", "switchyard_extproc_active_streams"}
	compareGolden(t, reg, golden, names)

	// The histogram counts one observation per routed request.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_decision_duration_seconds" {
			continue
		}
		found = true
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != routedCount || h.GetSampleSum() < 0 {
			t.Errorf("decision histogram count %d sum %v, want count %d and a non-negative sum", h.GetSampleCount(), h.GetSampleSum(), routedCount)
		}
	}
	if !found {
		t.Error("switchyard_decision_duration_seconds is not exposed")
	}
	if n := testutil.CollectAndCount(m.requests); n != 8 {
		t.Errorf("switchyard_requests_total has %d series, want 8", n)
	}
}

// writeExposition writes the text exposition of the named families.
// compareGolden compares the named series of reg with the golden file, or
// writes the file with -update.
func compareGolden(t *testing.T, reg *prometheus.Registry, golden string, names []string) {
	t.Helper()
	if *update {
		writeExposition(t, reg, golden, names)
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatalf("opening golden file (run with -update to create it): %v", err)
	}
	defer f.Close()
	if err := testutil.GatherAndCompare(reg, f, names...); err != nil {
		t.Errorf("exposition differs from %s (run with -update if intended):\n%v", golden, err)
	}
}

func writeExposition(t *testing.T, reg *prometheus.Registry, path string, names []string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		for _, n := range names {
			if mf.GetName() == n {
				if err := enc.Encode(mf); err != nil {
					t.Fatalf("encoding %s: %v", n, err)
				}
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
