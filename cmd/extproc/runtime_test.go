package main

import (
	"runtime/debug"
	"testing"
)

// Not parallel: the GC percent is process-wide.
func TestApplyRuntimeDefaults(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	applyRuntimeDefaults(getenv)
	if got := debug.SetGCPercent(100); got != defaultGOGC {
		t.Errorf("GC percent %d, want the default %d", got, defaultGOGC)
	}

	// A user's GOGC is the runtime's business: extproc leaves it alone.
	env["GOGC"] = "off"
	applyRuntimeDefaults(getenv)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent changed to %d although GOGC was set", got)
	}
}
