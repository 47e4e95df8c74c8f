package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"switchyard/internal/testkit"
)

// TestStalledUploadTimesOut: a client that stops sending its body (or its
// headers) midway gets a 408 in its API's shape once the request timeout
// has passed, and its HTTP/1.1 connection is closed, whether its body
// would have stayed in Envoy (the body module) or gone to extproc with its
// headers. The idle timeout alone would let a byte now and then hold the
// buffer for ever. The timeout does not cap how long an answer may stream.
func TestStalledUploadTimesOut(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	gw := startModuleGateway(t, 1<<20, "-request-timeout", timeout.String())
	u, err := url.Parse(gw.url)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		size       int
	}{
		{"big chat body", "/v1/chat/completions", 200_000},
		{"small chat body", "/v1/chat/completions", 5_000},
		{"big Messages body", "/v1/messages", 200_000},
		{"headers cut short", "/v1/chat/completions", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, body, took := stallUpload(t, u.Host, c.path, c.size)
			t.Logf("%s after %v: %s", status, took.Round(time.Millisecond), body)
			// Envoy's timers run on its loop's cached clock: allow it a tenth.
			if !strings.HasPrefix(status, "408") || took < timeout*9/10 {
				t.Fatalf("a stalled upload got %q after %v, want 408 after about %v", status, took, timeout)
			}
			var msg string
			if c.path == "/v1/messages" {
				var e anthropicError
				testkit.DecodeStrict(t, body, &e)
				if e.Type != "error" || e.Error.Type != "invalid_request_error" {
					t.Errorf("Anthropic error %+v", e)
				}
				msg = e.Error.Message
			} else {
				var e openAIError
				testkit.DecodeStrict(t, body, &e)
				if e.Error.Code != "request_timeout" || e.Error.Type != "invalid_request_error" {
					t.Errorf("OpenAI error %+v", e)
				}
				msg = e.Error.Message
			}
			if !strings.Contains(msg, fmt.Sprintf("within %g s", timeout.Seconds())) {
				t.Errorf("message %q does not name the timeout", msg)
			}
		})
	}
	t.Run("stream longer than the timeout", func(t *testing.T) {
		t.Parallel()
		a := postStream(t, gw.url+"/v1/chat/completions", `{"model":"gpt-exact","stream":true,"messages":[]}`,
			map[string]string{"x-test-chunks": "5", "x-test-interval-ms": fmt.Sprint((timeout / 2).Milliseconds())})
		if a.took < 2*timeout {
			t.Fatalf("the stream took %v: not longer than the timeout, so it shows nothing", a.took)
		}
		if a.status != 200 || a.chunks != 5 || !a.done || a.err != nil {
			t.Errorf("status %d, %d chunks, [DONE]=%v, %v after %v; want 200, 5 chunks and [DONE]", a.status, a.chunks, a.done, a.err, a.took)
		}
	})
}

// stallUpload sends a request's headers and half its size-byte body (size
// 0: half its headers), then nothing, and returns the answer's status, body and how long after the
// request began it came. The connection must close after the answer.
func stallUpload(t *testing.T, host, path string, size int) (string, []byte, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, size)
	half := `{"model":"gpt-exact","max_tokens":8,"messages":[{"role":"user","content":"` + strings.Repeat("x", size/2)
	sent := head + half
	if size == 0 {
		sent = head[:len(head)/2]
	}
	if _, err := c.Write([]byte(sent)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload after %v: %v", time.Since(start), err)
	}
	took := time.Since(start)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection after the answer: %v, want it closed", err)
	}
	return resp.Status, body, took
}

// TestBigBodiesOverHTTP2: a client speaking HTTP/2 (without TLS, as Envoy's
// listener takes it) gets what an HTTP/1 client gets, with many bodies on
// one connection at once: each reaches the provider whole, small ones with
// their headers, big ones kept and summarized in Envoy, past 1 MiB too; a
// body over the limit is refused in the API's shape; a stalled upload gets
// its 408 (its stream ends, not the connection) and the connection serves
// the next request.
func TestBigBodiesOverHTTP2(t *testing.T) {
	t.Parallel()
	const limit, timeout = 4 << 20, time.Second
	gw := startModuleGateway(t, limit, "-request-timeout", timeout.String())
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	post := func(body io.Reader) (*http.Response, []byte, error) {
		resp, err := h2.Post(gw.url+"/v1/chat/completions", "application/json", body)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	// The first request opens the connection the others share.
	small := agentBody("gpt-exact", 900)
	if resp, b, err := post(strings.NewReader(small)); err != nil || resp.StatusCode != 200 || seenBody(b) != small {
		t.Fatalf("a first request: %v %v %.200s", err, resp, b)
	}
	sizes := []int{900, 50_000, 3 << 20, 900, 50_000, 300_000, 900, 50_000}
	errs := make(chan error, len(sizes))
	for _, size := range sizes {
		go func() {
			body := agentBody("gpt-exact", size)
			resp, b, err := post(strings.NewReader(body))
			switch {
			case err != nil:
				errs <- fmt.Errorf("%d bytes: %v", size, err)
			case resp.ProtoMajor != 2:
				errs <- fmt.Errorf("%d bytes: answered over %s", size, resp.Proto)
			case resp.StatusCode != 200:
				errs <- fmt.Errorf("%d bytes: %d %.200s", size, resp.StatusCode, b)
			case seenBody(b) != body:
				errs <- fmt.Errorf("%d bytes: the provider got other bytes: %.200s", size, b)
			default:
				errs <- nil
			}
		}()
	}
	for range sizes {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := envoyStat(t, gw, "http.switchyard.downstream_cx_http2_total"); n != 1 {
		t.Errorf("%d HTTP/2 connections, want the one all requests shared", n)
	}
	m := gw.metrics(t)
	for mode, want := range map[string]float64{"full_duplex": 4, "summarized": 5} {
		if got, _ := metricValue(m, `switchyard_request_body_mode_total{mode="`+mode+`"}`); got != want {
			t.Errorf("%v requests %s, want %v", got, mode, want)
		}
	}

	over := agentBody("gpt-exact", limit)
	resp, b, err := post(strings.NewReader(over[:limit+1]))
	if err != nil || resp.StatusCode != 413 || !strings.Contains(string(b), `"request_too_large"`) {
		t.Errorf("a body over the limit: %v %v %.200s", err, resp, b)
	}

	// Half a body, then nothing.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(agentBody("gpt-exact", 200_000)[:100_000]))
	start := time.Now()
	resp, b, err = post(pr)
	if err != nil || resp.StatusCode != 408 || !strings.Contains(string(b), `"request_timeout"`) || time.Since(start) < timeout*9/10 {
		t.Errorf("a stalled upload: %v %v %.200s after %v", err, resp, b, time.Since(start))
	}
	body := agentBody("gpt-exact", 50_000)
	if resp, b, err := post(strings.NewReader(body)); err != nil || resp.StatusCode != 200 || seenBody(b) != body {
		t.Errorf("after the stalled upload: %v %v", err, resp)
	}
}

// seenBody is the body the provider got, from its answer (upstreamReply);
// "" when the answer is not one. It may run on any goroutine.
func seenBody(answer []byte) string {
	var rep upstreamReply
	if json.Unmarshal(answer, &rep) != nil {
		return ""
	}
	return rep.Seen.Body
}
