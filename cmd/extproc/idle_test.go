package main

import (
	"testing"
)

// TestIdleWatch: memory goes back once traffic stops, once per burst,
// never while requests keep arriving.
func TestIdleWatch(t *testing.T) {
	t.Parallel()
	w := idleWatch{last: 0, released: true}
	for _, step := range []struct {
		opened uint64
		want   bool
		what   string
	}{
		{0, false, "idle since the start: nothing to give back"},
		{3, false, "streams opened"},
		{9, false, "still opening"},
		{9, true, "traffic stopped"},
		{9, false, "still idle: released already"},
		{10, false, "one more stream"},
		{10, true, "stopped again"},
	} {
		if got := w.tick(step.opened); got != step.want {
			t.Errorf("%s: tick(%d) = %v, want %v", step.what, step.opened, got, step.want)
		}
	}
}
