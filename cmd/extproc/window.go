package main

import "fmt"

// HTTP/2 flow-control windows of the ext_proc server. grpc-go returns a
// connection's window as frames arrive and a stream's as its handler reads
// them (and grants a handler waiting for a bigger message the rest at
// once), so the connection window is what paces Envoy: with 16 MiB Envoy
// wrote bodies as fast as it could and (most likely) extproc read them
// into buffers faster than it could decide them. 1 MiB (docs/perf/issue19/round4-trip.md): at 300
// connections of 256 KB bodies extproc's peak RSS fell from 63-71 MB to
// 52-61, at 50 connections CPU and latency did not move, and at 300
// connections of 1 MB Envoy spent half the CPU per request but held the
// bodies waiting for the window instead (its RSS 420 -> 740 MB).
const (
	defaultStreamWindow = 1 << 20
	defaultConnWindow   = 1 << 20
	// minWindow is HTTP/2's initial window; grpc-go ignores a smaller one.
	minWindow = 1 << 16
	// maxWindow is HTTP/2's largest window.
	maxWindow = 1<<31 - 1
)

func checkWindow(name string, v uint) error {
	if v < minWindow || v > maxWindow {
		return fmt.Errorf("%s must be between %d and %d bytes, not %d", name, minWindow, maxWindow, v)
	}
	return nil
}

// defaultStreamWorkers goroutines serve ext_proc streams and are reused,
// each keeping the stack it grew: a stream lives as long as its request
// (the upstream's answer included), so they cover 64 requests in flight,
// and beyond them grpc-go starts a goroutine per stream as before. At 50
// agents (docs/PERFORMANCE.md, fourth round) it took 11-17 µs (14-21 %) off
// extproc's CPU per 1 KB request and 16 per 256 KB one; the stacks cost
// extproc up to 5 MB more at 300 connections of 1 MB.
const defaultStreamWorkers = 64
