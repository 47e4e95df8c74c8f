package deploy

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"switchyard/internal/testkit"
)

const dashboardFile = "grafana/dashboards/switchyard.json"

// TestDashboardShape: the Grafana dashboard decodes, its panels have ids
// of their own, every query goes to the dashboard's Prometheus variable and
// selects Switchyard's series, and it charts what operators ask for.
// (e2e/dashboard_test.go checks each series exists in a live /metrics.)
func TestDashboardShape(t *testing.T) {
	t.Parallel()
	d, err := testkit.ReadDashboard(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if d.UID != "switchyard" {
		t.Errorf("uid %q, want switchyard (links and the provisioned home dashboard use it)", d.UID)
	}
	ids := map[int]string{}
	for _, p := range d.AllPanels() {
		if other, ok := ids[p.ID]; ok || p.ID == 0 {
			t.Errorf("panel %q has id %d, as %q", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		for _, tg := range p.Targets {
			for _, ds := range []string{string(p.Datasource), string(tg.Datasource)} {
				if compact(ds) != `{"type":"prometheus","uid":"${datasource}"}` {
					t.Errorf("panel %q queries data source %s, want the ${datasource} variable", p.Title, ds)
				}
			}
		}
	}
	var names []string
	for _, e := range d.Exprs() {
		got := testkit.MetricNames(e)
		if len(got) == 0 {
			t.Errorf("no metric in %q", e)
		}
		for _, n := range got {
			if !strings.HasPrefix(n, "switchyard_") {
				t.Errorf("%q selects %s, not a Switchyard series", e, n)
			}
		}
		names = append(names, got...)
	}
	for _, want := range []string{
		"switchyard_requests_total",                     // traffic, errors by status and provider
		"switchyard_request_duration_seconds_bucket",    // latency
		"switchyard_time_to_first_token_seconds_bucket", // time to first token
		"switchyard_tokens_total",                       // tokens by key and model
		"switchyard_fallbacks_total",
		"switchyard_upstream_answers_total", // errors by provider and status
		"switchyard_provider_ejections_total",
		"switchyard_hooks_errors_total",
		"switchyard_config_reloads_total",
		"switchyard_cost_usd_total", // spend by key and model
	} {
		if !slices.Contains(names, want) {
			t.Errorf("the dashboard charts no %s", want)
		}
	}
}

// TestGrafanaProvisioning: Grafana's provisioning names the Prometheus the
// dashboard's queries default to and loads the dashboards from where
// docker-compose.yaml mounts them (loadtest/compose_test.go checks the
// mounts).
func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	var ds struct {
		Datasources []struct{ Name, UID, Type, URL string } `yaml:"datasources"`
	}
	decodeYAML(t, "grafana/provisioning/datasources/switchyard.yaml", &ds)
	types := map[string]string{}
	for _, d := range ds.Datasources {
		types[d.Type] = d.URL
	}
	if types["prometheus"] != "http://prometheus:9090" || types["jaeger"] != "http://jaeger:16686" {
		t.Errorf("data sources %+v, want the compose Prometheus and Jaeger", ds.Datasources)
	}
	var dash struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	decodeYAML(t, "grafana/provisioning/dashboards/switchyard.yaml", &dash)
	if len(dash.Providers) != 1 || dash.Providers[0].Type != "file" || dash.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard providers %+v, want one file provider at /var/lib/grafana/dashboards", dash.Providers)
	}
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
}

func compact(s string) string { return strings.Join(strings.Fields(s), "") }
