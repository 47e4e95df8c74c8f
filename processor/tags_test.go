package processor

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTagSeriesAreBounded: tag keys and values beyond the caps fold into
// _other instead of growing the exposition.
func TestTagSeriesAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for i := 0; i < 200; i++ {
		m.countTags(map[string]string{"team": fmt.Sprint("t", i)})
	}
	for i := 0; i < 40; i++ {
		m.countTags(map[string]string{fmt.Sprint("k", i): "v"})
	}
	m.countTags(map[string]string{"team": "t1"})
	series, err := testutil.GatherAndCount(reg, "switchyard_tagged_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	// team: 64 values + _other; 15 more keys; then one _other/_other.
	if want := maxValuesPerKey + 1 + (maxTagKeys - 1) + 1; series != want {
		t.Errorf("%d tag series, want %d", series, want)
	}
	if got := testutil.ToFloat64(m.tagged.WithLabelValues("team", "t1")); got != 2 {
		t.Errorf("team=t1 counted %v times, want 2", got)
	}
	if got := testutil.ToFloat64(m.tagged.WithLabelValues("team", otherLabel)); got != 200-maxValuesPerKey {
		t.Errorf("team=_other counted %v, want %d", got, 200-maxValuesPerKey)
	}
	if got := testutil.ToFloat64(m.tagged.WithLabelValues(otherLabel, otherLabel)); got != 40-(maxTagKeys-1) {
		t.Errorf("_other keys counted %v, want %d", got, 40-(maxTagKeys-1))
	}
	// The exposition holds exactly the series the caps allow: the first
	// values of team, the first keys, and _other for the rest.
	want := map[string]bool{"team=" + otherLabel: true, otherLabel + "=" + otherLabel: true}
	for i := 0; i < maxValuesPerKey; i++ {
		want[fmt.Sprint("team=t", i)] = true
	}
	for i := 0; i < maxTagKeys-1; i++ {
		want[fmt.Sprint("k", i, "=v")] = true
	}
	if diff := cmp.Diff(want, taggedSeries(t, reg)); diff != "" {
		t.Errorf("tag series (-want +got):\n%s", diff)
	}
}

// taggedSeries gathers reg and returns the tag=value pairs of
// switchyard_tagged_requests_total.
func taggedSeries(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_tagged_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			got[labels["tag"]+"="+labels["value"]] = true
		}
	}
	return got
}
