package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestKeyStoreRedisTLS: with -keys-redis rediss://... and the CA in
// -keys-redis-ca-file, the key store talks TLS to Redis: a key created
// through the admin API works, and the TLS front saw the connections.
// Without the CA file the server's certificate is refused and the store
// says it is down. The TLS front is a proxy in front of the real Redis
// (the Redis in .tools is started on a unix socket only).
func TestKeyStoreRedisTLS(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	front, ca := startTLSFront(t, redis.sock)
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	opts := keyStoreOptions("-keys-redis", "rediss://"+front.addr, "-keys-redis-ca-file", ca)
	opts.extraEnv = append(opts.extraEnv, testEnv...)
	gw := startGateway(t, standardConfig(a, b, ""), opts)
	secret := createKey(t, gw, `{"name":"over-tls"}`)
	if r := chat(t, gw, secret); r.status != 200 {
		t.Fatalf("a key kept in Redis over TLS: %d %s", r.status, r.body)
	}
	if front.handshakes.Load() == 0 {
		t.Error("no TLS handshake reached the front: the store did not use TLS")
	}

	untrusting := keyStoreOptions("-keys-redis", "rediss://"+front.addr)
	untrusting.extraEnv = append(untrusting.extraEnv, testEnv...)
	gw2 := startGateway(t, standardConfig(a, b, ""), untrusting)
	waitMetric(t, gw2, "switchyard_key_store_up", 0)
	if out := gw2.extprocOut.String(); !strings.Contains(out, "certificate") {
		t.Errorf("the log does not say the certificate was refused:\n%s", tail(out, 2000))
	}
}

type tlsFront struct {
	addr       string
	handshakes atomic.Int64
}

// startTLSFront listens for TLS on 127.0.0.1:0 with httptest's
// certificate and forwards each connection to the unix socket; it returns
// the CA file that trusts it.
func startTLSFront(t *testing.T, sock string) (*tlsFront, string) {
	t.Helper()
	srv := httptest.NewTLSServer(nil) // only for its certificate, valid for 127.0.0.1
	cfg := srv.TLS.Clone()
	ca := filepath.Join(t.TempDir(), "redis-ca.pem")
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	srv.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &tlsFront{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.forward(c.(*tls.Conn), sock)
		}
	}()
	return f, ca
}

func (f *tlsFront) forward(c *tls.Conn, sock string) {
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return
	}
	f.handshakes.Add(1)
	u, err := net.Dial("unix", sock)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
}
