package main

import "runtime/debug"

// defaultGOGC is the garbage collector target extproc runs with when the
// GOGC environment variable is not set. Measured (docs/PERFORMANCE.md): at
// the Go default of 100 the collector ran every ~500 requests and took
// about 15 % of extproc's CPU under load; 200 halves the collections for a
// few MB of heap (the live heap is ~3 MB without bodies in flight). 400
// saved more CPU but pushed RSS past the 30 MB target at 500 VUs. No
// default memory limit: with buffered 10 MB bodies in flight the live heap
// is the traffic's, and a limit below it would make the collector run
// continuously.
const defaultGOGC = 200

// applyRuntimeDefaults sets extproc's garbage collector target unless the
// user chose one with GOGC (getenv is os.Getenv). The value in force is
// exported as the go_gc_gogc_percent metric.
func applyRuntimeDefaults(getenv func(string) string) {
	if getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(defaultGOGC)
}
