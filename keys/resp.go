package keys

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// redisConn is a minimal Redis client: one connection, RESP2, the few
// commands the store needs. The module has no Redis client (the global
// limits reach Redis through envoyproxy/ratelimit), and these few commands
// do not justify one.
type redisConn struct {
	addr     string // host:port or unix:/path
	timeout  time.Duration
	password string // sent with AUTH on each new connection; "" for none

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// errNil is a nil reply (a missing key, an aborted transaction).
var errNil = errors.New("redis: nil")

// redisError is an error reply from the server.
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

func (c *redisConn) dial(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	network, addr := "tcp", c.addr
	if p, ok := strings.CutPrefix(c.addr, "unix:"); ok {
		network, addr = "unix", p
	}
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("connecting to redis %s: %w", c.addr, err)
	}
	c.conn, c.r = conn, bufio.NewReader(conn)
	if c.password == "" {
		return nil
	}
	_ = conn.SetDeadline(time.Now().Add(c.timeout))
	auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(c.password), c.password)
	if _, err := io.WriteString(conn, auth); err != nil {
		c.drop()
		return fmt.Errorf("authenticating to redis %s: %w", c.addr, err)
	}
	reply, err := readReply(c.r)
	if err == nil {
		if e, ok := reply.(redisError); ok {
			err = e // never the password: Redis does not echo it
		}
	}
	if err != nil {
		c.drop()
		return fmt.Errorf("authenticating to redis %s: %w", c.addr, err)
	}
	return nil
}

func (c *redisConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
}

func (c *redisConn) drop() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// pipeline sends the commands and reads one reply each, on one connection.
// Any error but an error reply drops the connection; the next call dials
// again.
func (c *redisConn) pipeline(ctx context.Context, cmds ...[]string) ([]any, error) {
	return c.send(ctx, true, cmds)
}

// pipelineWatched is pipeline for commands that rely on an earlier WATCH
// on this connection: a failed write is not tried again on a new
// connection, which would have lost the WATCH.
func (c *redisConn) pipelineWatched(ctx context.Context, cmds ...[]string) ([]any, error) {
	return c.send(ctx, false, cmds)
}

func (c *redisConn) send(ctx context.Context, redial bool, cmds [][]string) ([]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.dial(ctx); err != nil {
		return nil, err
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	var b []byte
	for _, args := range cmds {
		b = append(b, '*')
		b = strconv.AppendInt(b, int64(len(args)), 10)
		b = append(b, "\r\n"...)
		for _, a := range args {
			b = append(b, '$')
			b = strconv.AppendInt(b, int64(len(a)), 10)
			b = append(b, "\r\n"...)
			b = append(b, a...)
			b = append(b, "\r\n"...)
		}
	}
	if _, err := c.conn.Write(b); err != nil {
		if !redial {
			c.drop()
			return nil, fmt.Errorf("writing to redis: %w", err)
		}
		// A connection the server closed while idle fails on its first
		// write; nothing of it ran (a MULTI without its EXEC is dropped
		// with the connection), so dial once more and write again.
		c.drop()
		if err := c.dial(ctx); err != nil {
			return nil, err
		}
		_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
		if _, err := c.conn.Write(b); err != nil {
			c.drop()
			return nil, fmt.Errorf("writing to redis: %w", err)
		}
	}
	out := make([]any, len(cmds))
	for i := range cmds {
		v, err := readReply(c.r)
		if err != nil {
			c.drop()
			return nil, fmt.Errorf("reading from redis: %w", err)
		}
		out[i] = v
	}
	return out, nil
}

// do runs one command. An error reply is returned as a redisError.
func (c *redisConn) do(ctx context.Context, args ...string) (any, error) {
	out, err := c.pipeline(ctx, args)
	if err != nil {
		return nil, err
	}
	if e, ok := out[0].(redisError); ok {
		return nil, e
	}
	return out[0], nil
}

// Bounds on what a reply may announce: Redis's own bulk limit, and more
// elements than any store holds.
const (
	maxBulk  = 512 << 20
	maxArray = 1 << 26
)

// readReply reads one RESP2 reply: string, int64, []any, redisError, or
// nil for a nil bulk string or array.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("malformed bulk length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxArray {
			return nil, fmt.Errorf("malformed array length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}
