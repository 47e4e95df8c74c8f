package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestKeyStoreRedisFlags: a CA file without a Redis is a flag error, and a
// Redis address that cannot be read stops extproc with an error that
// names the flag and never the URL's password.
func TestKeyStoreRedisFlags(t *testing.T) {
	t.Parallel()
	_, err := parseServeFlags([]string{"-config", "c.yaml", "-grpc", "unix:/tmp/s.sock", "-keys-redis-ca-file", "ca.pem"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "-keys-redis-ca-file needs -keys-redis") {
		t.Errorf("a CA file without -keys-redis: %v", err)
	}
	for _, addr := range []string{"redis://:hunter2@host:port", "no-port", "ftp://host:1"} {
		_, err := openKeyStore(context.Background(), keyStoreFlags{redis: addr}, nil, nil, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "-keys-redis") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("-keys-redis %s: %v", addr, err)
		}
	}
}
