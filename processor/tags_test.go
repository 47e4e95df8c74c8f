package processor

import (
	"fmt"
	"strings"
	"testing"

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
	if strings.Contains(fmt.Sprint(reg), "k39") {
		t.Error("a key past the cap got its own series")
	}
}
