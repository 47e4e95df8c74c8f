package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestWindowFlagsDefault(t *testing.T) {
	t.Parallel()
	f, err := parseServeFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if f.streamWindow != defaultStreamWindow || f.connWindow != defaultConnWindow {
		t.Errorf("windows stream %d, connection %d; want %d and %d", f.streamWindow, f.connWindow, defaultStreamWindow, defaultConnWindow)
	}
}

func TestWindowFlagsOutOfRange(t *testing.T) {
	t.Parallel()
	_, err := parseServeFlags([]string{"-grpc-stream-window", "65535", "-grpc-conn-window", "2147483648"}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("parseServeFlags accepted windows outside HTTP/2's range")
	}
	for _, want := range []string{"-grpc-stream-window must be between 65536", "-grpc-conn-window must be between 65536"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
