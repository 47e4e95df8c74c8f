package testkit

import (
	"slices"
	"testing"
)

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (provider) (rate(switchyard_requests_total{provider=~"$provider"}[$__rate_interval]))`, []string{"switchyard_requests_total"}},
		{`histogram_quantile(0.95, sum by (le, provider) (rate(a_seconds_bucket{x="by (y)"}[5m])))`, []string{"a_seconds_bucket"}},
		{`sum(rate(a_total{status!="routed"}[1m])) / clamp_min(sum(rate(b_total[1m])), 1e-9)`, []string{"a_total", "b_total"}},
		{`min(up) and on (job) max without (instance) (c_gauge) > bool 0`, []string{"c_gauge", "up"}},
		{`label_values(switchyard_tokens_total, key)`, []string{"switchyard_tokens_total"}},
		{`increase(d_total[$__range]) offset 5m`, []string{"d_total"}},
	} {
		if got := MetricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("MetricNames(%s) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
