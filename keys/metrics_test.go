package keys

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricNames(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.changes.WithLabelValues("create_key", "ok").Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		got = append(got, f.GetName())
	}
	want := []string{"switchyard_admin_changes_total", "switchyard_key_store_errors_total", "switchyard_key_store_keys",
		"switchyard_key_store_reloads_total", "switchyard_key_store_teams", "switchyard_key_store_up"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric names (-want +got)\n%s", diff)
	}
}
