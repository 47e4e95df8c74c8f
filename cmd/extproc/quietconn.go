//go:build linux

package main

import (
	"io"
	"net"
	"os"
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
	return &quietConn{Conn: c, rc: rc}, nil
}

// quietConn is a net.Conn whose Read and Write are raw system calls. It
// does not expose SyscallConn, so gRPC reads it through a plain buffered
// reader.
type quietConn struct {
	net.Conn
	rc syscall.RawConn
}

func (c *quietConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until readable
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Addr: c.LocalAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *quietConn) Write(p []byte) (int, error) {
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Addr: c.LocalAddr(), Err: os.NewSyscallError("write", errno)}
	}
	return n, nil
}
