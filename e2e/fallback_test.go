package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	firstKey  = "sk-first-SECRET-91a7"
	secondKey = "sk-second-SECRET-2c4e"
)

// scripted is a fake provider whose next answers a test decides: a status
// with a body and headers, silence, or a stream cut midway; otherwise it
// answers like fakeUpstream. It records every request it received.
type scripted struct {
	*fakeUpstream
	mu   sync.Mutex
	seen []seen
	mode atomic.Pointer[string]
	// cut holds a "cut" stream open after its first chunk until closed.
	cut chan struct{}
}

func startScripted(t testing.TB, name string) *scripted {
	s := &scripted{cut: make(chan struct{})}
	s.fakeUpstream = upstreamFunc(t, name, s.serve)
	s.fakeUpstream.name = name
	s.set("ok")
	return s
}

func (s *scripted) set(mode string) { s.mode.Store(&mode) }

func (s *scripted) hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *scripted) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		t.Fatalf("%s received nothing", s.name)
	}
	return s.seen[len(s.seen)-1]
}

func (s *scripted) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := seen{Upstream: s.name, Path: r.URL.RequestURI(), Headers: map[string]string{}, ContentLength: r.ContentLength, BodyLen: len(body), Body: string(body)}
	for k, v := range r.Header {
		rec.Headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	s.mu.Lock()
	s.seen = append(s.seen, rec)
	s.mu.Unlock()
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	switch mode := *s.mode.Load(); mode {
	case "ok":
		s.fakeUpstream.serve(w, r)
	case "silent":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	case "cut":
		w.Header().Set("content-type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "data: {\"partial\":true}\n\n")
		w.(http.Flusher).Flush()
		// The test lets go once the client has the first chunk: from then
		// on nothing can be retried.
		select {
		case <-s.cut:
		case <-r.Context().Done():
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	default: // "429 2": a status, and Retry-After seconds
		var status, retryAfter int
		fmt.Sscan(mode, &status, &retryAfter)
		if retryAfter > 0 {
			w.Header().Set("retry-after", fmt.Sprint(retryAfter))
		}
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"%s says %d","type":"server_error","code":"upstream"}}`, s.name, status)
	}
}

type fallbackGateway struct {
	first, second *scripted
	gw            *gateway
}

func startFallback(t *testing.T, mode string) fallbackGateway {
	t.Helper()
	f := fallbackGateway{first: startScripted(t, "first"), second: startScripted(t, "second")}
	config := fmt.Sprintf(`max_body_bytes: 4194304
providers:
  - {name: first, url: 'http://127.0.0.1:%d', schema: openai, auth: {type: bearer, key_env: SWY_FB_FIRST}}
  - {name: second, url: 'http://127.0.0.1:%d', schema: openai, path_prefix: /second, auth: {type: header, header: x-api-key, key_env: SWY_FB_SECOND}}
  - {name: refused, url: 'http://127.0.0.1:1', schema: openai}
routes:
  - model: smart
    provider: first
    fallbacks: [{provider: second, model: second-model-with-a-longer-name}]
    retry: {first_byte_timeout: 1s}
  - model: from-refused
    provider: refused
    fallbacks: [{provider: second}]
  - model: plain
    provider: first
ejection: {consecutive_failures: 5, duration: 2s}
`, f.first.port(), f.second.port())
	f.gw = startGateway(t, config, gatewayOptions{bodyMode: mode, logLevel: "debug",
		extraEnv: []string{"SWY_FB_FIRST=" + firstKey, "SWY_FB_SECOND=" + secondKey}})
	return f
}

// TestFallback: each way the first provider can fail moves the request to
// the second, which receives its own key only, its own model and path, an
// exact Content-Length and otherwise the client's body byte for byte.
func TestFallback(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"FULL_DUPLEX_STREAMED", "BUFFERED"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := startFallback(t, mode)
			body := `{"model":"smart","messages":[{"role":"user","content":"h\u00e9llo"}],"temperature":0.5}`
			// Every attempt replays the body from Envoy's buffer: one near
			// max_body_bytes (4 MiB), far over the listener's 1 MiB buffer in
			// full-duplex mode, must reach the second provider whole.
			large := `{"model":"smart","messages":[{"role":"user","content":"` + strings.Repeat("x", 4_100_000) + `"}]}`
			for _, tc := range []struct{ name, firstMode, model, body string }{
				{"503", "503", "smart", ""},
				{"503 with a body near the limit", "503", "smart", large},
				{"529 overloaded", "529", "smart", ""},
				{"silent past first_byte_timeout", "silent", "smart", ""},
				{"connection refused", "ok", "from-refused", ""},
				// Last: Retry-After keeps the first provider out of the
				// chains for a second.
				{"429 with Retry-After", "429 1", "smart", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					f.first.set(tc.firstMode)
					reqBody := strings.Replace(body, `"smart"`, `"`+tc.model+`"`, 1)
					if tc.body != "" {
						reqBody = tc.body
					}
					start := time.Now()
					r := f.gw.do(t, "POST", "/v1/chat/completions?v=1", bearer("client-key"), reqBody)
					got := upstreamSaw(t, r)
					wantModel := "second-model-with-a-longer-name"
					if tc.model != "smart" {
						wantModel = tc.model
					}
					if got.Upstream != "second" || got.Path != "/second/v1/chat/completions?v=1" {
						t.Fatalf("served by %s at %s, want second at /second/v1/chat/completions?v=1", got.Upstream, got.Path)
					}
					if got.Headers["x-api-key"] != secondKey || got.Headers["authorization"] != "" {
						t.Errorf("second got x-api-key %q and authorization %q: want its own key only", got.Headers["x-api-key"], got.Headers["authorization"])
					}
					if want := strings.Replace(reqBody, `"`+tc.model+`"`, `"`+wantModel+`"`, 1); got.Body != want {
						t.Errorf("second got body\n%s\nwant\n%s", got.Body, want)
					}
					if got.ContentLength != int64(got.BodyLen) {
						t.Errorf("content-length %d for a %d-byte body", got.ContentLength, got.BodyLen)
					}
					for _, h := range []string{"x-switchyard-attempts", "x-switchyard-retry", "x-switchyard-cluster"} {
						if v, ok := got.Headers[h]; ok {
							t.Errorf("internal header %s reached the provider: %q", h, v)
						}
					}
					if tc.model == "smart" {
						first := f.first.last(t)
						if first.Headers["authorization"] != "Bearer "+firstKey || first.Headers["x-api-key"] != "" || !strings.Contains(first.Body, `"smart"`) {
							t.Errorf("first got authorization %q, x-api-key %q, body %s", first.Headers["authorization"], first.Headers["x-api-key"], first.Body)
						}
					}
					t.Logf("answered in %v", time.Since(start).Round(time.Millisecond))
				})
			}
		})
	}
}

// TestFallbackAllFail: when every attempt fails the client gets the last
// failure, after exactly one attempt per provider.
func TestFallbackAllFail(t *testing.T) {
	t.Parallel()
	f := startFallback(t, "")
	f.first.set("503")
	f.second.set("502")
	before1, before2 := f.first.hits(), f.second.hits()
	r := f.gw.do(t, "POST", "/v1/chat/completions", bearer("k"), `{"model":"smart"}`)
	if r.status != 502 || !strings.Contains(string(r.body), "second says 502") {
		t.Errorf("status %d body %s, want the second provider's 502", r.status, r.body)
	}
	if n1, n2 := f.first.hits()-before1, f.second.hits()-before2; n1 != 1 || n2 != 1 {
		t.Errorf("attempts: first %d, second %d; want one each", n1, n2)
	}
	waitMetric(t, f.gw, `switchyard_fallbacks_total{from="first",reason="503",to="second"}`, 1)
}

// TestFallbackEjection: after five failed attempts in a row the first
// provider is ejected: requests go straight to the second until the
// ejection time has passed, then the first is tried again.
func TestFallbackEjection(t *testing.T) {
	t.Parallel()
	f := startFallback(t, "")
	f.first.set("503")
	for i := 0; i < 5; i++ {
		if r := f.gw.do(t, "POST", "/v1/chat/completions", bearer("k"), `{"model":"smart"}`); r.status != 200 {
			t.Fatalf("request %d: status %d", i, r.status)
		}
	}
	waitMetric(t, f.gw, `switchyard_provider_ejections_total{provider="first"}`, 1)
	hits := f.first.hits()
	for i := 0; i < 5; i++ {
		if r := f.gw.do(t, "POST", "/v1/chat/completions", bearer("k"), `{"model":"smart"}`); r.status != 200 {
			t.Fatalf("request %d while ejected: status %d", i, r.status)
		}
	}
	if f.first.hits() != hits {
		t.Errorf("the ejected provider got %d requests", f.first.hits()-hits)
	}
	f.first.set("ok")
	deadline := time.Now().Add(10 * time.Second)
	for f.first.hits() == hits {
		if time.Now().After(deadline) {
			t.Fatal("the ejected provider was never tried again")
		}
		f.gw.do(t, "POST", "/v1/chat/completions", bearer("k"), `{"model":"smart"}`)
		time.Sleep(50 * time.Millisecond)
	}
	if got := upstreamSaw(t, f.gw.do(t, "POST", "/v1/chat/completions", bearer("k"), `{"model":"smart"}`)); got.Upstream != "first" {
		t.Errorf("after the ejection, served by %s, want first", got.Upstream)
	}
}

// TestFallbackStreams: a stream whose first provider fails before the first
// byte falls back; one cut midway ends for the client at once instead of
// hanging, since nothing can be retried after the first byte.
func TestFallbackStreams(t *testing.T) {
	t.Parallel()
	f := startFallback(t, "")
	f.first.set("503")
	r := f.gw.do(t, "POST", "/v1/chat/completions", bearer("k"), `{"model":"smart","stream":true}`)
	if r.status != 200 || !strings.Contains(string(r.body), "second-model-with-a-longer-name") || !strings.Contains(string(r.body), "[DONE]") {
		t.Fatalf("stream after a 503: status %d body %s", r.status, r.body)
	}

	f.first.set("cut")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", f.gw.url+"/v1/chat/completions", strings.NewReader(`{"model":"smart","stream":true}`))
	req.Header.Set("content-type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, _ := br.ReadString('\n')
	close(f.first.cut)
	_, rest := io.ReadAll(br)
	if resp.StatusCode != 200 || !strings.Contains(first, "partial") {
		t.Errorf("status %d, first line %q", resp.StatusCode, first)
	}
	if rest == nil {
		t.Error("a stream cut midway ended as if complete")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the cut stream took %v to end", took)
	}
}

// TestFallbackUnderLoad: with the first provider failing every other
// request, clients see no failure, and the extproc's streams and
// goroutines go back down afterwards.
func TestFallbackUnderLoad(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	first := startScripted(t, "first")
	second := startScripted(t, "second")
	half := upstreamFunc(t, "first", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			first.set("503")
		} else {
			first.set("ok")
		}
		first.serve(w, r)
	})
	config := fmt.Sprintf(`providers:
  - {name: first, url: 'http://127.0.0.1:%d', schema: openai}
  - {name: second, url: 'http://127.0.0.1:%d', schema: openai}
routes:
  - model: smart
    provider: first
    fallbacks: [{provider: second}]
ejection: {consecutive_failures: 1000}
`, half.port(), second.port())
	gw := startGateway(t, config, gatewayOptions{})
	gw.do(t, "POST", "/v1/chat/completions", nil, `{"model":"smart","messages":[]}`)
	goroutines := gw.metricOrFail(t, "go_goroutines")
	l := startLoad(load{workers: 8, timeout: 5 * time.Second}, func(ctx context.Context, _ int64) (result, error) {
		return gw.try(ctx, "POST", "/v1/chat/completions", nil, `{"model":"smart","messages":[]}`)
	})
	time.Sleep(10 * time.Second)
	events := l.stop()
	failed := reportFailures(t, events, "under load")
	t.Logf("%d requests in 10s, %d failed, first saw %d, second %d", len(events), failed, n.Load(), second.hits())
	if failed > 0 || len(events) < 500 {
		t.Errorf("%d of %d requests failed", failed, len(events))
	}
	waitMetric(t, gw, "switchyard_extproc_active_streams", 0)
	// Idle connections from the load may keep a few goroutines; a leak per
	// request or attempt would leave thousands.
	deadline := time.Now().Add(5 * time.Second)
	for gw.metricOrFail(t, "go_goroutines") > goroutines+20 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %v before the load, %v after", goroutines, gw.metricOrFail(t, "go_goroutines"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitMetric waits until a series reaches want (at least, for counters).
func waitMetric(t *testing.T, g *gateway, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _ := metricValue(g.metrics(t), series)
		if v == want || (want > 0 && v >= want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v\n%s", series, v, want, grep(g.metrics(t), "switchyard_"))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// BenchmarkFallback measures what one fallback adds to a request, against
// the same request served by its first provider, in one run:
//
//	go test -run '^$' -bench BenchmarkFallback -benchtime 2000x ./e2e
func BenchmarkFallback(b *testing.B) {
	first, second := startScripted(b, "first"), startScripted(b, "second")
	config := fmt.Sprintf(`providers:
  - {name: first, url: 'http://127.0.0.1:%d', schema: openai}
  - {name: second, url: 'http://127.0.0.1:%d', schema: openai}
routes:
  - model: smart
    provider: first
    fallbacks: [{provider: second}]
  - model: plain
    provider: first
ejection: {consecutive_failures: 1000000}
`, first.port(), second.port())
	gw := startGateway(b, config, gatewayOptions{})
	for _, bc := range []struct{ name, model, firstMode string }{
		{"no_fallbacks_route", "plain", "ok"},
		{"fallback_route_first_ok", "smart", "ok"},
		{"one_fallback", "smart", "503"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			first.set(bc.firstMode)
			body := `{"model":"` + bc.model + `","messages":[]}`
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if r := gw.do(b, "POST", "/v1/chat/completions", nil, body); r.status != 200 {
					b.Fatalf("status %d: %s", r.status, r.body)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
