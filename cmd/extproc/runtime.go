package main

import (
	"runtime"
	"runtime/debug"
)

// defaultGOGC is the garbage collector target extproc runs with when the
// GOGC environment variable is not set. Measured (docs/PERFORMANCE.md): at
// the Go default of 100 the collector ran every ~500 requests and took
// about 15 % of extproc's CPU under load; 200 halves the collections for a
// few MB of heap (the live heap is ~3 MB without bodies in flight). 400
// saved more CPU but pushed RSS past the 30 MB target at 500 VUs.
const defaultGOGC = 200

// defaultMemoryLimit is the soft memory limit extproc runs with when the
// GOMEMLIMIT environment variable is not set. Small requests never reach
// it (extproc's heap stays under 20 MB at 500 VUs); agent-sized bodies do,
// and there GOGC=200 alone let the heap grow to three times the bodies in
// flight: 76-81 MB of RSS with 300 connections of 1 MB, 57 MB with this
// limit (docs/PERFORMANCE.md). Over the limit the collector runs more
// often, which costs little here: the bodies are byte slices, which it
// does not scan. A gateway with more in flight than the limit sets
// GOMEMLIMIT to what its host allows (or "off").
const defaultMemoryLimit = 40 << 20

// sharedProcs is how many CPUs extproc runs Go code on when GOMAXPROCS is
// not set: half the machine's, at least one, because Envoy beside it runs a
// worker on every CPU and spends more per request than extproc does. On a
// machine where both have every CPU, a goroutine made runnable wakes an
// idle thread on another CPU, and grpc-go makes one runnable per HTTP/2
// frame (16 per 256 KB body): measured with two CPUs, one saved 14-26 %
// of extproc's CPU per request, small bodies and 256 KB, and no median got
// worse (docs/PERFORMANCE.md). procs is the runtime's own choice: below
// cpus, a CPU limit (a container's) has chosen for extproc alone, and it
// stands.
func sharedProcs(cpus, procs int) int {
	if procs < cpus {
		return procs
	}
	return max(1, cpus/2)
}

// applyRuntimeDefaults sets extproc's garbage collector target, memory
// limit and CPUs, each unless the user chose it with GOGC, GOMEMLIMIT or
// GOMAXPROCS (getenv is os.Getenv). The values in force are exported as
// the go_gc_gogc_percent, go_gc_gomemlimit_bytes and go_sched_gomaxprocs_threads
// metrics.
func applyRuntimeDefaults(getenv func(string) string) {
	if getenv("GOMAXPROCS") == "" {
		if n := sharedProcs(runtime.NumCPU(), runtime.GOMAXPROCS(0)); n != runtime.GOMAXPROCS(0) {
			runtime.GOMAXPROCS(n)
		}
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// keyMemory is the heap one key of the key store holds, doubled: 193 bytes
// measured (its compiled lookup entry; the stored records are read,
// compiled and dropped), and as much again while a change builds the next
// set beside the current one.
const keyMemory = 400

// memoryLimitForKeys raises the default memory limit by what the key
// store's keys hold, unless the user chose the limit with GOMEMLIMIT: the
// limit is sized for bodies in flight, and 100,000 keys (19 MB) beside a
// 40 MB limit would keep the collector running all the time.
func memoryLimitForKeys(getenv func(string) string) func(keys int) {
	if getenv("GOMEMLIMIT") != "" {
		return nil
	}
	return func(keys int) { debug.SetMemoryLimit(defaultMemoryLimit + int64(keys)*keyMemory) }
}
