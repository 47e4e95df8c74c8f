//go:build linux

package main

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// quietPair returns both ends of a Unix socket connection: the accepted
// one through quietListener, and the client's.
func quietPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	lis, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	client, err = net.Dial("unix", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = quietListener{lis}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	if _, ok := server.(*quietConn); !ok {
		t.Fatalf("accepted a %T, want a *quietConn", server)
	}
	return server, client
}

// Data larger than the socket's buffers goes both ways intact: a write
// that fills the buffer waits for the reader instead of failing or
// losing bytes, and the end of the stream reads as io.EOF.
func TestQuietConnCarriesEveryByte(t *testing.T) {
	t.Parallel()
	server, client := quietPair(t)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	for _, dir := range []struct {
		name     string
		from, to net.Conn
	}{{"server writes", server, client}, {"client writes", client, server}} {
		written := make(chan error, 1)
		go func() {
			n, err := dir.from.Write(data)
			if err == nil && n != len(data) {
				err = io.ErrShortWrite
			}
			if err != nil {
				dir.from.Close() // the reader must not wait for the rest
			}
			written <- err
		}()
		got := make([]byte, len(data))
		// Small reads, so the writer fills the socket and has to wait.
		for n := 0; n < len(got); {
			m, err := dir.to.Read(got[n:min(len(got), n+4096)])
			if err != nil {
				t.Fatalf("%s: read after %d bytes: %v (write: %v)", dir.name, n, err, <-written)
			}
			n += m
		}
		if err := <-written; err != nil {
			t.Fatalf("%s: write: %v", dir.name, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: the bytes read differ from the bytes written", dir.name)
		}
	}
	if n, err := server.Read(nil); n != 0 || err != nil {
		t.Errorf("empty read: %d, %v; want 0, nil", n, err)
	}
	client.Close()
	if n, err := server.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after the peer closed: %d, %v; want 0, io.EOF", n, err)
	}
}

// Deadlines and Close end a read that is waiting, as on any net.Conn.
func TestQuietConnDeadlineAndClose(t *testing.T) {
	t.Parallel()
	server, _ := quietPair(t)
	if err := server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if err := server.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 10))
		done <- err
	}()
	server.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := server.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
	}
}

// A read or write on the request path allocates nothing.
func TestQuietConnAllocatesNothing(t *testing.T) {
	server, client := quietPair(t)
	msg, buf := []byte("hello"), make([]byte, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := server.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a write and a read allocate %.0f times, want none", allocs)
	}
}
