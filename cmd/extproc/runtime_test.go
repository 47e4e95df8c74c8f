package main

import (
	"math"
	"runtime"
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

func TestSharedProcs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ cpus, procs, want int }{
		{1, 1, 1},
		{2, 2, 1},
		{3, 3, 1},
		{16, 16, 8},
		{16, 4, 4}, // a container's CPU limit chose 4 for extproc alone
		{2, 1, 1},
	} {
		if got := sharedProcs(c.cpus, c.procs); got != c.want {
			t.Errorf("sharedProcs(%d CPUs, runtime's %d) = %d, want %d", c.cpus, c.procs, got, c.want)
		}
	}
}

// Not parallel: GOMAXPROCS is process-wide.
func TestApplyRuntimeDefaultsProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(runtime.NumCPU())
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })

	applyRuntimeDefaults(func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	})
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU() {
		t.Errorf("GOMAXPROCS changed to %d although the environment set it", got)
	}
	applyRuntimeDefaults(func(string) string { return "" })
	if got, want := runtime.GOMAXPROCS(0), sharedProcs(runtime.NumCPU(), runtime.NumCPU()); got != want {
		t.Errorf("GOMAXPROCS %d, want %d of %d CPUs", got, want, runtime.NumCPU())
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
