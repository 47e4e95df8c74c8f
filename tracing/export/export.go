// Package export sends the gateway's traces over OTLP, configured by the
// standard OpenTelemetry environment variables. It is apart from package
// tracing so that only the binary that exports links the exporters: the
// OTLP gRPC exporter registers gRPC's gzip compressor, which changes what
// a gRPC client in the same process advertises on every call.
package export

import (
	"cmp"
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"switchyard/tracing"
)

// ServiceName is the service.name of extproc's spans unless
// OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) names another.
const ServiceName = "switchyard"

// Setup makes the Tracer of a process: an OTLP exporter in the protocol
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL names
// (grpc, or http/protobuf, the default), sending where the OTEL_EXPORTER_OTLP_*
// variables say, behind a batching processor (OTEL_BSP_*), sampling as
// OTEL_TRACES_SAMPLER says (default: the parent's decision, else always).
// shutdown flushes the spans still batched. onError hears of spans that
// could not be sent (they are dropped); nil leaves OpenTelemetry's default.
func Setup(ctx context.Context, content bool, onError func(error)) (t *tracing.Tracer, shutdown func(context.Context) error, err error) {
	exp, err := newExporter(ctx)
	if err != nil {
		return nil, nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", ServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, nil, fmt.Errorf("describing the service for traces: %w", err)
	}
	if onError != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(onError))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tracing.New(tp, content), tp.Shutdown, nil
}

func newExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	protocol := cmp.Or(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf")
	switch protocol {
	case "grpc":
		return otlptracegrpc.New(ctx)
	case "http/protobuf":
		return otlptracehttp.New(ctx)
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
}
