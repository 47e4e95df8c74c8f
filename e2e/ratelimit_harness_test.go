package e2e

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/internal/testkit"
	"switchyard/limits"
)

// toolBin finds a binary that make ratelimit installs: $env, else
// .tools/bin/name. A missing one fails the test naming the target.
func toolBin(t testing.TB, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		abs, err := filepath.Abs(filepath.Join("..", ".tools", "bin", name))
		if err != nil {
			t.Fatal(err)
		}
		p = abs
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("%s not found at %s: run `make e2e`, which installs it (the end-to-end tests never skip)", name, p)
	}
	return p
}

// redisServer is a Redis on a unix socket (it cannot report a TCP port it
// chose, so it listens on none: --port 0).
type redisServer struct {
	t    testing.TB
	bin  string
	sock string
	out  *testkit.SyncBuffer
	proc *child
	// password, when set, is required of every client (--requirepass).
	password string
}

// startRedis starts Redis; a password, when given, is required of every
// client.
func startRedis(t testing.TB, password ...string) *redisServer {
	t.Helper()
	r := &redisServer{t: t, bin: toolBin(t, "REDIS_BIN", "redis-server"), sock: filepath.Join(t.TempDir(), "redis.sock"), out: &testkit.SyncBuffer{}}
	if len(password) > 0 {
		r.password = password[0]
	}
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("redis output:\n%s", tail(r.out.String(), 3000))
		}
	})
	r.start()
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	_ = os.Remove(r.sock)
	cmd := exec.Command(r.bin, "--port", "0", "--unixsocket", r.sock, "--save", "", "--appendonly", "no")
	if r.password != "" {
		cmd.Args = append(cmd.Args, "--requirepass", r.password)
	}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	c, err := startChild(cmd)
	if err != nil {
		r.t.Fatalf("starting redis: %v", err)
	}
	r.proc = c
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if redisPing(r.sock) == nil {
			return
		}
		select {
		case <-c.done:
			r.t.Fatalf("redis exited: %v\n%s", c.err, r.out.String())
		case <-ctx.Done():
			r.t.Fatalf("redis did not answer PING on %s\n%s", r.sock, r.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func redisPing(sock string) error {
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	// -NOAUTH: up, and asking for the password it was started with.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return errors.New("redis answered " + line)
	}
	return nil
}

// kill ends Redis at once, as a crash would.
func (r *redisServer) kill() {
	if r.proc != nil {
		r.proc.stop(os.Kill, 0)
		r.proc = nil
	}
}

// rateLimitService is envoyproxy/ratelimit with its gRPC on a unix socket
// (GRPC_UDS) and its HTTP and debug listeners on port 0, which nothing here
// uses: the socket is the one address the gateways need.
type rateLimitService struct {
	t       testing.TB
	bin     string
	dir     string
	sock    string
	redis   *redisServer
	out     *testkit.SyncBuffer
	proc    *child
	address string // for rate_limit_service.address
}

func startRateLimit(t testing.TB, redis *redisServer) *rateLimitService {
	t.Helper()
	dir := t.TempDir()
	s := &rateLimitService{t: t, bin: toolBin(t, "RATELIMIT_BIN", "ratelimit"), dir: dir, sock: filepath.Join(dir, "rls.sock"), redis: redis, out: &testkit.SyncBuffer{}}
	s.address = "unix:" + s.sock
	// The service's config comes from the gateway's own command.
	if err := os.MkdirAll(filepath.Join(dir, "runtime", "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	gwConfig := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(gwConfig, []byte("providers: [{name: p, url: 'http://127.0.0.1:1', schema: openai}]\nrate_limit_service: {address: '"+s.address+"'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(extprocBin, "ratelimit-config", "-config", gwConfig).Output()
	if err != nil {
		t.Fatalf("extproc ratelimit-config: %v\n%s", err, exitStderr(err))
	}
	if err := os.WriteFile(filepath.Join(dir, "runtime", "config", "config.yaml"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("ratelimit output:\n%s", tail(s.out.String(), 3000))
		}
	})
	s.start()
	return s
}

func (s *rateLimitService) start() {
	s.t.Helper()
	_ = os.Remove(s.sock) // left by a killed predecessor
	cmd := exec.Command(s.bin)
	cmd.Env = append(os.Environ(),
		"USE_STATSD=false", "LOG_LEVEL=warn",
		"GRPC_UDS="+s.sock,
		"HOST=127.0.0.1", "PORT=0", "DEBUG_HOST=127.0.0.1", "DEBUG_PORT=0",
		"REDIS_SOCKET_TYPE=unix", "REDIS_URL="+s.redis.sock,
		"RUNTIME_ROOT="+filepath.Join(s.dir, "runtime"), "RUNTIME_SUBDIRECTORY=.", "RUNTIME_WATCH_ROOT=false",
	)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	c, err := startChild(cmd)
	if err != nil {
		s.t.Fatalf("starting ratelimit: %v", err)
	}
	s.proc = c
	// Ready once it answers a call, with the domain loaded.
	g, err := limits.NewGlobal(limits.GlobalOptions{Address: s.address, Timeout: time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	defer g.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := g.Admit(context.Background(), "_probe", limits.Limits{RequestsPerMinute: 1 << 30})
		if err == nil {
			return
		}
		select {
		case <-c.done:
			s.t.Fatalf("ratelimit exited: %v\n%s", c.err, s.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("ratelimit did not answer on %s: %v\n%s", s.sock, err, s.out.String())
		}
	}
}

// kill ends the service at once, as a crash would.
func (s *rateLimitService) kill() {
	if s.proc != nil {
		s.proc.stop(os.Kill, 0)
		s.proc = nil
	}
}

// globalConfig is the standard config with team-a and team-b limited as
// given and the limits kept in the service.
func globalConfig(t testing.TB, a, b *fakeUpstream, rls *rateLimitService, failureMode, limitsA, limitsB string) string {
	t.Helper()
	c := standardConfig(a, b, "")
	for key, l := range map[string]string{"A": limitsA, "B": limitsB} {
		if l == "" {
			continue
		}
		from := "    key_env: SWY_TEST_CLIENT_" + key + "\n"
		next := strings.Replace(c, from, from+"    limits: "+l+"\n", 1)
		if next == c {
			t.Fatal("the standard config changed: client key not found")
		}
		c = next
	}
	return c + "rate_limit_service: {address: '" + rls.address + "', failure_mode: " + failureMode + ", timeout: 200ms}\n"
}
