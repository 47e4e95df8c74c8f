package config

import (
	"net"
	"strings"
)

// TraceCollectorClusterName is Envoy's cluster to tracing.envoy_collector.
const TraceCollectorClusterName = "switchyard_otel_collector"

// TracingConfig is the tracing section: OpenTelemetry traces of every
// request, exported over OTLP. Where extproc sends its spans, in which
// protocol and with which headers and sampler, is set by the standard
// OTEL_* environment variables (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME...), not by the file.
//
//	tracing:
//	  enabled: true
//	  envoy_collector: 127.0.0.1:4317   # optional: Envoy's own spans, OTLP gRPC
//	  capture_content: false            # prompts and answers on the span: off by default
type TracingConfig struct {
	// Enabled turns traces on. Off (or no section), nothing is recorded or
	// allocated per request.
	Enabled bool `yaml:"enabled"`
	// EnvoyCollector is the host:port of an OTLP gRPC collector Envoy
	// sends its own spans to, in the same traces; empty: Envoy traces
	// nothing and extproc continues the client's traceparent itself.
	EnvoyCollector string `yaml:"envoy_collector"`
	// CaptureContent puts the request and answer bodies on the request's
	// span (gen_ai.input.messages, gen_ai.output.messages). They hold what
	// users typed: off unless set.
	CaptureContent bool `yaml:"capture_content"`
}

// Traced reports whether requests are traced.
func (c *Config) Traced() bool { return c.Tracing != nil && c.Tracing.Enabled }

// TraceCollector is where Envoy sends its spans, "" for nowhere.
func (c *Config) TraceCollector() string {
	if !c.Traced() {
		return ""
	}
	return c.Tracing.EnvoyCollector
}

func (tc *TracingConfig) validate(v *validator) {
	if tc == nil || tc.EnvoyCollector == "" {
		return
	}
	p := path{"tracing"}
	host, port, err := net.SplitHostPort(tc.EnvoyCollector)
	if err != nil || host == "" || !isPort(port) || strings.Contains(tc.EnvoyCollector, "/") {
		v.errf(p.key("envoy_collector"), "%q must be host:port (an OTLP gRPC collector)", tc.EnvoyCollector)
	}
}

func tracingEqual(a, b *TracingConfig) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
