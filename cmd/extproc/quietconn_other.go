//go:build !linux

package main

import "net"

// quietListener is the listener itself where raw reads and writes are not
// built (quietconn.go).
type quietListener struct{ net.Listener }
