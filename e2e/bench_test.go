package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/loadtest/bench"
	"switchyard/loadtest/mockllm"
)

// startBenchMock serves the benchmark's mock upstream on a port the kernel
// picks, until the test ends, and returns its URL.
func startBenchMock(t *testing.T, opts mockllm.Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mock := &http.Server{Handler: mockllm.New(opts), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = mock.Serve(ln) }()
	t.Cleanup(func() { mock.Close() })
	return "http://" + ln.Addr().String()
}

// TestBenchFullStack runs the benchmark runner on tiny stages against the
// real stack it measures: the mock upstream, Envoy (ENVOY_BIN) without
// ext_proc, and three Envoy + extproc pairs (one round trip, BUFFERED, and
// with a Lua hook). It proves `make bench` can start, preflight and measure
// every path and that results.json is well-formed and consistent. No
// latency is asserted: throughput belongs to the benchmark, not to a test.
func TestBenchFullStack(t *testing.T) {
	// Not parallel: the stage timings should not share the two cores with
	// the other end-to-end tests more than they must.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	mockURL := startBenchMock(t, mockllm.Options{Latency: 5 * time.Millisecond, StreamChunks: 3, ChunkInterval: time.Millisecond})
	dir := t.TempDir()
	stack, err := bench.StartStack(ctx, bench.StackConfig{
		Dir: dir, ExtprocBin: extprocBin, EnvoyBin: envoyBin, UpstreamURL: mockURL,
	})
	if err != nil {
		t.Fatalf("starting the benchmark stack (Envoy %s, extproc %s): %v", envoyBin, extprocBin, err)
	}
	t.Cleanup(stack.Close)

	wantPaths := []string{bench.PathDirect, bench.PathEnvoy, bench.PathGateway, bench.PathGatewayBuffered, bench.PathGatewayHook}
	var names []string
	for _, p := range stack.Paths {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff(wantPaths, names); diff != "" {
		t.Fatalf("paths (-want +got)\n%s", diff)
	}
	// Preflight proves each path reaches the mock and that only
	// gateway_hook runs the hook.
	if err := bench.Preflight(ctx, stack.Paths); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	// The BUFFERED path really runs Envoy with every request body buffered;
	// the shipped one (BY_SIZE) small bodies full duplex.
	for _, p := range stack.Paths {
		if p.Name != bench.PathGateway && p.Name != bench.PathGatewayBuffered {
			continue
		}
		cfg, err := os.ReadFile(filepath.Join(dir, "envoy_"+p.Name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		duplex := bytes.Contains(cfg, []byte("request_body_mode: FULL_DUPLEX_STREAMED"))
		if duplex != (p.Name == bench.PathGateway) {
			t.Errorf("%s: Envoy config has a FULL_DUPLEX_STREAMED request body = %v", p.Name, duplex)
		}
	}

	plan := bench.Plan{
		Mode:           "test",
		Paths:          stack.Paths,
		Rounds:         1,
		Warmup:         100 * time.Millisecond,
		SerialDuration: 500 * time.Millisecond,
		VUs:            []int{2},
		VUDuration:     time.Second,
		Rates:          []int{50},
		RateDuration:   500 * time.Millisecond,
		StreamVUs:      2,
		StreamDuration: 500 * time.Millisecond,
		SampleInterval: 100 * time.Millisecond,
	}
	var progress bytes.Buffer
	res, err := bench.Run(ctx, plan, &progress)
	if err != nil {
		t.Fatalf("running the plan: %v\nprogress:\n%s", err, progress.String())
	}
	out := t.TempDir()
	if err := bench.Write(out, res); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(filepath.Join(out, bench.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var got bench.Result
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %s: %v", bench.JSONFile, err)
	}
	if got.Mode != "test" || got.Machine.CPUs <= 0 || got.Started.IsZero() || got.Finished.Before(got.Started) {
		t.Errorf("header: mode %q machine %+v started %v finished %v", got.Mode, got.Machine, got.Started, got.Finished)
	}

	type key struct {
		Kind, Path string
		Load       int
	}
	var keys, want []key
	for _, kind := range []struct {
		kind string
		load int
	}{{bench.KindSerial, 1}, {bench.KindClosed, 2}, {bench.KindOpen, 50}, {bench.KindStream, 2}} {
		for _, p := range wantPaths {
			want = append(want, key{kind.kind, p, kind.load})
		}
	}
	for _, s := range got.Stages {
		keys = append(keys, key{s.Kind, s.Path, s.Load})
		name := s.Kind + "/" + s.Path
		if s.Requests <= 0 || s.Requests != s.Successes+s.Errors {
			t.Errorf("%s: requests %d != successes %d + errors %d", name, s.Requests, s.Successes, s.Errors)
		}
		if s.Errors != 0 {
			t.Errorf("%s: %d errors %v: %v", name, s.Errors, s.ErrorKinds, s.ErrorBodies)
		}
		if s.Seconds <= 0 || s.RPS <= 0 || s.MachineBusy < 0 || s.MachineBusy > 1 {
			t.Errorf("%s: seconds %v rps %v machine busy %v", name, s.Seconds, s.RPS, s.MachineBusy)
		}
		l := s.Latency
		if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Mean > 0) {
			t.Errorf("%s: latency not ordered or zero: %+v", name, l)
		}
		if l.P50 < 5 {
			t.Errorf("%s: p50 %.2fms is below the mock's 5ms latency", name, l.P50)
		}
		if (s.Kind == bench.KindStream) != (s.TTFB != nil) {
			t.Errorf("%s: ttfb = %v", name, s.TTFB)
		} else if s.TTFB != nil && !(s.TTFB.P50 > 0 && s.TTFB.P50 <= l.P50) {
			t.Errorf("%s: ttfb p50 %.2f not in (0, latency p50 %.2f]", name, s.TTFB.P50, l.P50)
		}
		// Every proxy path samples its Envoy, and each gateway path its
		// extproc; the direct path samples nothing.
		roles := map[string]int{}
		for _, p := range s.Procs {
			roles[p.Role]++
			if p.RSSMaxMB <= 0 || p.RSSAvgMB <= 0 || p.RSSAvgMB > p.RSSMaxMB || p.CPUSeconds < 0 {
				t.Errorf("%s: %s used %+v", name, p.Name, p)
			}
		}
		wantRoles := map[string]int{}
		switch s.Path {
		case bench.PathEnvoy:
			wantRoles["envoy"] = 1
		case bench.PathGateway, bench.PathGatewayBuffered, bench.PathGatewayHook:
			wantRoles["envoy"], wantRoles["extproc"] = 1, 1
		}
		if diff := cmp.Diff(wantRoles, roles); diff != "" {
			t.Errorf("%s: sampled processes by role (-want +got)\n%s", name, diff)
		}
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("stages (-want +got)\n%s", diff)
	}
	// Envoy and extproc burn CPU for every request; over all stages of a
	// gateway path the sampled CPU time cannot be zero.
	cpu := map[string]float64{}
	for _, s := range got.Stages {
		for _, p := range s.Procs {
			cpu[p.Name] += p.CPUSeconds
		}
	}
	for _, name := range []string{"envoy_gateway", "extproc_gateway", "extproc_gateway_buffered", "extproc_gateway_hook"} {
		if cpu[name] <= 0 {
			t.Errorf("%s: no CPU time sampled over the run (%v)", name, cpu)
		}
	}
	if len(got.RSS) == 0 {
		t.Errorf("no RSS samples")
	}

	md, err := os.ReadFile(filepath.Join(out, bench.MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"| 2 | `gateway_buffered` |", "| 1 | `gateway_hook` |", "## Errors\n\nNone"} {
		if !bytes.Contains(md, []byte(w)) {
			t.Errorf("results.md lacks %q:\n%s", w, md)
		}
	}
	for _, f := range []string{bench.LatencyChart, bench.RSSChart} {
		fh, err := os.Open(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Errorf("decoding %s: %v", f, err)
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", strings.TrimSpace(progress.String()))
		for _, p := range stack.Paths {
			for _, proc := range p.Procs {
				if b, err := os.ReadFile(filepath.Join(dir, proc.Name+".log")); err == nil {
					t.Logf("%s log:\n%s", proc.Name, tail(string(b), 2000))
				}
			}
		}
	}
}
