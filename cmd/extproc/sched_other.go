//go:build !linux

package main

import "errors"

// batchThreads: the SCHED_BATCH policy is Linux's (sched.go).
func batchThreads() error { return errors.New("the batch policy needs Linux") }
