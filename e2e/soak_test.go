package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Soak knobs: SWY_SOAK_DURATION (default 45s; `make soak` runs 10m) and
// SWY_SOAK_RPS (default 200).
const (
	defaultSoakDuration = 45 * time.Second
	defaultSoakRPS      = 200
	// Growth limits over the second half of the run, least-squares slopes.
	maxRSSSlopeMBPerMin      = 1.0
	maxGoroutineSlopePerMin  = 2.0
	maxFDSlopePerMin         = 2.0
	maxEnvoyRSSSlopeMBPerMin = 2.0
	soakSampleInterval       = time.Second
	soakRequestTimeout       = 10 * time.Second
	soakWorkers              = 64
	// soakGoroutineSlack is how many goroutines more than before the load
	// extproc may have once the load is over and no stream is open.
	soakGoroutineSlack = 2
)

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 45s or 10m", name, v)
	}
	return d
}

// soakSample is one reading of the processes' resources.
type soakSample struct {
	at         time.Duration
	rssMB      float64 // extproc
	heapMB     float64 // extproc live heap right after a forced GC
	goroutines float64 // extproc
	fds        float64 // extproc
	envoyRSSMB float64
}

// soakLimit says when a series grows steadily over the second half of the
// run: its least-squares slope exceeds perMin AND the growth that slope
// predicts over the window exceeds noise. The second condition keeps a
// short run from failing on one GC cycle's worth of RSS; over a long run
// perMin is what binds.
type soakLimit struct {
	name   string
	unit   string
	perMin float64
	noise  float64
	value  func(soakSample) float64
}

var soakLimits = []soakLimit{
	// Measured noise on an idle-free 200 rps run: RSS swings 2.7 MB, the live
	// heap 1 MB (GC and pool timing). Goroutines are not among them: under
	// load they count the requests in flight, which a busy machine
	// multiplies; they are checked at rest instead (soakGoroutineSlack).
	{"extproc RSS", "MB", 1, 3, func(s soakSample) float64 { return s.rssMB }},
	{"extproc live heap", "MB", 0.5, 1.5, func(s soakSample) float64 { return s.heapMB }},
	{"extproc open fds", "", 1, 2, func(s soakSample) float64 { return s.fds }},
	// Envoy's RSS moves in steps of about 4 MB (69.5 -> 73.5 MB within 45 s
	// beside another make test) that a short window reads as a slope.
	{"envoy RSS", "MB", 2, 5, func(s soakSample) float64 { return s.envoyRSSMB }},
}

// liveHeapMB forces a GC in extproc through its pprof endpoint and reads
// the heap still allocated afterwards: what a leak would grow.
func liveHeapMB(t *testing.T, g *gateway) float64 {
	t.Helper()
	resp, err := http.Get(g.metricsURL() + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatalf("forcing a GC in extproc: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return g.metricOrFail(t, "go_memstats_heap_alloc_bytes") / (1 << 20)
}

// procRSSMB reads VmRSS from /proc/PID/status.
func procRSSMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func procFDs(pid int) (int, error) {
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	return len(ents), err
}

// slope is the least-squares slope of y over x.
func slope(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// soakMix is the request mix: mostly routed calls on both APIs, some
// streams and some refusals, so every path runs for the whole soak.
func soakMix(i int64) (path string, headers map[string]string, body string, wantStatus int) {
	switch i % 10 {
	case 0:
		return "/v1/messages", map[string]string{"x-api-key": clientKeyA, "anthropic-version": "2023-06-01"},
			`{"model":"claude-3-haiku","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, 200
	case 1:
		return "/v1/chat/completions", bearer(clientKeyA), `{"model":"renamed","messages":[{"role":"user","content":"hi"}]}`, 200
	case 2:
		return "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact","stream":true,"messages":[]}`, 200
	case 3:
		return "/v1/chat/completions", bearer(clientKeyA), `{"model":"no-such-model-` + strconv.FormatInt(i, 10) + `"}`, 404
	case 4:
		return "/v1/chat/completions", bearer("swy-wrong-" + strconv.FormatInt(i, 10)), `{"model":"gpt-exact"}`, 401
	case 5:
		return "/v1/chat/completions", bearer(clientKeyA), `{"model":`, 400
	default:
		return "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact","messages":[{"role":"user","content":"hello there"}]}`, 200
	}
}

// TestSoak drives a fixed request rate through the full gateway and samples
// extproc's RSS, goroutines and open file descriptors (and Envoy's RSS) every
// second. Over the second half of the run, after warm-up, none may grow
// steadily: the least-squares slopes must stay under the limits above.
func TestSoak(t *testing.T) {
	duration := envDuration(t, "SWY_SOAK_DURATION", defaultSoakDuration)
	rps := defaultSoakRPS
	if v := os.Getenv("SWY_SOAK_RPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SWY_SOAK_RPS=%q: want a positive integer", v)
		}
		rps = n
	}
	s := startStandard(t, gatewayOptions{})
	pid := s.gw.extprocPID()
	// Warm up: Envoy's gRPC connection and the metrics connection exist
	// before the baseline.
	upstreamSaw(t, s.gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), goodBody))
	baseGoroutines := waitAtRest(t, s.gw, math.Inf(1))

	var samples []soakSample
	start := time.Now()
	// Open loop: request i is due at start + i/rps whatever the answers do.
	// A due request no worker is free to send counts as dropped.
	l := startLoad(load{workers: soakWorkers, timeout: soakRequestTimeout, rate: rps}, func(ctx context.Context, i int64) (result, error) {
		path, headers, body, want := soakMix(i)
		r, err := s.gw.try(ctx, "POST", path, headers, body)
		if err == nil && r.status != want {
			err = fmt.Errorf("%s %s: status %d, want %d", path, body, r.status, want)
		}
		return r, err
	})
	sample := func() {
		at := time.Since(start)
		rss, err := procRSSMB(pid)
		if err != nil {
			t.Fatalf("reading extproc RSS: %v", err)
		}
		fds, err := procFDs(pid)
		if err != nil {
			t.Fatalf("reading extproc fds: %v", err)
		}
		envoyRSS, err := procRSSMB(s.gw.envoyPID)
		if err != nil {
			t.Fatalf("reading envoy RSS: %v", err)
		}
		smp := soakSample{at: at, rssMB: rss, heapMB: liveHeapMB(t, s.gw), goroutines: s.gw.metricOrFail(t, "go_goroutines"),
			fds: float64(fds), envoyRSSMB: envoyRSS}
		samples = append(samples, smp)
		if len(samples)%15 == 0 {
			done, failed := l.progress()
			t.Logf("t=%3.0fs extproc rss %.1fMB heap %.2fMB goroutines %.0f fds %.0f; envoy rss %.1fMB; %d answered, %d failed",
				at.Seconds(), smp.rssMB, smp.heapMB, smp.goroutines, smp.fds, smp.envoyRSSMB, done, failed)
		}
	}
	tick := time.NewTicker(soakSampleInterval)
	for time.Since(start) < duration {
		<-tick.C
		sample()
	}
	tick.Stop()
	events := l.stop()
	elapsed := time.Since(start)
	atRest := waitAtRest(t, s.gw, baseGoroutines+soakGoroutineSlack)
	sent, dropped := int64(len(events)), l.dropped.Load()
	var failed int64
	var firstFailure error
	for _, ev := range events {
		if ev.err != nil {
			if failed++; failed == 1 {
				firstFailure = ev.err
			}
		}
	}

	if len(samples) < 10 {
		t.Fatalf("only %d samples; run the soak for at least 10s", len(samples))
	}
	second := samples[len(samples)/2:]
	var x []float64
	for _, smp := range second {
		x = append(x, smp.at.Minutes())
	}
	window := x[len(x)-1] - x[0]
	rate := float64(sent) / elapsed.Seconds()
	t.Logf("soak: %v at %d rps target: %d requests sent (%.1f/s), %d failed, %d ticks dropped; slopes over the last %.1f min",
		elapsed.Round(time.Second), rps, sent, rate, failed, dropped, window)
	for _, l := range soakLimits {
		var y []float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, smp := range second {
			v := l.value(smp)
			y = append(y, v)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		sl := slope(x, y)
		t.Logf("%-18s first %.2f%s, last %.2f%s, second half %.2f..%.2f, slope %+.3f%s/min (limit %.1f)",
			l.name, l.value(samples[0]), l.unit, l.value(samples[len(samples)-1]), l.unit, lo, hi, sl, l.unit, l.perMin)
		if sl > l.perMin && sl*window > l.noise {
			t.Errorf("%s grows steadily: %+.3f%s/min over the second half (limit %.1f), %+.2f%s over %.1f min",
				l.name, sl, l.unit, l.perMin, sl*window, l.unit, window)
		}
	}
	t.Logf("extproc goroutines at rest: %.0f before the load, %.0f after (slack %d)", baseGoroutines, atRest, soakGoroutineSlack)
	if atRest > baseGoroutines+soakGoroutineSlack {
		t.Errorf("extproc kept %.0f goroutines after the load, %.0f before: a goroutine leak", atRest, baseGoroutines)
	}
	if failed > 0 {
		t.Errorf("%d of %d soak requests did not get their expected answer; first: %v", failed, sent, firstFailure)
	}
	// Whether this machine sustains the rate is the benchmark's question: on
	// two cores shared with another test run, the generator and the gateway
	// fall seconds behind with nothing wrong (dropped ticks are in the log
	// above). A gateway that stalls serves less than half the rate.
	if rate < float64(rps)/2 {
		t.Errorf("achieved %.1f rps of %d (%d ticks dropped): the gateway stalled", rate, rps, dropped)
	}
}

// waitAtRest waits (up to 10s) until extproc has no stream open and at
// most want goroutines, and returns its goroutine count then.
func waitAtRest(t *testing.T, g *gateway, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		goroutines := g.metricOrFail(t, "go_goroutines")
		streams := g.metricOrFail(t, "switchyard_extproc_active_streams")
		if (streams == 0 && goroutines <= want) || time.Now().After(deadline) {
			return goroutines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSlope(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
		want float64
	}{
		{"rising line", []float64{0, 1, 2, 3}, []float64{1, 3, 5, 7}, 2},
		{"flat with noise", []float64{0, 1, 2, 3}, []float64{5, 6, 5, 6}, 0.2},
		{"falling", []float64{0, 0.5, 1}, []float64{10, 9, 8}, -2},
		{"one point", []float64{1}, []float64{4}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := slope(tc.x, tc.y); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("slope = %v, want %v", got, tc.want)
			}
		})
	}
}
