package bench

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestWakeups: the round trips are measured, each a real wait (more than
// nothing, less than a second), the one across CPUs only where there are
// two, and the report says them.
func TestWakeups(t *testing.T) {
	w := measureWakeups()
	t.Logf("wakeups: %+v", w)
	if runtime.NumCPU() < 2 {
		if w.AcrossCPUs != 0 {
			t.Errorf("one CPU, and a wakeup across CPUs of %v", w.AcrossCPUs)
		}
		w.AcrossCPUs = time.Millisecond // checked no further
	}
	for name, d := range map[string]time.Duration{"across CPUs": w.AcrossCPUs, "on one CPU": w.OneCPU} {
		if d <= 0 || d >= time.Second {
			t.Errorf("wakeup %s: %v", name, d)
		}
	}
	md := Markdown(&Result{Mode: "quick", Machine: Machine{CPUs: 2, Wakeups: w}})
	if !strings.Contains(md, "across CPUs "+orUnmeasured(w.AcrossCPUs)) || !strings.Contains(md, "on one CPU "+orUnmeasured(w.OneCPU)) {
		t.Errorf("the report does not give the wakeups %+v:\n%s", w, md)
	}
}

// TestWakeupOnMissingCPU: a CPU the machine does not have is an error, not
// a measurement.
func TestWakeupOnMissingCPU(t *testing.T) {
	if d, err := wakeupRoundTrip(0, 1023, 10); err == nil {
		t.Errorf("round trip with CPU 1023: %v, no error", d)
	}
}
