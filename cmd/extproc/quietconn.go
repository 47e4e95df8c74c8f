//go:build linux

package main

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// quietListener hands out Envoy's connections with reads and writes that
// stay out of the Go scheduler's system-call path.
//
// Every read or write through package net enters that path, and when
// extproc's processors had all been idle (GOMAXPROCS is 1 on a two-CPU
// host), entering it wakes the runtime's monitor thread with a futex: a
// thread switch for each burst of frames, 18 µs of extproc's CPU per
// 256 KB request in a profile, more in the kernel. A read or write on a
// non-blocking socket never waits, so it needs none of that path: these
// connections make them as raw system calls, still waiting for readiness
// (and honouring deadlines) through the runtime's poller.
type quietListener struct{ net.Listener }

func (l quietListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c, nil
	}
	q := &quietConn{Conn: c, rc: rc}
	q.rd.call, q.wr.call = q.rd.read, q.wr.write
	return q, nil
}

// quietConn is a net.Conn whose Read and Write are raw system calls. It
// does not expose SyscallConn, so gRPC reads it through a plain buffered
// reader.
type quietConn struct {
	net.Conn
	rc     syscall.RawConn
	rd, wr rawOp
}

// rawOp is one direction's call in progress, kept with the connection so
// that a Read or Write allocates nothing; mu holds it for one call at a
// time.
type rawOp struct {
	mu    sync.Mutex
	p     []byte
	n     int
	errno syscall.Errno
	call  func(fd uintptr) bool // read or write, bound once
}

// read reads once into p, as much as is there; false: nothing is yet.
func (op *rawOp) read(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&op.p[0])), uintptr(len(op.p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		}
		op.n, op.errno = int(r), e
		return true
	}
}

// write writes all of p; false: the socket is full, n says how far it got.
func (op *rawOp) write(fd uintptr) bool {
	for op.n < len(op.p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&op.p[op.n])), uintptr(len(op.p)-op.n))
		switch e {
		case 0:
			op.n += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until writable
		default:
			op.errno = e
			return true
		}
	}
	return true
}

// do runs op's call over p with wait (the RawConn's Read or Write).
func (op *rawOp) do(p []byte, wait func(func(uintptr) bool) error) (int, syscall.Errno, error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.p, op.n, op.errno = p, 0, 0
	err := wait(op.call)
	n, errno := op.n, op.errno
	op.p = nil
	return n, errno, err
}

func (c *quietConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, errno, err := c.rd.do(p, c.rc.Read)
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *quietConn) Write(p []byte) (int, error) {
	n, errno, err := c.wr.do(p, c.rc.Write)
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

func (c *quietConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Addr: c.LocalAddr(), Err: os.NewSyscallError(op, errno)}
}
