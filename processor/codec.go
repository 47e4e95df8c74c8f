package processor

import (
	"fmt"
	"math/bits"
	"sync"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// vtMarshaler is what the vtprotobuf code go-control-plane ships for every
// Envoy message offers: its encoded size and an encoder into a buffer of
// exactly that size, both without protobuf reflection.
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict([]byte) (int, error)
}

// VTProto reports whether this binary was built with the vtprotobuf code
// (go build -tags vtprotobuf, as the Makefile, the Dockerfile and the
// benchmark build it). Without the tag, Codec encodes with the protobuf
// library: the same bytes, more CPU.
func VTProto() bool {
	_, ok := any((*extprocv3.ProcessingResponse)(nil)).(vtMarshaler)
	return ok
}

// Codec is the gRPC codec extproc serves with: the standard protobuf wire
// format, encoded by the generated vtprotobuf marshalers into a pooled
// buffer (marshalBuffers) that gRPC frees once written. Messages without
// them (health checks) fall back to the protobuf library. go-control-plane ships no
// vtprotobuf unmarshalers for ext_proc; Envoy's requests are decoded by
// decodeRequest instead (Unmarshal).
//
// It registers under the name "proto", so the server uses it for every
// stream (grpc.ForceServerCodecV2) and no peer can tell it apart.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Name is the content subtype, the same as the default codec's.
func (Codec) Name() string { return "proto" }

// Marshal encodes v.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(vtMarshaler); ok {
		size := m.SizeVT()
		pool := marshalBuffers
		buf := pool.Get(size)
		n, err := m.MarshalToSizedBufferVTStrict((*buf)[:size])
		if err != nil {
			pool.Put(buf)
			return nil, fmt.Errorf("encoding %T: %w", v, err)
		}
		if n != size {
			pool.Put(buf)
			return nil, fmt.Errorf("encoding %T: wrote %d bytes, sized %d", v, n, size)
		}
		return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("encoding %T: not a protobuf message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// marshalBuffers are Marshal's buffers: pooled, and never cleared. The
// encoder writes every byte of the size it is given (it fills the buffer
// back to front, and Marshal checks it wrote exactly that size), so no
// stale byte can go out. gRPC's default pool clears each buffer it hands
// out, at the capacity of its size class: the 1 MB class for a 256 KB body
// sent back in full-duplex mode, a clear of four times the body per
// request.
var marshalBuffers mem.BufferPool = &dirtyPool{}

// dirtyPool is a BufferPool whose Get does not clear. Its size classes
// are powers of two up to 64 KB, then multiples of 64 KB up to 16 MB, so
// that a buffer held for a body of just over a power of two (a 1 MB body
// and its framing) is not twice the body; larger buffers are not pooled.
type dirtyPool struct {
	classes [linearClass0 + maxPooled/linearStep + 1]sync.Pool
}

const (
	minPooled    = 256
	linearStep   = 64 << 10
	maxPooled    = 16 << 20
	linearClass0 = 16 // classes 0..16 are the powers of two up to 64 KB
)

var _ mem.BufferPool = (*dirtyPool)(nil)

// poolClass is the class of a buffer of n bytes and its capacity; ok is
// false past the largest class.
func poolClass(n int) (class, capacity int, ok bool) {
	switch {
	case n <= linearStep:
		c := bits.Len(uint(max(n, minPooled) - 1))
		return c, 1 << c, true
	case n <= maxPooled:
		k := (n + linearStep - 1) / linearStep
		return linearClass0 + k, k * linearStep, true
	}
	return 0, 0, false
}

// Get returns a buffer of length n, its content undefined.
func (p *dirtyPool) Get(n int) *[]byte {
	c, capacity, ok := poolClass(n)
	if !ok {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, capacity)
	return &b
}

// Put takes back a buffer Get returned.
func (p *dirtyPool) Put(b *[]byte) {
	c, capacity, ok := poolClass(cap(*b))
	if !ok || capacity != cap(*b) {
		return
	}
	p.classes[c].Put(b)
}

// Unmarshal decodes data into v. Envoy's ProcessingRequest is decoded
// without reflection (decodeRequest), other messages by the protobuf
// library.
//
// A message that arrived in one buffer is read in place and its body
// copied out: gRPC returns that buffer to its pool after this call. A
// message split across buffers (a body of more than one HTTP/2 frame) is
// gathered into one buffer and its body is left there. Read into a
// received (serveStream does), that buffer comes from bodyBuffers, is not
// cleared, and goes back once the message has been answered; read into a
// bare ProcessingRequest, it is the body's own. The gathering is the one
// copy of the body extproc makes; gRPC's pooled MaterializeToBuffer would
// clear a buffer of the next pool size (1 MB for a 256 KB body) before
// copying into it, and the library would copy the body again.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *received:
		return m.unmarshal(data)
	case *extprocv3.ProcessingRequest:
		if len(data) > 1 {
			// Gathered once, for the fast path or the library.
			b := data.Materialize()
			if decodeRequest(b, m, true) {
				return nil
			}
			return proto.Unmarshal(b, m)
		}
		if decodeRequest(data[0].ReadOnlyData(), m, false) {
			return nil
		}
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("decoding into %T: not a protobuf message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// received is one of Envoy's messages as serveStream reads it: the request,
// and the pooled buffer its body lies in when it came in pieces. It is a
// proto.Message itself (the request's methods), so that any other codec
// decodes into the request.
type received struct {
	extprocv3.ProcessingRequest
	buf *[]byte
}

func (r *received) unmarshal(data mem.BufferSlice) error {
	if len(data) < 2 {
		var b []byte
		if len(data) == 1 {
			b = data[0].ReadOnlyData()
		}
		if decodeRequest(b, &r.ProcessingRequest, false) {
			return nil
		}
		return proto.Unmarshal(b, &r.ProcessingRequest)
	}
	buf := bodyBuffers.Get(data.Len())
	data.CopyTo(*buf)
	if decodeRequest(*buf, &r.ProcessingRequest, true) {
		r.buf = buf
		return nil
	}
	defer bodyBuffers.Put(buf) // the library copies what it keeps
	return proto.Unmarshal(*buf, &r.ProcessingRequest)
}

// release gives the message's buffer back: nothing may read the message's
// body after it.
func (r *received) release() {
	if r.buf == nil {
		return
	}
	if poisonReleased {
		clear(*r.buf)
	}
	bodyBuffers.Put(r.buf)
	r.buf = nil
}

// bodyBuffers hold the bodies Envoy sends in more than one HTTP/2 frame
// while they are decided on: a 256 KB body no longer costs a cleared
// allocation and its garbage per request.
var bodyBuffers = &dirtyPool{}

// poisonReleased clears a buffer as it is released, so that a test that
// reads a body after its message was answered sees zeros instead of it.
var poisonReleased = false
