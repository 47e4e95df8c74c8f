package e2e

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load says how a load run sends its requests.
type load struct {
	workers int
	// timeout bounds each request, so that a hang shows up as an error
	// instead of stalling the test.
	timeout time.Duration
	// rate, when set, makes the run open-loop: request i is due at
	// start + i/rate whatever earlier answers do. Due requests queue for a
	// free worker; one that finds a second's worth already queued is
	// dropped and counted. (A shorter queue would count the burst that
	// follows any stall of the test process itself as drops.) Zero: each
	// worker sends its next request as soon as it has the answer to the
	// last one.
	rate int
}

// loadEvent is one request of a load run.
type loadEvent struct {
	start, end time.Time
	status     int
	body       []byte // kept for non-200 answers
	err        error
}

// loadRun drives requests from several goroutines until stopped.
type loadRun struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	events  []loadEvent
	failed  int           // events with an error
	changed chan struct{} // closed and replaced whenever an event is added
	dropped atomic.Int64
}

// startLoad runs send from o.workers goroutines until stop. i numbers the
// requests from 0; send's error marks a request as failed.
func startLoad(o load, send func(ctx context.Context, i int64) (result, error)) *loadRun {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadRun{cancel: cancel, changed: make(chan struct{})}
	var next atomic.Int64
	var jobs chan int64
	if o.rate > 0 {
		jobs = make(chan int64, max(o.workers, o.rate))
		l.wg.Add(1)
		go l.pace(ctx, o.rate, jobs)
	}
	for w := 0; w < o.workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				var i int64
				if jobs == nil {
					if ctx.Err() != nil {
						return
					}
					i = next.Add(1) - 1
				} else {
					select {
					case <-ctx.Done():
						return
					case i = <-jobs:
					}
				}
				l.record(send, o.timeout, i)
			}
		}()
	}
	return l
}

// pace queues request numbers at rate per second until ctx ends.
func (l *loadRun) pace(ctx context.Context, rate int, jobs chan<- int64) {
	defer l.wg.Done()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := int64(0); ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select {
		case jobs <- i:
		default:
			l.dropped.Add(1)
		}
		timer.Reset(time.Until(start.Add(time.Duration(i+1) * interval)))
	}
}

func (l *loadRun) record(send func(context.Context, int64) (result, error), timeout time.Duration, i int64) {
	// Not derived from the run's context: stop lets requests in flight finish.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	ev := loadEvent{start: time.Now()}
	r, err := send(ctx, i)
	cancel()
	ev.end, ev.status, ev.err = time.Now(), r.status, err
	if r.status != 200 || err != nil {
		ev.body = r.body
	}
	l.mu.Lock()
	l.events = append(l.events, ev)
	if err != nil {
		l.failed++
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// progress returns how many requests have finished so far and how many of
// them failed.
func (l *loadRun) progress() (done, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events), l.failed
}

// waitRequests waits until n more requests have finished: the load has
// really run for a while (through a change, say), however slow the machine.
func (l *loadRun) waitRequests(t testing.TB, n int) {
	t.Helper()
	l.mu.Lock()
	want := len(l.events) + n
	l.mu.Unlock()
	timeout := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		done, changed := len(l.events), l.changed
		l.mu.Unlock()
		if done >= want {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("only %d of %d requests finished in 30s", done-(want-n), n)
		}
	}
}

// stop ends the run, waits for the requests in flight and returns every
// request's event.
func (l *loadRun) stop() []loadEvent {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events
}

// reportFailures reports the first three requests that did not get a 200,
// saying when they ran, and returns how many did not.
func reportFailures(t testing.TB, events []loadEvent, during string) int {
	t.Helper()
	failed := 0
	for _, ev := range events {
		if ev.err != nil || ev.status != 200 {
			failed++
			if failed <= 3 {
				t.Errorf("request failed %s: %v %d %s", during, ev.err, ev.status, ev.body)
			}
		}
	}
	return failed
}
