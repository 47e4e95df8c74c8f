package testkit

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestRefusingAddrRefuses(t *testing.T) {
	t.Parallel()
	addr := RefusingAddr(t)
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("dialling %s succeeded, want a refusal", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dialling %s: %v, want connection refused", addr, err)
		}
	}
	// While the test runs, the port stays taken.
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Errorf("another listener could bind %s", addr)
	}
}

func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	var v struct {
		A int `json:"a"`
	}
	DecodeStrict(t, []byte(`{"a":1}`+"\n"), &v)
	if v.A != 1 {
		t.Errorf("decoded %+v", v)
	}
	for _, bad := range []string{`{"a":1,"b":2}`, `{"a":1}{"a":2}`, `{"a":`} {
		ft := &fakeT{TB: t}
		func() {
			defer func() { recover() }()
			DecodeStrict(ft, []byte(bad), &v)
		}()
		if !ft.failed {
			t.Errorf("DecodeStrict accepted %s", bad)
		}
	}
}

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
