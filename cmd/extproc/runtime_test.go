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

func TestMemoryLimitForKeys(t *testing.T) {
	if memoryLimitForKeys(func(k string) string { return map[string]string{"GOMEMLIMIT": "1GiB"}[k] }) != nil {
		t.Error("a GOMEMLIMIT the user set is overridden")
	}
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	memoryLimitForKeys(func(string) string { return "" })(100_000)
	if got, want := debug.SetMemoryLimit(-1), int64(defaultMemoryLimit+100_000*keyMemory); got != want {
		t.Errorf("memory limit with 100,000 keys = %d, want %d", got, want)
	}
}
