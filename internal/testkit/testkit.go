// Package testkit holds the helpers that tests of several packages share.
// Only tests import it; internal/deptest keeps it out of the gateway binary.
package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer collects output written from several goroutines (a logger, a
// child process) for the test to read.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DecodeStrict decodes the JSON document data into v and fails the test when
// data has a field v lacks or anything after the document: a body that
// must have exactly one shape.
func DecodeStrict(t testing.TB, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s does not have the expected shape: %v", data, err)
	}
	if dec.More() {
		t.Fatalf("%s has data after the document", data)
	}
}

// RefusingAddr returns a loopback host:port that refuses every connection
// for as long as the test runs. The port is held by a socket that is bound
// but never listens, so no other process can take it meanwhile (a port
// picked and released could be taken by anyone before it is dialled).
func RefusingAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("creating a socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("binding a socket: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("reading the bound address: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// WaitBearer polls bearer (a token source's Bearer) until it returns want,
// failing t after 10 s.
func WaitBearer(t testing.TB, bearer func() (string, error), want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := bearer()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Bearer = %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BuildBodyModule builds Envoy's body module (cmd/bodymodule) into dir, as
// the library Envoy loads, and returns its path.
func BuildBodyModule(dir string) (string, error) {
	lib := filepath.Join(dir, "libswitchyard_body.so")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", lib, "switchyard/cmd/bodymodule")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the body module: %w", err)
	}
	return lib, nil
}

// BuildExtproc builds extproc (with the GOFLAGS of the environment, so the
// Makefile's -tags) into dir and returns the binary's path; its output goes
// to standard error.
func BuildExtproc(dir string) (string, error) {
	bin := filepath.Join(dir, "extproc")
	build := exec.Command("go", "build", "-o", bin, "switchyard/cmd/extproc")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building extproc: %w", err)
	}
	return bin, nil
}
