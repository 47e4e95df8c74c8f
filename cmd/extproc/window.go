package main

import "fmt"

// HTTP/2 flow-control windows of the ext_proc server. grpc-go returns a
// connection's window as frames arrive and a stream's as its handler reads
// them, so the stream window bounds what a stream may hold unread and the
// connection window what all of them together may have in flight.
const (
	defaultStreamWindow = 1 << 20
	defaultConnWindow   = 16 << 20
	// minWindow is HTTP/2's initial window; grpc-go ignores a smaller one.
	minWindow = 1 << 16
	// maxWindow is HTTP/2's largest window.
	maxWindow = 1<<31 - 1
)

func checkWindow(name string, v uint) error {
	if v < minWindow || v > maxWindow {
		return fmt.Errorf("%s must be between %d and %d bytes, not %d", name, minWindow, maxWindow, v)
	}
	return nil
}
