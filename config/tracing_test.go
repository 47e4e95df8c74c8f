package config

import (
	"strings"
	"testing"
)

func TestTracingSection(t *testing.T) {
	t.Parallel()
	const providers = "providers: [{name: p, url: 'http://p:1', schema: openai}]\n"
	for _, tc := range []struct {
		name, yaml, collector, err string
		traced                     bool
	}{
		{"absent", "", "", "", false},
		{"off", "tracing: {enabled: false, envoy_collector: '127.0.0.1:4317'}\n", "", "", false},
		{"on, extproc only", "tracing: {enabled: true}\n", "", "", true},
		{"on, with Envoy", "tracing: {enabled: true, envoy_collector: 'otel:4317', capture_content: true}\n", "otel:4317", "", true},
		{"collector without a port", "tracing: {enabled: true, envoy_collector: 'otel'}\n", "", "line 2: tracing.envoy_collector: \"otel\" must be host:port", false},
		{"collector as a URL", "tracing: {enabled: true, envoy_collector: 'http://otel:4317'}\n", "", "must be host:port", false},
		{"unknown field", "tracing: {enabled: true, sampler: always}\n", "", "unknown field \"sampler\"", false},
		{"provider takes the collector's cluster", "tracing: {enabled: true}\nproviders: [{name: x, url: 'http://x:1', schema: openai, cluster: switchyard_otel_collector}]\n", "", "Envoy's own clusters", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			text := providers + tc.yaml
			if strings.HasPrefix(tc.name, "provider takes") {
				text = tc.yaml
			}
			cfg, err := Decode([]byte(text))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Traced() != tc.traced || cfg.TraceCollector() != tc.collector {
				t.Errorf("Traced %v, TraceCollector %q; want %v, %q", cfg.Traced(), cfg.TraceCollector(), tc.traced, tc.collector)
			}
		})
	}
}
