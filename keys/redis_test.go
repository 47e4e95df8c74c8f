package keys

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, addr string
		o          RedisOptions
		network    string
		want       string // Addr
		password   string
		tls        bool
		read       time.Duration
	}{
		{name: "host:port", addr: "redis.internal:6380", o: RedisOptions{Timeout: time.Second}, network: "tcp", want: "redis.internal:6380", read: time.Second},
		{name: "unix:/path", addr: "unix:/run/redis.sock", network: "unix", want: "/run/redis.sock"},
		{name: "redis URL", addr: "redis://:pw@10.0.0.1:7000/0", network: "tcp", want: "10.0.0.1:7000", password: "pw"},
		{name: "env password wins", addr: "redis://:pw@10.0.0.1", o: RedisOptions{Password: "env"}, network: "tcp", want: "10.0.0.1:6379", password: "env"},
		{name: "rediss URL", addr: "rediss://cache.example.com:6380", network: "tcp", want: "cache.example.com:6380", tls: true},
		{name: "unix URL", addr: "unix:///run/redis.sock", network: "unix", want: "/run/redis.sock"},
		{name: "URL timeout wins", addr: "redis://h:1?read_timeout=3s", o: RedisOptions{Timeout: time.Second}, network: "tcp", want: "h:1", read: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, err := redisOptions(tc.addr, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if opt.Network != tc.network || opt.Addr != tc.want || opt.Password != tc.password || (opt.TLSConfig != nil) != tc.tls {
				t.Errorf("%s: network %s addr %s password %q tls %v", tc.addr, opt.Network, opt.Addr, opt.Password, opt.TLSConfig != nil)
			}
			if tc.read != 0 && opt.ReadTimeout != tc.read {
				t.Errorf("read timeout %v, want %v", opt.ReadTimeout, tc.read)
			}
			if tc.tls && opt.TLSConfig.ServerName != "cache.example.com" {
				t.Errorf("TLS server name %q", opt.TLSConfig.ServerName)
			}
		})
	}
	for _, bad := range []struct{ addr, ca string }{
		{"localhost", ""},
		{"http://localhost:6379", ""},
		{"redis://user:hunter2@host:port", ""},
		{"redis://:hunter2@host:1/x", ""},
		{"unix://", ""},
		{"redis://host:1", "ca.pem"},
		{"rediss://host:1", "/nonexistent/ca.pem"},
	} {
		_, err := redisOptions(bad.addr, RedisOptions{CAFile: bad.ca})
		if err == nil {
			t.Errorf("%s (CA %q) accepted", bad.addr, bad.ca)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", bad.addr, err)
		}
	}
}

// redisServer is a real redis-server on a unix socket in a temporary
// directory.
type redisServer struct {
	t    *testing.T
	sock string
	args []string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T, args ...string) *redisServer {
	t.Helper()
	bin := os.Getenv("REDIS_BIN")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", ".tools", "bin", "redis-server"))
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("redis-server not found at %s: run `make ratelimit` (these tests never skip)", bin)
	}
	dir, err := os.MkdirTemp("", "redis") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	r := &redisServer{t: t, sock: filepath.Join(dir, "r.sock"),
		args: append([]string{bin, "--port", "0", "--unixsocket", filepath.Join(dir, "r.sock"), "--save", "", "--appendonly", "no"}, args...)}
	t.Cleanup(func() {
		r.kill()
		os.RemoveAll(dir)
	})
	r.start()
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	_ = os.Remove(r.sock)
	r.cmd = exec.Command(r.args[0], r.args[1:]...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", r.sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis did not listen on %s", r.sock)
		}
	}
}

func (r *redisServer) kill() {
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

func newRedis(t *testing.T, addr string, o RedisOptions) *Redis {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	r, err := NewRedis(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func testKey(name string) Key {
	return Key{Name: name, Digest: strings.Repeat("ab", 32), CreatedAt: time.Unix(1, 0).UTC()}
}

func addKey(name string) func(*State) error {
	return func(s *State) error {
		if _, ok := s.Keys[name]; ok {
			return fmt.Errorf("%s exists", name)
		}
		k := testKey(name)
		k.Digest = fmt.Sprintf("%064x", len(s.Keys)+1)
		s.Keys[name] = k
		return nil
	}
}

// TestRedisBackend: an empty Redis is version 0; each update bumps the
// version and writes only what it changed; an update whose fn fails
// changes nothing.
func TestRedisBackend(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	r := newRedis(t, "unix:"+srv.sock, RedisOptions{})
	ctx := context.Background()
	if s, v, err := r.Load(ctx); err != nil || v != 0 || len(s.Keys) != 0 {
		t.Fatalf("empty Redis: %v keys, version %d, %v", len(s.Keys), v, err)
	}
	if _, v, err := r.Update(ctx, addKey("a")); err != nil || v != 1 {
		t.Fatalf("first update: version %d, %v", v, err)
	}
	_, v, err := r.Update(ctx, func(s *State) error {
		delete(s.Keys, "a")
		s.Teams["t"] = Team{Name: "t", Limits: Limits{RequestsPerMinute: 5}}
		return nil
	})
	if err != nil || v != 2 {
		t.Fatalf("second update: version %d, %v", v, err)
	}
	refused := errors.New("refused")
	if _, _, err := r.Update(ctx, func(s *State) error { s.Teams = nil; return refused }); !errors.Is(err, refused) {
		t.Fatalf("fn's error came back as %v", err)
	}
	s, v, err := r.Load(ctx)
	if err != nil || v != 2 || len(s.Keys) != 0 || s.Teams["t"].Limits.RequestsPerMinute != 5 {
		t.Fatalf("after the updates: %+v version %d, %v", s, v, err)
	}
	if n, err := r.Version(ctx); err != nil || n != 2 {
		t.Errorf("Version = %d, %v", n, err)
	}
}

// TestRedisUpdateConflict: a change made by another client between the
// read and the EXEC fails the EXEC (WATCH); the update reads again and
// both changes land.
func TestRedisUpdateConflict(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	r := newRedis(t, "unix:"+srv.sock, RedisOptions{})
	other := newRedis(t, "unix:"+srv.sock, RedisOptions{})
	ctx := context.Background()
	calls := 0
	s, v, err := r.Update(ctx, func(s *State) error {
		calls++
		if calls == 1 {
			if _, _, err := other.Update(ctx, addKey("theirs")); err != nil {
				return err
			}
		}
		return addKey("ours")(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || v != 2 || len(s.Keys) != 2 {
		t.Errorf("fn ran %d times (want 2: the first EXEC must fail), version %d, keys %v", calls, v, s.Keys)
	}
	if s, _, _ := other.Load(ctx); len(s.Keys) != 2 {
		t.Errorf("Redis holds %d keys, want both", len(s.Keys))
	}
}

// TestRedisConcurrentUpdates: many updates from two clients at once (two
// replicas) all land, each with its own version.
func TestRedisConcurrentUpdates(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	clients := []*Redis{newRedis(t, "unix:"+srv.sock, RedisOptions{}), newRedis(t, "unix:"+srv.sock, RedisOptions{})}
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := clients[i%2].Update(ctx, addKey(fmt.Sprint("k", i))); err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	s, v, err := clients[0].Load(ctx)
	if err != nil || len(s.Keys) != n || v != n {
		t.Errorf("after %d concurrent updates: %d keys, version %d, %v", n, len(s.Keys), v, err)
	}
}

// TestRedisPassword: the password authenticates; a wrong one fails
// without showing up in the error.
func TestRedisPassword(t *testing.T) {
	t.Parallel()
	srv := startRedis(t, "--requirepass", "right-password")
	ctx := context.Background()
	if _, err := newRedis(t, "unix:"+srv.sock, RedisOptions{Password: "right-password"}).Version(ctx); err != nil {
		t.Errorf("with the password: %v", err)
	}
	_, err := newRedis(t, "unix:"+srv.sock, RedisOptions{Password: "wrong-password"}).Version(ctx)
	if err == nil || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("with a wrong password: %v", err)
	}
	if _, err := newRedis(t, "unix:"+srv.sock, RedisOptions{}).Version(ctx); err == nil {
		t.Error("without a password: no error")
	}
}

// TestRedisTLS: a rediss:// URL talks TLS, trusting the CA file; without
// it the server's certificate is refused. The TLS end is a proxy in front
// of the real Redis (the Redis in .tools may lack TLS).
func TestRedisTLS(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	certPEM, cfg := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go proxyTo(ln, srv.sock)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	addr := "rediss://" + ln.Addr().String()
	r := newRedis(t, addr, RedisOptions{CAFile: ca})
	if r.c.Options().TLSConfig == nil {
		t.Fatal("rediss:// without TLS")
	}
	if _, v, err := r.Update(ctx, addKey("over-tls")); err != nil || v != 1 {
		t.Fatalf("update over TLS: version %d, %v", v, err)
	}
	if s, _, err := newRedis(t, "unix:"+srv.sock, RedisOptions{}).Load(ctx); err != nil || len(s.Keys) != 1 {
		t.Errorf("the update over TLS did not reach Redis: %v %v", s.Keys, err)
	}
	if _, err := newRedis(t, addr, RedisOptions{}).Version(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an untrusted certificate: %v", err)
	}
}

// selfSigned returns a certificate for 127.0.0.1 in PEM and a server
// configuration that presents it.
func selfSigned(t *testing.T) ([]byte, *tls.Config) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}}
}

// proxyTo forwards each TLS connection accepted on ln to the unix socket.
func proxyTo(ln net.Listener, sock string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("unix", sock)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			_, _ = io.Copy(c, bufio.NewReader(u))
		}()
	}
}

// TestStoreRedisDown: while Redis is down the store keeps serving the keys
// it last saw and switchyard_key_store_up is 0; when Redis is back (empty:
// no persistence) the store serves what it holds and the gauge is 1
// again.
func TestStoreRedisDown(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	ctx := context.Background()
	r := newRedis(t, "unix:"+srv.sock, RedisOptions{Timeout: 200 * time.Millisecond})
	s, err := Open(ctx, r, Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, addKey("known")); err != nil {
		t.Fatal(err)
	}
	srv.kill()
	s.Refresh(ctx)
	if up := testutil.ToFloat64(s.m.up); up != 0 || !s.Keys().Has("known") {
		t.Errorf("Redis down: up = %v, known key served: %v", up, s.Keys().Has("known"))
	}
	if _, err := s.Update(ctx, addKey("new")); err == nil {
		t.Error("an update with Redis down succeeded")
	}
	srv.start()
	// After failed dials go-redis's pool probes once a second before it
	// dials for callers again.
	waitFor(t, "the store to read Redis again", func() bool {
		s.Refresh(ctx)
		return testutil.ToFloat64(s.m.up) == 1
	})
	if s.Keys().Has("known") {
		t.Error("Redis back, empty: the known key is still served")
	}
}

// TestStoreRedisNotified: a change made through one replica's store
// reaches another's through Pub/Sub, with polling too slow to be what
// brought it.
func TestStoreRedisNotified(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	open := func() *Store {
		s, err := Open(ctx, newRedis(t, "unix:"+srv.sock, RedisOptions{}), Options{Poll: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		go s.Run(ctx)
		return s
	}
	a, b := open(), open()
	probe := newRedis(t, "unix:"+srv.sock, RedisOptions{})
	waitFor(t, "both stores subscribed", func() bool {
		n, err := probe.c.PubSubNumSub(ctx, redisChanged).Result()
		return err == nil && n[redisChanged] == 2
	})
	start := time.Now()
	if _, err := a.Update(ctx, addKey("pushed")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other store serves the new key", func() bool { return b.Keys().Has("pushed") })
	t.Logf("the change reached the other store in %v", time.Since(start))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
	}
}
