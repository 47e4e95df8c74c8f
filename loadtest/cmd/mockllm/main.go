// Command mockllm serves the mock LLM upstream (package mockllm) over HTTP
// until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"switchyard/loadtest/mockllm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		os.Exit(1)
	}
}

type flags struct {
	addr     string
	latency  time.Duration
	chunks   int
	interval time.Duration
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("mockllm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8081", "listen address")
	fs.DurationVar(&f.latency, "latency", mockllm.DefaultLatency, "delay before the first byte of each response")
	fs.IntVar(&f.chunks, "chunks", mockllm.DefaultStreamChunks, "content chunks per streamed response")
	fs.DurationVar(&f.interval, "interval", mockllm.DefaultChunkInterval, "delay between streamed chunks")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if f.latency < 0 {
		errs = append(errs, errors.New("-latency must not be negative"))
	}
	if f.chunks < 1 {
		errs = append(errs, errors.New("-chunks must be at least 1"))
	}
	if f.interval < 0 {
		errs = append(errs, errors.New("-interval must not be negative"))
	}
	return f, errors.Join(errs...)
}

// options maps flags to mockllm.Options, where zero means "default" and a
// negative duration means none.
func (f flags) options() mockllm.Options {
	o := mockllm.Options{Latency: f.latency, StreamChunks: f.chunks, ChunkInterval: f.interval}
	if o.Latency == 0 {
		o.Latency = -1
	}
	if o.ChunkInterval == 0 {
		o.ChunkInterval = -1
	}
	return o
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{
		Handler:           mockllm.New(f.options()),
		ReadHeaderTimeout: 10 * time.Second,
		// Idle keep-alive connections are what a load generator reuses;
		// keep them long enough to last a benchmark stage.
		IdleTimeout: 5 * time.Minute,
	}
	log.Info("serving", "addr", ln.Addr().String(), "latency", f.latency.String(),
		"chunks", f.chunks, "interval", f.interval.String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
