package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// Not parallel: the GC percent and memory limit are process-wide.
func TestApplyRuntimeDefaults(t *testing.T) {
	old, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(old); debug.SetMemoryLimit(oldLimit) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	applyRuntimeDefaults(getenv)
	if got := debug.SetGCPercent(100); got != defaultGOGC {
		t.Errorf("GC percent %d, want the default %d", got, defaultGOGC)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != defaultMemoryLimit {
		t.Errorf("memory limit %d, want the default %d", got, defaultMemoryLimit)
	}

	// A user's GOGC is the runtime's business: extproc leaves it alone.
	env["GOGC"], env["GOMEMLIMIT"] = "off", "off"
	applyRuntimeDefaults(getenv)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent changed to %d although GOGC was set", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit changed to %d although GOMEMLIMIT was set", got)
	}
}
