package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"switchyard/config"
	"switchyard/tracing"
	"switchyard/tracing/export"
)

// traceFlushTimeout bounds how long shutdown waits for the last spans to
// reach the collector.
const traceFlushTimeout = 5 * time.Second

// newTracer sets up the export of traces when the config turns tracing on
// (OTEL_* variables say where to); otherwise it returns nil, and requests
// record nothing. The returned func flushes the spans still batched.
func newTracer(ctx context.Context, tc *config.TracingConfig, log *slog.Logger) (*tracing.Tracer, func(), error) {
	if tc == nil || !tc.Enabled {
		return nil, func() {}, nil
	}
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		// The standard switch to turn OpenTelemetry off without a config change.
		log.Info("tracing is on in the config but OTEL_SDK_DISABLED=true: no traces")
		return nil, func() {}, nil
	}
	// Spans that cannot be sent are dropped, never a request's failure.
	t, shutdown, err := export.Setup(ctx, tc.CaptureContent, func(err error) {
		log.Warn("exporting traces", slog.String("error", err.Error()))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("setting up tracing: %w", err)
	}
	log.Info("tracing requests", slog.Bool("capture_content", tc.CaptureContent))
	return t, func() {
		ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("flushing traces", slog.String("error", err.Error()))
		}
	}, nil
}
