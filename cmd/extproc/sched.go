//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// batchThreads gives every thread of the process that runs the normal
// policy SCHED_BATCH instead, keeping its nice value; a thread under
// another policy (real-time, idle) keeps it: someone chose it. A thread
// takes its policy from the thread that starts it, so once every thread
// has it, the threads the runtime starts later have it too; threads
// started while the list is read are found by reading it again.
//
// Why: when Envoy writes to extproc, Linux runs extproc on Envoy's CPU at
// once, interrupting Envoy in the middle of its loop, and Envoy then runs
// again when extproc is done: two switches of Envoy's CPU per message. A
// batch thread does not interrupt the thread it wakes beside; it runs on
// another CPU if one is idle, or when Envoy's loop waits. Measured with
// two CPUs: less of extproc's CPU per 256 KB request in every run, the
// same medians (docs/PERFORMANCE.md, "Tenth round").
func batchThreads() error {
	done := map[int]bool{}
	for {
		tids, err := threadIDs()
		if err != nil {
			return err
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			if err := setBatch(tid); errors.Is(err, unix.ESRCH) {
				continue // it ended
			} else if err != nil {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
}

func setBatch(tid int) error {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return err
	}
	if attr.Policy != unix.SCHED_NORMAL {
		return nil // batch already, or a policy the user chose (real-time, idle)
	}
	attr.Policy = unix.SCHED_BATCH
	return unix.SchedSetAttr(tid, attr, 0)
}

// threadIDs lists the process's threads.
func threadIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
