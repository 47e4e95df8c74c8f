package main

import (
	"context"
	"runtime/debug"
	"time"
)

// idleRelease is how long extproc must see no new request before it hands
// the memory big request bodies left behind back to the OS.
const idleRelease = 3 * time.Second

// releaseWhenIdle calls release (debug.FreeOSMemory: a collection, then
// every free page returned) once extproc has opened no stream between two
// ticks, and again only after traffic has come and gone. Without it the
// heap that a burst of agent-sized bodies grew stays resident until the
// next collection, which an idle process does not run; with it nothing
// runs while requests flow.
func releaseWhenIdle(ctx context.Context, ticks <-chan time.Time, opened func() uint64, release func()) {
	w := idleWatch{last: opened(), released: true}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			if w.tick(opened()) {
				release()
			}
		}
	}
}

// idleWatch tells, tick by tick, when traffic has stopped.
type idleWatch struct {
	last     uint64 // streams opened at the last tick
	released bool   // released since the last stream
}

// tick takes the streams opened so far and reports whether to release now.
func (w *idleWatch) tick(opened uint64) bool {
	if opened != w.last {
		w.last, w.released = opened, false
		return false
	}
	if w.released {
		return false
	}
	w.released = true
	return true
}

// releaseMemory collects twice and returns every free page to the OS: the
// body and answer buffers pooled in sync.Pools survive one collection (in
// the pools' victim caches) and go with the second.
func releaseMemory() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}
