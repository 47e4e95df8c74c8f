package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"switchyard/internal/launch"
	"switchyard/internal/testkit"
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

// TestServerGrantsConfiguredWindows reads the windows a running extproc
// grants on a new HTTP/2 connection: the stream window in its SETTINGS,
// the connection window as the WINDOW_UPDATE on stream 0 above HTTP/2's
// initial 65,535 bytes.
func TestServerGrantsConfiguredWindows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		args         []string
		stream, conn uint32
	}{
		{"defaults", nil, defaultStreamWindow, defaultConnWindow},
		{"flags", []string{"-grpc-stream-window", "2097152", "-grpc-conn-window", "4194304"}, 2 << 20, 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream, conn := grantedWindows(t, startServe(t, tc.args))
			if stream != tc.stream || conn != tc.conn {
				t.Errorf("granted stream window %d, connection window %d; want %d and %d", stream, conn, tc.stream, tc.conn)
			}
		})
	}
}

// startServe runs extproc on a Unix socket until the test ends and
// returns the socket's path.
func startServe(t *testing.T, extra []string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "swy") // short path: socket names are limited
	if err != nil {
		t.Fatal(err)
	}
	cfg, sock, addrFile := filepath.Join(dir, "c.yaml"), filepath.Join(dir, "s.sock"), filepath.Join(dir, "addrs.json")
	if err := os.WriteFile(cfg, []byte(minimalConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs testkit.SyncBuffer
	exited := make(chan struct{})
	args := append([]string{"-config", cfg, "-grpc", "unix:" + sock, "-metrics", "", "-addr-file", addrFile}, extra...)
	go func() {
		defer close(exited)
		if err := run(ctx, args, &bytes.Buffer{}, &logs); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		os.RemoveAll(dir)
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if _, err := launch.WaitExtproc(wctx, addrFile, exited); err != nil {
		t.Fatalf("server did not listen: %v\n%s", err, logs.String())
	}
	return sock
}

// grantedWindows opens an HTTP/2 connection to sock and reads the server's
// first frames until both windows are known.
func grantedWindows(t *testing.T, sock string) (stream, conn uint32) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	stream = initialWindow
	var settings, update bool
	for !settings || !update {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's frames (settings %v, window update %v): %v", settings, update, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			settings = true
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				stream = v
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				update, conn = true, initialWindow+f.Increment
			}
		}
	}
	return stream, conn
}

// initialWindow is HTTP/2's window before any SETTINGS or WINDOW_UPDATE.
const initialWindow = 65535
