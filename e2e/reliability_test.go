package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"switchyard/internal/testkit"
)

// openAIShaped reports whether body is exactly an OpenAI error with the code.
func openAIShaped(body []byte, code string) bool {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var e openAIError
	return dec.Decode(&e) == nil && e.Error.Code == code && e.Error.Message != "" && e.Error.Type == "server_error"
}

// metricValue returns the value of an unlabelled series in a Prometheus
// text exposition.
func metricValue(exposition, name string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func (g *gateway) metricOrFail(t testing.TB, name string) float64 {
	t.Helper()
	v, ok := metricValue(g.metrics(t), name)
	if !ok {
		t.Fatalf("metric %s missing from the exposition", name)
	}
	return v
}

// upstreamFunc is a fake upstream with a custom handler.
func upstreamFunc(t testing.TB, name string, h http.HandlerFunc) *fakeUpstream {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fakeUpstream{name: name, addr: srv.Listener.Addr().String()}
}

// closedUpstream returns an upstream whose port refuses connections.
func closedUpstream(t testing.TB) *fakeUpstream {
	return &fakeUpstream{name: "closed", addr: testkit.RefusingAddr(t)}
}

const goodBody = `{"model":"gpt-exact","messages":[{"role":"user","content":"hi"}]}`

// TestExtprocKilledUnderLoad: extproc is killed while four clients loop
// requests. While it is down every answer is the API-shaped 502; after the
// restart the gateway recovers within a second; no request hangs.
func TestExtprocKilledUnderLoad(t *testing.T) {
	t.Parallel()
	s := startStandard(t, gatewayOptions{})
	const timeout = 5 * time.Second
	l := startLoad(load{workers: 4, timeout: timeout}, func(ctx context.Context, _ int64) (result, error) {
		return s.gw.try(ctx, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody)
	})
	l.waitRequests(t, 20)
	killAt := time.Now()
	s.gw.killExtproc()
	l.waitRequests(t, 20)
	restartAt := time.Now()
	s.gw.startExtproc()
	listeningAt := time.Now()
	l.waitRequests(t, 100)
	events := l.stop()

	var before, down, after, failedOther int
	var maxLatency time.Duration
	var firstOK time.Time
	for _, ev := range events {
		if lat := ev.end.Sub(ev.start); lat > maxLatency {
			maxLatency = lat
		}
		switch {
		case ev.err != nil:
			t.Errorf("request failed after %v: %v", ev.end.Sub(ev.start), ev.err)
		case ev.status == 200:
			if ev.end.Before(killAt) {
				before++
			}
			if ev.start.After(restartAt) {
				after++
				if firstOK.IsZero() || ev.end.Before(firstOK) {
					firstOK = ev.end
				}
			}
		case ev.status == 502 && openAIShaped(ev.body, "processor_unavailable"):
			down++
			if ev.end.Before(killAt) {
				t.Errorf("502 before extproc was killed: %s", ev.body)
			}
		default:
			failedOther++
			if failedOther <= 3 {
				t.Errorf("answer neither 200 nor the API-shaped 502: %d %s", ev.status, ev.body)
			}
		}
	}
	if before == 0 || down == 0 || after == 0 {
		t.Fatalf("load did not cover the outage: %d ok before, %d refused while down, %d ok after", before, down, after)
	}
	// Once recovered it stays recovered.
	for _, ev := range events {
		if ev.start.After(firstOK) && ev.status != 200 {
			t.Errorf("status %d after recovery at +%v: %s", ev.status, firstOK.Sub(restartAt), ev.body)
		}
	}
	recovery := firstOK.Sub(restartAt)
	if recovery > time.Second {
		t.Errorf("recovery took %v after the restart, want within 1s", recovery)
	}
	if maxLatency > 2*time.Second {
		t.Errorf("slowest request took %v", maxLatency)
	}
	t.Logf("%d requests: %d ok before the kill, %d API-shaped 502 while down, %d ok after restart; "+
		"first success %v after the restart began (extproc took %v to listen); slowest request %v",
		len(events), before, down, after, recovery.Round(time.Millisecond), listeningAt.Sub(restartAt).Round(time.Millisecond), maxLatency.Round(time.Millisecond))
}

// dyingUpstream sends SSE headers and two chunks, then drops the
// connection: with a FIN (rst=false) or a TCP reset.
func dyingUpstream(t testing.TB, rst bool) *fakeUpstream {
	return upstreamFunc(t, "dying", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("content-type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for i := 0; i < 2; i++ {
			fmt.Fprintf(w, "data: {\"object\":\"chat.completion.chunk\",\"index\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
		time.Sleep(30 * time.Millisecond)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if rst {
			conn.(*net.TCPConn).SetLinger(0)
		}
		conn.Close()
	})
}

// sseAnswer is a streamed answer read to its end (readSSE) and how long
// it took from the request.
type sseAnswer struct {
	status, chunks int
	done           bool
	err            error
	took           time.Duration
}

// postStream posts body to url with headers and reads the answer as a
// stream.
func postStream(t *testing.T, url, body string, headers map[string]string) sseAnswer {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := sseAnswer{status: resp.StatusCode}
	a.chunks, a.done, a.err = readSSE(resp.Body)
	a.took = time.Since(start)
	return a
}

// readSSE reads a stream to its end: the data chunks before [DONE], whether
// [DONE] came, and the read error that ended it (nil for a clean end).
func readSSE(body io.Reader) (chunks int, done bool, err error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if line == "data: [DONE]" {
			done = true
			continue
		}
		if strings.HasPrefix(line, "data: ") {
			chunks++
		}
	}
	return chunks, done, sc.Err()
}

// TestUpstreamDiesMidStream: the upstream drops the connection after two SSE
// chunks. The client gets both chunks and then a broken stream (no [DONE],
// a read error), and extproc's goroutines and open streams return to their
// baseline.
func TestUpstreamDiesMidStream(t *testing.T) {
	t.Parallel()
	for _, rst := range []bool{false, true} {
		name := "fin"
		if rst {
			name = "rst"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := dyingUpstream(t, rst)
			gw := startGateway(t, standardConfig(u, u, ""), gatewayOptions{extraEnv: testEnv})
			// Warm up: the gRPC connection from Envoy exists before the baseline.
			if r := gw.do(t, "GET", "/v1/models", bearer(clientKeyA), ""); r.status != 200 {
				t.Fatalf("warm-up: %d %s", r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
			baseGoroutines := gw.metricOrFail(t, "go_goroutines")

			stream := func() error {
				req, _ := http.NewRequest("POST", gw.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-exact","stream":true}`))
				req.Header.Set("authorization", "Bearer "+clientKeyA)
				req.Header.Set("content-type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return fmt.Errorf("request: %w", err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != 200 {
					b, _ := io.ReadAll(resp.Body)
					return fmt.Errorf("status %d: %s", resp.StatusCode, b)
				}
				chunks, done, err := readSSE(resp.Body)
				if chunks != 2 || done || err == nil {
					return fmt.Errorf("got %d chunks, [DONE]=%v, read error %v; want 2 chunks, no [DONE] and an error", chunks, done, err)
				}
				return nil
			}
			if err := stream(); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); errs <- stream() }()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}

			var goroutines, streams float64
			deadline := time.Now().Add(5 * time.Second)
			for {
				goroutines, streams = gw.metricOrFail(t, "go_goroutines"), gw.metricOrFail(t, "switchyard_extproc_active_streams")
				if streams == 0 && goroutines <= baseGoroutines+2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("extproc did not return to baseline: %v goroutines (baseline %v), %v active streams", goroutines, baseGoroutines, streams)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("after 21 broken streams: %v goroutines (baseline %v), %v active streams", goroutines, baseGoroutines, streams)
			// And it still serves.
			if r := gw.do(t, "GET", "/v1/models", bearer(clientKeyA), ""); r.status != 200 {
				t.Errorf("after broken streams: %d %s", r.status, r.body)
			}
		})
	}
}

// TestBrokenPushesUnderLoad complements TestConfigHotReloadUnderTraffic with
// other ways a config or hook set breaks (valid YAML that does not compile, a
// missing secret, a truncating in-place write, a deleted file, a hook that
// does not parse): under steady load none fails a request, each is counted
// as a failed reload, and the running config and hooks keep serving.
func TestBrokenPushesUnderLoad(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	dir := t.TempDir()
	hooksDir := filepath.Join(dir, "hooks")
	if err := os.Mkdir(hooksDir, 0o700); err != nil {
		t.Fatal(err)
	}
	hook := func(version string) string {
		return "function on_request(req)\n  req:set_header(\"x-hook-version\", \"" + version + "\")\nend\n"
	}
	writeHook := func(content string) {
		t.Helper()
		tmp := filepath.Join(dir, "version.lua.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(hooksDir, "version.lua")); err != nil {
			t.Fatal(err)
		}
	}
	writeHook(hook("1"))
	// A generous hook budget: this test is about broken pushes, and a busy
	// machine can stall a hook call past the 5ms default.
	good := standardConfig(a, b, "") + "hooks: {dir: ./hooks, timeout: 250ms}\n"
	configPath := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(configPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, "", gatewayOptions{extraEnv: testEnv, configFile: configPath})
	hookVersion := func() string {
		return upstreamSaw(t, gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody)).Headers["x-hook-version"]
	}
	if v := hookVersion(); v != "1" {
		t.Fatalf("hook version %q before the pushes, want 1", v)
	}

	l := startLoad(load{workers: 4, timeout: 5 * time.Second}, func(ctx context.Context, _ int64) (result, error) {
		return gw.try(ctx, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody)
	})
	failures := func(series string) float64 {
		v, _ := metricValue(gw.metrics(t), series)
		return v
	}
	waitCount := func(what, series string, want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for failures(series) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s stayed below %v\n%s", what, series, want, grep(gw.metrics(t), "reload"))
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	atomicWrite := func(content string) {
		t.Helper()
		replaceFile(t, configPath, content)
	}
	const configFailures = `switchyard_config_reloads_total{result="failure"}`
	pushes := []struct {
		name string
		push func()
	}{
		{"unknown field", func() { atomicWrite(good + "bogus_field: 1\n") }},
		{"route to an unknown provider", func() { atomicWrite(good + "  - model: ghost\n    provider: nowhere\n") }},
		{"client key from an unset variable", func() {
			atomicWrite(strings.Replace(good, "SWY_TEST_CLIENT_B", "SWY_TEST_NEVER_SET", 1))
		}},
		{"truncating in-place write", func() {
			if err := os.WriteFile(configPath, []byte("providers:\n  - name: half"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"file deleted", func() {
			if err := os.Remove(configPath); err != nil {
				t.Fatal(err)
			}
		}},
	}
	l.waitRequests(t, 20)
	for i, p := range pushes {
		p.push()
		waitCount(p.name, configFailures, float64(i+1))
		if got := gw.metricOrFail(t, "switchyard_config_last_reload_successful"); got != 0 {
			t.Errorf("%s: last_reload_successful %v, want 0", p.name, got)
		}
		if v := hookVersion(); v != "1" {
			t.Errorf("%s: hook version %q, want the running 1", p.name, v)
		}
	}
	atomicWrite(good)
	deadline := time.Now().Add(5 * time.Second)
	for gw.metricOrFail(t, "switchyard_config_last_reload_successful") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the good config was not taken back:\n%s", grep(gw.metrics(t), "reload"))
		}
		time.Sleep(25 * time.Millisecond)
	}

	writeHook("function on_request(req\n  this is not lua\n")
	waitCount("broken hook", "switchyard_hooks_reload_failures_total", 1)
	if v := hookVersion(); v != "1" {
		t.Errorf("after a broken hook: version %q, want the running 1", v)
	}
	writeHook(hook("2"))
	deadline = time.Now().Add(5 * time.Second)
	for hookVersion() != "2" {
		if time.Now().After(deadline) {
			t.Fatalf("the fixed hook was not taken:\n%s", grep(gw.metrics(t), "hooks"))
		}
		time.Sleep(25 * time.Millisecond)
	}
	l.waitRequests(t, 20)
	events := l.stop()
	failed := reportFailures(t, events, "during the pushes")
	if len(events) < 100 {
		t.Errorf("only %d requests ran during the pushes", len(events))
	}
	t.Logf("%d requests during %d broken config pushes and a broken hook, %d failed", len(events), len(pushes), failed)
}

// TestExtprocSIGTERMUnderLoad: SIGTERM while SSE streams and slow uploads
// are in flight. The in-flight requests finish whole, requests after the signal get either
// their answer or the API-shaped 502 (once extproc stopped accepting), and
// extproc waits for the uploads it is serving, then exits 0 within its drain
// timeout. Every step waits for a condition, not for time: on a busy machine
// the requests may take seconds to open.
func TestExtprocSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	const drain = 10 * time.Second
	s := startStandard(t, gatewayOptions{extprocArgs: []string{"-drain-timeout", drain.String()}})
	// Each stream takes about a second: 5 chunks 250ms apart.
	stream := func(began func()) (chunks int, done bool, err error) {
		defer began()
		req, _ := http.NewRequest("POST", s.gw.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-exact","stream":true}`))
		req.Header.Set("authorization", "Bearer "+clientKeyA)
		req.Header.Set("x-test-chunks", "5")
		req.Header.Set("x-test-interval-ms", "250")
		resp, err := client.Do(req)
		if err != nil {
			return 0, false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return 0, false, fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		began()
		return readSSE(resp.Body)
	}
	// An upload still in progress holds its ext_proc stream open (full
	// duplex): the drain must wait for it. Its body ends once released.
	release := make(chan struct{})
	slowUpload := func() error {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(`{"model":"gpt-exact",`))
			<-release
			pw.Write([]byte(`"messages":[]}`))
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", s.gw.url+"/v1/chat/completions", pr)
		req.Header.Set("authorization", "Bearer "+clientKeyA)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("slow upload: status %d: %s", resp.StatusCode, b)
		}
		return nil
	}
	const streams, uploads = 8, 4
	const inFlight = streams + uploads
	var wg sync.WaitGroup
	results := make(chan error, inFlight)
	free := sync.OnceFunc(func() { close(release) })
	defer free() // a failed step must not leave the uploads hanging
	for i := 0; i < uploads; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); results <- slowUpload() }()
	}
	waitFor(t, "the uploads' ext_proc streams", func() bool {
		return s.gw.metricOrFail(t, "switchyard_extproc_active_streams") >= uploads
	})
	var begun atomic.Int32
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunks, done, err := stream(sync.OnceFunc(func() { begun.Add(1) }))
			if err == nil && (chunks != 5 || !done) {
				err = fmt.Errorf("stream ended after %d chunks, [DONE]=%v", chunks, done)
			}
			results <- err
		}()
	}
	waitFor(t, "the streams' answers to begin", func() bool { return begun.Load() == streams })
	termAt := time.Now()
	exited := s.gw.terminateExtproc()

	// New requests while it drains and after it is gone: the uploads are
	// released once extproc has refused a few new requests, and it must not
	// exit before that.
	var newOK, newRefused, refusedAfterExit int
	released := false
	var exitErr error
	exitedAt := time.Time{}
	for exitedAt.IsZero() || refusedAfterExit < 3 {
		r := s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody)
		switch {
		case r.status == 200 && exitedAt.IsZero():
			newOK++
		case r.status == 502 && openAIShaped(r.body, "processor_unavailable"):
			newRefused++
			if !exitedAt.IsZero() {
				refusedAfterExit++
			}
		default:
			t.Fatalf("request after SIGTERM (exited: %v): %d %s", !exitedAt.IsZero(), r.status, r.body)
		}
		select {
		case exitErr = <-exited:
			exitedAt = time.Now()
		default:
		}
		if newRefused >= 3 && !released {
			if !exitedAt.IsZero() {
				t.Fatalf("extproc exited %v after SIGTERM, before the uploads it was serving had finished", exitedAt.Sub(termAt))
			}
			free()
			released = true
		}
		if time.Since(termAt) > drain+2*time.Second {
			t.Fatal("extproc did not exit within its drain timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("in-flight request: %v", err)
		}
	}
	if exitErr != nil {
		t.Errorf("extproc exit: %v", exitErr)
	}
	out := s.gw.extprocOut.String()
	for _, want := range []string{"extproc shutting down", "extproc stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("extproc log lacks %q", want)
		}
	}
	t.Logf("%d in-flight requests finished; extproc exited %v after SIGTERM (status %v); new requests: %d served while draining, %d API-shaped 502",
		inFlight, exitedAt.Sub(termAt).Round(time.Millisecond), exitErr, newOK, newRefused)
}

// TestUpstreamSlowOrRefusing: an upstream silent for longer than the route's
// idle timeout gets an API-shaped 504 within that timeout; a stream that
// stalls midway is cut at the timeout; an upstream refusing connections gets
// an API-shaped 503 at once.
func TestUpstreamSlowOrRefusing(t *testing.T) {
	t.Parallel()
	const idle = 500 * time.Millisecond
	slow := upstreamFunc(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("x-test-stall") == "mid-stream" {
			w.Header().Set("content-type", "text/event-stream")
			w.WriteHeader(200)
			fmt.Fprint(w, "data: {\"index\":0}\n\n")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	slowGW := startGateway(t, standardConfig(slow, slow, ""), gatewayOptions{extraEnv: testEnv,
		envoyConfigArgs: []string{"-upstream-idle-timeout", idle.String()}})
	closed := closedUpstream(t)
	closedGW := startGateway(t, standardConfig(closed, closed, ""), gatewayOptions{extraEnv: testEnv})
	anthropicKey := map[string]string{"x-api-key": clientKeyA}

	tests := []struct {
		name       string
		gw         *gateway
		path       string
		headers    map[string]string
		body       string
		wantStatus int
		wantType   string
		min, max   time.Duration
	}{
		{"slow upstream", slowGW, "/v1/chat/completions", bearer(clientKeyA), goodBody, 504, "server_error", idle - 50*time.Millisecond, idle + time.Second},
		{"slow upstream, anthropic", slowGW, "/v1/messages", anthropicKey, `{"model":"claude-x","max_tokens":1}`, 504, "api_error", idle - 50*time.Millisecond, idle + time.Second},
		{"refused connection", closedGW, "/v1/chat/completions", bearer(clientKeyA), goodBody, 503, "server_error", 0, time.Second},
		{"refused connection, anthropic", closedGW, "/v1/messages", anthropicKey, `{"model":"claude-x","max_tokens":1}`, 503, "api_error", 0, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := tc.gw.do(t, "POST", tc.path, tc.headers, tc.body)
			took := time.Since(start)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("answer after %v, want between %v and %v", took, tc.min, tc.max)
			}
			var gotType string
			if strings.HasPrefix(tc.path, "/v1/messages") {
				var e anthropicError
				testkit.DecodeStrict(t, r.body, &e)
				gotType = e.Error.Type
			} else {
				var e openAIError
				testkit.DecodeStrict(t, r.body, &e)
				gotType = e.Error.Type
				if e.Error.Code != "upstream_error" {
					t.Errorf("code %q, want upstream_error", e.Error.Code)
				}
			}
			if gotType != tc.wantType {
				t.Errorf("error type %q, want %q: %s", gotType, tc.wantType, r.body)
			}
			if strings.Contains(string(r.body), "127.0.0.1") {
				t.Errorf("error body names an internal address: %s", r.body)
			}
			t.Logf("%d after %v: %s", r.status, took.Round(time.Millisecond), r.body)
		})
	}

	t.Run("stream stalls midway", func(t *testing.T) {
		a := postStream(t, slowGW.url+"/v1/chat/completions", `{"model":"gpt-exact","stream":true}`,
			map[string]string{"authorization": "Bearer " + clientKeyA, "x-test-stall": "mid-stream"})
		if a.status != 200 || a.chunks != 1 || a.done || a.err == nil {
			t.Errorf("status %d, %d chunks, [DONE]=%v, read error %v; want 200, 1 chunk, then a broken stream", a.status, a.chunks, a.done, a.err)
		}
		if a.took < idle-50*time.Millisecond || a.took > 3*idle+time.Second {
			t.Errorf("stream cut after %v, want about %v", a.took, idle)
		}
		t.Logf("stalled stream cut after %v: %v", a.took.Round(time.Millisecond), a.err)
	})

	// Both gateways keep serving their next request the same way.
	if r := closedGW.do(t, "GET", "/v1/models", bearer(clientKeyA), ""); r.status != 200 {
		t.Errorf("models after refused upstreams: %d", r.status)
	}
}

// TestExtprocFrozen: extproc stops answering (SIGSTOP) without closing its
// socket. In BUFFERED mode Envoy gives up after the ext_proc message timeout;
// in FULL_DUPLEX_STREAMED mode Envoy 1.40 applies no message timeout, and the
// stream idle timeout bounds the wait instead. Either way the client gets an
// API-shaped 504, and requests pass again once extproc resumes.
//
// The request timeout does not end such a request sooner, even when shorter:
// Envoy stops its clock once the request's body is in.
func TestExtprocFrozen(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	for _, c := range []struct {
		name, mode string
		args       []string
	}{
		{"BUFFERED", "BUFFERED", []string{"-message-timeout", timeout.String()}},
		{"FULL_DUPLEX_STREAMED", "FULL_DUPLEX_STREAMED", []string{"-stream-idle-timeout", timeout.String()}},
		{"FULL_DUPLEX_STREAMED with a shorter request timeout", "FULL_DUPLEX_STREAMED",
			[]string{"-stream-idle-timeout", timeout.String(), "-request-timeout", (timeout / 2).String()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testExtprocFrozen(t, c.mode, c.args, timeout)
		})
	}
}

func testExtprocFrozen(t *testing.T, mode string, envoyArgs []string, msgTimeout time.Duration) {
	s := startStandard(t, gatewayOptions{bodyMode: mode, envoyConfigArgs: envoyArgs})
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody))
	proc, err := os.FindProcess(s.gw.extprocPID())
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			proc.Signal(syscall.SIGCONT)
		}
	}()
	waitStopped(t, s.gw.extprocPID())
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.gw.try(ctx, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("no answer after %v with a %v message timeout: %v", took, msgTimeout, err)
	}
	t.Logf("frozen extproc: %d after %v: %q", r.status, took.Round(time.Millisecond), r.body)
	if took > msgTimeout+time.Second {
		t.Errorf("answer took %v with a %v message timeout", took, msgTimeout)
	}
	if r.status < 500 {
		t.Errorf("status %d, want a 5xx", r.status)
	}
	var e openAIError
	testkit.DecodeStrict(t, r.body, &e)
	if r.status != 504 {
		t.Errorf("status %d, want 504", r.status)
	}
	proc.Signal(syscall.SIGCONT)
	stopped = false
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody))
}

// waitStopped waits until the kernel reports pid as stopped: SIGSTOP is
// delivered asynchronously.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d did not stop", pid)
}
