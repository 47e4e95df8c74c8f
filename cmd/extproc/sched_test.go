//go:build linux

package main

import (
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBatchThreads: after batchThreads every thread of the process has the
// batch policy and its nice value, and so do the threads the runtime
// starts afterwards.
func TestBatchThreads(t *testing.T) {
	before := policies(t)
	if err := batchThreads(); err != nil {
		t.Fatal(err)
	}
	// Goroutines locked to their threads while they sleep in a system
	// call make the runtime start new threads.
	var started, release sync.WaitGroup
	release.Add(1)
	for range 4 {
		started.Add(1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started.Done()
			release.Wait()
			time.Sleep(time.Millisecond)
		}()
	}
	started.Wait()
	after := policies(t)
	release.Done()
	if len(after) <= len(before) {
		t.Logf("threads: %d before, %d after", len(before), len(after))
	}
	for tid, a := range after {
		if a.Policy != unix.SCHED_BATCH {
			t.Errorf("thread %d: policy %d, want SCHED_BATCH (%d)", tid, a.Policy, unix.SCHED_BATCH)
		}
		if b, ok := before[tid]; ok && b.Nice != a.Nice {
			t.Errorf("thread %d: nice %d, was %d", tid, a.Nice, b.Nice)
		}
	}
}

func policies(t *testing.T) map[int]*unix.SchedAttr {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]*unix.SchedAttr{}
	for _, tid := range tids {
		if a, err := unix.SchedGetAttr(tid, 0); err == nil {
			m[tid] = a
		}
	}
	return m
}

func TestCPUPolicyFlag(t *testing.T) {
	for _, v := range []string{"batch", "normal"} {
		if f, err := parseServeFlags([]string{"-cpu-policy", v}, io.Discard); err != nil || f.cpuPolicy != v {
			t.Errorf("-cpu-policy %s: %+v, %v", v, f.cpuPolicy, err)
		}
	}
	if _, err := parseServeFlags([]string{"-cpu-policy", "fifo"}, io.Discard); err == nil {
		t.Error("-cpu-policy fifo: no error")
	}
}

// TestBatchThreadsKeepChosenPolicy: a thread under another policy than the
// normal one keeps it.
func TestBatchThreadsKeepChosenPolicy(t *testing.T) {
	tids, release, done := make(chan int), make(chan struct{}), make(chan struct{})
	go func() {
		// Never unlocked: the thread ends with the goroutine, and its
		// policy with it.
		runtime.LockOSThread()
		defer close(done)
		tid := unix.Gettid()
		attr, err := unix.SchedGetAttr(tid, 0)
		if err == nil {
			attr.Policy = unix.SCHED_IDLE
			err = unix.SchedSetAttr(tid, attr, 0)
		}
		if err != nil {
			t.Error(err)
			tids <- -1
			return
		}
		tids <- tid
		<-release
	}()
	tid := <-tids
	if tid < 0 {
		return
	}
	err := batchThreads()
	attr, getErr := unix.SchedGetAttr(tid, 0)
	close(release)
	<-done
	if err != nil || getErr != nil {
		t.Fatal(err, getErr)
	}
	if attr.Policy != unix.SCHED_IDLE {
		t.Errorf("a SCHED_IDLE thread now runs policy %d", attr.Policy)
	}
}
