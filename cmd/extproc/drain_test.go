package main

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitQuiet(t *testing.T) {
	t.Parallel()
	const quiet = 200 * time.Millisecond
	var n atomic.Uint64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				n.Add(1)
			}
		}
	}()
	start := time.Now()
	if waitQuiet(n.Load, quiet, 300*time.Millisecond) {
		t.Error("quiet reported while streams kept opening")
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("returned after %v, before the limit", took)
	}
	close(stop)
	stoppedAt := time.Now()
	if !waitQuiet(n.Load, quiet, 10*time.Second) {
		t.Error("no quiet reported after the streams stopped")
	}
	if took := time.Since(stoppedAt); took < quiet {
		t.Errorf("quiet after %v, shorter than %v", took, quiet)
	}
}
