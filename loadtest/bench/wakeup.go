package bench

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// wakeupSamples is how many round trips a wakeup measurement takes.
const wakeupSamples = 1000

// Wakeups are how long a wakeup takes on the machine: the median round
// trip of a byte between two threads over pipes, each thread blocked in
// its read until the other writes. Every hop of a request (client, Envoy,
// extproc, upstream) pays a wakeup, and hosts differ most in the one
// across CPUs, where a sleeping CPU is woken by another's interrupt: on a
// virtual machine that can cost tens of microseconds.
type Wakeups struct {
	AcrossCPUs time.Duration `json:"across_cpus,omitempty"` // threads on CPUs 0 and 1; 0: not measured
	OneCPU     time.Duration `json:"one_cpu,omitempty"`     // both threads on CPU 0; 0: not measured
}

// measureWakeups measures both round trips, leaving out what the machine
// cannot measure (one CPU, or threads it will not pin).
func measureWakeups() Wakeups {
	var w Wakeups
	w.OneCPU, _ = wakeupRoundTrip(0, 0, wakeupSamples)
	if runtime.NumCPU() > 1 {
		w.AcrossCPUs, _ = wakeupRoundTrip(0, 1, wakeupSamples)
	}
	return w
}

// wakeupRoundTrip returns the median of n round trips between a thread on
// CPU a and a thread on CPU b that echoes each byte back.
func wakeupRoundTrip(a, b, n int) (time.Duration, error) {
	var there, back [2]int
	if err := unix.Pipe2(there[:], unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	if err := unix.Pipe2(back[:], unix.O_CLOEXEC); err != nil {
		unix.Close(there[0])
		unix.Close(there[1])
		return 0, err
	}
	ready := make(chan error, 1)
	go echo(b, there[0], back[1], ready)
	// Closing the way there, first, ends the echo, which closes the rest.
	defer unix.Close(back[0])
	defer unix.Close(there[1])
	if err := <-ready; err != nil {
		return 0, err
	}
	result := make(chan roundTrips, 1)
	go pingPong(a, there[1], back[0], n, result)
	r := <-result
	return r.median, r.err
}

type roundTrips struct {
	median time.Duration
	err    error
}

// pinned locks the calling goroutine to its thread and the thread to cpu.
// The goroutine returns without unlocking, so that the thread ends with it
// rather than go on running other goroutines on that CPU alone.
func pinned(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// echo writes back each byte it reads from in until in is closed, then
// closes both; it says on ready whether it could start.
func echo(cpu, in, out int, ready chan<- error) {
	defer unix.Close(in)
	defer unix.Close(out)
	if err := pinned(cpu); err != nil {
		ready <- err
		return
	}
	ready <- nil
	var c [1]byte
	for {
		if n, err := unix.Read(in, c[:]); n != 1 || err != nil {
			return
		}
		if _, err := unix.Write(out, c[:]); err != nil {
			return
		}
	}
}

// pingPong sends a byte to the echo n times, each once the last came back,
// and sends the median round trip on result.
func pingPong(cpu, out, in, n int, result chan<- roundTrips) {
	if err := pinned(cpu); err != nil {
		result <- roundTrips{err: err}
		return
	}
	rtts := make([]time.Duration, n)
	var c [1]byte
	for i := range rtts {
		start := time.Now()
		if _, err := unix.Write(out, c[:]); err != nil {
			result <- roundTrips{err: err}
			return
		}
		if k, err := unix.Read(in, c[:]); k != 1 || err != nil {
			result <- roundTrips{err: fmt.Errorf("reading the echo: %d bytes, %v", k, err)}
			return
		}
		rtts[i] = time.Since(start)
	}
	slices.Sort(rtts)
	result <- roundTrips{median: rtts[n/2]}
}
