// Command bodymodule is a library Envoy loads (a dynamic module,
// envoy.filters.http.dynamic_modules) to read a big request body where it
// already is: Envoy buffers the body, the module summarizes it with the
// gateway's own scan (bodyscan.Summary) into dynamic metadata
// (routing.BodyNamespace), and extproc plans the request from its headers
// and the summary, without the body travelling to it. extproc asks for the
// body when the plan needs more of it (processor.decideFromSummary).
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

size_t sy_body_chunks_size(uintptr_t filter, int body_type);
bool sy_body_chunks(uintptr_t filter, int body_type, sy_buffer *out);
void sy_set_metadata(uintptr_t filter, sy_buffer ns, sy_buffer key, sy_buffer value);
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"

	"switchyard/bodyscan"
	"switchyard/routing"
)

// The body Envoy holds: what it buffered, and the chunk of this call.
const (
	receivedBody = 0
	bufferedBody = 1
)

// scratch is what summarizing one body uses, pooled: the buffer its
// slices are gathered into, the slices, and the summary.
type scratch struct {
	body, summary []byte
	slices        []C.sy_buffer
}

var scratches = sync.Pool{New: func() any { return &scratch{slices: make([]C.sy_buffer, 64)} }}

// summarizeBody leaves the summary of the request body Envoy buffered
// (and, with received, the chunk being handed to the filter) in the
// request's dynamic metadata. A body the scan refuses gets none: extproc
// then asks for it, and refuses it in its own words. With yield, the call
// first passes the Go scheduler.
//
//export summarizeBody
func summarizeBody(filter C.uintptr_t, received, yield C.bool) {
	if yield {
		runtime.Gosched() // see yieldDue in hooks.c
	}
	// A panic here would end Envoy; without a summary extproc asks for
	// the body and reads it itself.
	defer func() { _ = recover() }()
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	sc.body = sc.appendBody(sc.body[:0], filter, bufferedBody)
	if received {
		sc.body = sc.appendBody(sc.body, filter, receivedBody)
	}
	var ok bool
	if sc.summary, ok = bodyscan.Summary(sc.summary[:0], sc.body); ok {
		C.sy_set_metadata(filter, buffer(routing.BodyNamespace), buffer(routing.BodySummaryKey), bytesBuffer(sc.summary))
	}
}

// appendBody appends the slices of one of the request's bodies to dst.
func (sc *scratch) appendBody(dst []byte, filter C.uintptr_t, which C.int) []byte {
	n := int(C.sy_body_chunks_size(filter, which))
	if n == 0 {
		return dst
	}
	if n > len(sc.slices) {
		sc.slices = make([]C.sy_buffer, n)
	}
	if !C.sy_body_chunks(filter, which, &sc.slices[0]) {
		return dst
	}
	for _, s := range sc.slices[:n] {
		dst = append(dst, unsafe.Slice((*byte)(unsafe.Pointer(s.ptr)), int(s.length))...)
	}
	clear(sc.slices[:n]) // Envoy's slices are its own again after this call
	return dst
}

func buffer(s string) C.sy_buffer {
	return C.sy_buffer{ptr: (*C.char)(unsafe.Pointer(unsafe.StringData(s))), length: C.size_t(len(s))}
}

func bytesBuffer(b []byte) C.sy_buffer {
	return C.sy_buffer{ptr: (*C.char)(unsafe.Pointer(unsafe.SliceData(b))), length: C.size_t(len(b))}
}

func main() {}
