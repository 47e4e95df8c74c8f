// Command bodymodule is a library Envoy loads (a dynamic module,
// envoy.filters.http.dynamic_modules) to read a big request body where it
// already is: Envoy buffers the body, the module summarizes it with the
// gateway's own scan (bodyscan.Stream, bodyscan.AppendSummary) into
// dynamic metadata (routing.BodyNamespace), and extproc plans the request
// from its headers and the summary, without the body travelling to it.
// extproc asks for the body when the plan needs more of it
// (processor.decideFromSummary).
//
//	go build -buildmode=c-shared -o libswitchyard_body.so ./cmd/bodymodule
//
// Envoy must be the version whose ABI hooks.c declares (1.40).
package main

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct { const char *ptr; size_t length; } sy_buffer;

// sy_job is a body, or the piece of one Envoy is handing over, for the
// Go side to scan: Envoy's slices of it (at a body's end, the first
// buffered of them are the body Envoy buffered), the request's scan so far
// (a bodyscan.Stream; NULL: none, the body is scanned whole), and room for
// the summary. done turns 1 when the Go side has finished.
typedef struct {
	const sy_buffer *slices;
	size_t count, buffered;
	void *scan;
	char *summary;
	size_t summary_cap, summary_len;
	uint32_t done;
} sy_job;

extern sy_buffer sy_namespace, sy_key;
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"switchyard/bodyscan"
	"switchyard/routing"
)

// scratch is what summarizing one body uses, pooled: its slices as Go
// sees them, and room for the summary.
type scratch struct {
	pieces  [][]byte
	summary []byte
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// scanSize is the size of a request's scan, which Envoy's thread keeps
// for a body it hands over piece by piece (zeroed: a bodyscan.Stream is
// ready so, and holds no Go pointers).
//
//export scanSize
func scanSize() C.size_t { return C.size_t(unsafe.Sizeof(bodyscan.Stream{})) }

// scanPiece scans j, the piece of a body Envoy is handing over, into its
// request's scan, first passing the Go scheduler with pass (hooks.c says
// when and why). false: the scan broke (its request gets no summary).
//
//export scanPiece
func scanPiece(j *C.sy_job, pass C.bool) (ok C.bool) {
	if pass {
		runtime.Gosched()
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	s := (*bodyscan.Stream)(j.scan)
	for _, p := range unsafe.Slice(j.slices, j.count) {
		s.Write(bytesOf(p))
	}
	return true
}

// summarizeHere summarizes j on the calling Envoy thread, first passing
// the Go scheduler with pass (hooks.c says when and why).
//
//export summarizeHere
func summarizeHere(j *C.sy_job, pass C.bool) {
	if pass {
		runtime.Gosched()
	}
	summarize(j)
}

// startSummarizer names where summaries go and starts the goroutine that
// summarizes the jobs Envoy's quiet threads write to jobs (a pipe's read
// end, which it owns; -1: none). false: it did not start.
//
// It also gives the runtime twice as many processors as CPUs, and one:
// each Envoy thread that calls into Go keeps one between calls (hooks.c),
// and with Envoy's default of a thread per CPU the summarizer would
// otherwise wait for the runtime's monitor to take one back, up to 10 ms.
//
//export startSummarizer
func startSummarizer(jobs C.int) C.bool {
	C.sy_namespace = cString(routing.BodyNamespace)
	C.sy_key = cString(routing.BodySummaryKey)
	if jobs < 0 {
		return false
	}
	if syscall.SetNonblock(int(jobs), true) != nil {
		syscall.Close(int(jobs))
		return false
	}
	f := os.NewFile(uintptr(jobs), "switchyard body jobs")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return false
	}
	runtime.GOMAXPROCS(2*runtime.NumCPU() + 1)
	go summarizeJobs(rc)
	return true
}

// summarizeJobs summarizes the jobs it reads, each in turn, and wakes the
// thread waiting for each. It makes raw system calls only: another kind
// wakes the runtime's monitor when it sleeps.
func summarizeJobs(rc syscall.RawConn) {
	var batch [64]*C.sy_job
	const size = unsafe.Sizeof(batch[0])
	for {
		var n uintptr
		var errno syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&batch[0])), unsafe.Sizeof(batch))
			return errno != syscall.EAGAIN
		})
		if errno == syscall.EINTR {
			continue
		}
		// Envoy keeps the write end open and writes whole pointers, so
		// this does not happen; if it did, a thread that had written a job
		// would wait for ever: better that Envoy stops and says why.
		if err != nil || errno != 0 || n == 0 || n%size != 0 {
			panic(fmt.Sprintf("switchyard body module: reading the summarizer's jobs: %d bytes, %v, %v", n, errno, err))
		}
		for _, j := range batch[:n/size] {
			summarize(j)
			done := (*uint32)(unsafe.Pointer(&j.done))
			atomic.StoreUint32(done, 1)
			const futexWakePrivate = 1 | 128
			syscall.RawSyscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(done)), futexWakePrivate, 1, 0, 0, 0)
		}
	}
}

// summarize writes into j the summary of its body, if it has one and it
// fits (summaryOf). A body the scan refuses gets none: extproc then asks
// for it, and refuses it in its own words.
func summarize(j *C.sy_job) {
	// A panic here would end Envoy; without a summary extproc asks for
	// the body and reads it itself.
	defer func() {
		if recover() != nil {
			j.summary_len = 0
		}
	}()
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	sc.pieces = sc.pieces[:0]
	for _, p := range unsafe.Slice(j.slices, j.count) {
		sc.pieces = append(sc.pieces, bytesOf(p))
	}
	var whole bodyscan.Stream
	s, scanned := &whole, 0
	if j.scan != nil {
		s, scanned = (*bodyscan.Stream)(j.scan), int(j.buffered)
	}
	summary, ok := summaryOf(sc.summary[:0], s, sc.pieces, scanned)
	sc.summary = summary
	if ok && len(summary) <= int(j.summary_cap) {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(j.summary)), len(summary)), summary)
		j.summary_len = C.size_t(len(summary))
	}
}

// summaryOf appends the summary of the body in pieces to dst, finishing s,
// which has read the first scanned pieces and nothing else, with the rest
// and taking the summary's values from the pieces. false: none (the scan
// refused the body, or s has read other than those pieces: Envoy's
// buffered body is not what was scanned, so no summary may speak for it).
func summaryOf(dst []byte, s *bodyscan.Stream, pieces [][]byte, scanned int) ([]byte, bool) {
	n := 0
	for _, p := range pieces[:scanned] {
		n += len(p)
	}
	if n != s.Len() {
		return dst, false
	}
	for _, p := range pieces[scanned:] {
		s.Write(p)
	}
	return bodyscan.AppendSummary(dst, s.End(), func(dst []byte, v bodyscan.Span) []byte {
		return appendSpan(dst, pieces, v)
	})
}

// appendSpan appends the bytes of the body at v, from its pieces.
func appendSpan(dst []byte, pieces [][]byte, v bodyscan.Span) []byte {
	at := 0
	for _, b := range pieces {
		if from, to := max(v.Start-at, 0), min(v.End-at, len(b)); from < to {
			dst = append(dst, b[from:to]...)
		}
		if at += len(b); at >= v.End {
			break
		}
	}
	return dst
}

func bytesOf(p C.sy_buffer) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p.ptr)), int(p.length))
}

func cString(s string) C.sy_buffer {
	return C.sy_buffer{ptr: C.CString(s), length: C.size_t(len(s))}
}

func main() {}
