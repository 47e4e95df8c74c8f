package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/testkit"
	"switchyard/loadtest/mockllm"
)

// TestRunTinyPlan runs every kind of stage for a moment against the mock in
// process and checks that the files written are well-formed and
// consistent. The full stack (Envoy, extproc) is exercised end to end
// elsewhere; this proves the runner and its report.
func TestRunTinyPlan(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{Latency: 5 * time.Millisecond, StreamChunks: 3, ChunkInterval: time.Millisecond}))
	t.Cleanup(srv.Close)

	self := Proc{Name: "extproc_self", Role: roleExtproc, PID: os.Getpid()}
	plan := Plan{
		Mode: "test",
		Paths: []Path{
			{Target: Target{Name: BaselinePath, URL: srv.URL}},
			{Target: Target{Name: "gateway", URL: srv.URL, Headers: map[string]string{"x-team": "bench"}}, Procs: []Proc{self}},
		},
		Rounds:         2,
		Warmup:         50 * time.Millisecond,
		SerialDuration: 200 * time.Millisecond,
		VUs:            []int{2},
		VUDuration:     400 * time.Millisecond,
		Rates:          []int{40},
		RateDuration:   300 * time.Millisecond,
		StreamVUs:      2,
		StreamDuration: 200 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond,
		Settings:       map[string]string{"envoy_concurrency": "1"},
	}
	var progress bytes.Buffer
	res, err := Run(context.Background(), plan, &progress)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}

	// results.json decodes strictly into Result.
	data, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var got Result
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %s: %v", JSONFile, err)
	}

	type key struct {
		Kind, Path string
		Load       int
	}
	var keys []key
	busy := 0.0
	for _, s := range got.Stages {
		keys = append(keys, key{s.Kind, s.Path, s.Load})
		busy += s.MachineBusy
		if s.MachineBusy < 0 || s.MachineBusy > 1 {
			t.Errorf("%s/%s: machine busy %v not in [0, 1]", s.Kind, s.Path, s.MachineBusy)
		}
		name := s.Kind + "/" + s.Path
		if s.Requests <= 0 || s.Requests != s.Successes+s.Errors {
			t.Errorf("%s: requests %d != successes %d + errors %d", name, s.Requests, s.Successes, s.Errors)
		}
		if s.Errors != 0 {
			t.Errorf("%s: %d errors %v against a healthy mock", name, s.Errors, s.ErrorKinds)
		}
		if s.Rounds != 2 || s.Seconds <= 0 || s.RPS <= 0 {
			t.Errorf("%s: rounds %d seconds %v rps %v", name, s.Rounds, s.Seconds, s.RPS)
		}
		l := s.Latency
		if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Mean > 0) {
			t.Errorf("%s: latency not ordered or zero: %+v", name, l)
		}
		if l.P50 < 5 {
			t.Errorf("%s: p50 %.2fms is below the mock's 5ms latency", name, l.P50)
		}
		if (s.Kind == KindStream) != (s.TTFB != nil) {
			t.Errorf("%s: ttfb = %v", name, s.TTFB)
		}
		if s.TTFB != nil && !(s.TTFB.P50 > 0 && s.TTFB.P50 <= l.P50) {
			t.Errorf("%s: ttfb p50 %.2f not in (0, latency p50 %.2f]", name, s.TTFB.P50, l.P50)
		}
		if s.Path == "gateway" {
			if len(s.Procs) != 1 || s.Procs[0].Name != self.Name || s.Procs[0].RSSMaxMB <= 0 || s.Procs[0].RSSAvgMB <= 0 {
				t.Errorf("%s: procs = %+v", name, s.Procs)
			}
		} else if len(s.Procs) != 0 {
			t.Errorf("%s: direct path sampled %+v", name, s.Procs)
		}
	}
	wantKeys := []key{
		{KindSerial, "direct", 1}, {KindSerial, "gateway", 1},
		{KindClosed, "direct", 2}, {KindClosed, "gateway", 2},
		{KindOpen, "direct", 40}, {KindOpen, "gateway", 40},
		{KindStream, "direct", 2}, {KindStream, "gateway", 2},
	}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("stages (-want +got)\n%s", diff)
	}
	if busy <= 0 {
		t.Errorf("the machine was never busy while the load ran")
	}
	if len(got.RSS) == 0 {
		t.Errorf("no RSS samples")
	}
	if got.Machine.CPUs <= 0 || got.Started.IsZero() || got.Finished.Before(got.Started) {
		t.Errorf("machine %+v started %v finished %v", got.Machine, got.Started, got.Finished)
	}

	// The progress lines alternate the order of paths between rounds.
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 16 {
		t.Fatalf("got %d progress lines, want 16:\n%s", len(lines), progress.String())
	}
	if !strings.Contains(lines[0], "direct") || !strings.Contains(lines[1], "gateway") ||
		!strings.Contains(lines[2], "gateway") || !strings.Contains(lines[3], "direct") {
		t.Errorf("paths not interleaved:\n%s", strings.Join(lines[:4], "\n"))
	}

	md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Closed loop (VU stages)", "## Errors\n\nNone", "## Streaming: time to first byte", "| 2 | `gateway` |", "×direct", "| 40 | `direct` |", "Settings: envoy_concurrency=`1`."} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{LatencyChart, RSSChart} {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("decoding %s: %v", f, err)
		}
		if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
			t.Errorf("%s is %v", f, b)
		}
	}
}

// TestRunCountsErrors points a path at a closed port: every request fails
// and is counted as an error.
func TestRunCountsErrors(t *testing.T) {
	t.Parallel()
	addr := testkit.RefusingAddr(t)
	res, err := Run(context.Background(), Plan{
		Mode:           "test",
		Paths:          []Path{{Target: Target{Name: BaselinePath, URL: "http://" + addr}}},
		SerialDuration: 100 * time.Millisecond,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stages) != 1 {
		t.Fatalf("stages = %+v", res.Stages)
	}
	s := res.Stages[0]
	if s.Requests == 0 || s.Errors != s.Requests || s.Successes != 0 || s.ErrorKinds["net_dial"] != s.Errors {
		t.Errorf("stage = %+v", s)
	}
}

// TestRunReportsErrorAnswers points a path at a server that fails every
// request with a 500: the stage counts them and keeps the answer's body,
// and results.md shows it.
func TestRunReportsErrorAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"hook timed out"}}`, http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	res, err := Run(context.Background(), Plan{
		Mode:           "test",
		Paths:          []Path{{Target: Target{Name: "gateway_hook", URL: srv.URL}}},
		SerialDuration: 50 * time.Millisecond,
		Rates:          []int{20},
		RateDuration:   100 * time.Millisecond,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stages) != 2 {
		t.Fatalf("stages = %+v", res.Stages)
	}
	for _, s := range res.Stages {
		if s.Requests == 0 || s.Errors != s.Requests || s.ErrorKinds["status_500"] != s.Errors {
			t.Errorf("%s: stage = %+v", s.Kind, s)
		}
		want := map[string]string{"status_500": `{"error":{"message":"hook timed out"}}` + "\n"}
		if diff := cmp.Diff(want, s.ErrorBodies); diff != "" {
			t.Errorf("%s: error bodies (-want +got)\n%s", s.Kind, diff)
		}
	}
	md := Markdown(res)
	if want := "| serial | 1 | `gateway_hook` | status_500 | "; !strings.Contains(md, want) {
		t.Errorf("results.md lacks %q:\n%s", want, md)
	}
	if want := `{"error":{"message":"hook timed out"}}`; !strings.Contains(md, want) {
		t.Errorf("results.md lacks the error body %q:\n%s", want, md)
	}
}

// TestSamplingSkipsWarmup: processes are sampled only while requests are
// recorded, so the warm-up's CPU time is not charged to them.
func TestSamplingSkipsWarmup(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1}))
	t.Cleanup(srv.Close)
	const warmup = 300 * time.Millisecond
	res, err := Run(context.Background(), Plan{
		Mode: "test",
		Paths: []Path{{Target: Target{Name: BaselinePath, URL: srv.URL},
			Procs: []Proc{{Name: "self", Role: RoleGenerator, PID: os.Getpid()}}}},
		Warmup:         warmup,
		VUs:            []int{1},
		VUDuration:     200 * time.Millisecond,
		SampleInterval: 20 * time.Millisecond,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RSS) == 0 {
		t.Fatal("no samples")
	}
	for _, pt := range res.RSS {
		if pt.T < warmup.Seconds() {
			t.Fatalf("sampled at %.3fs, during the %v warm-up", pt.T, warmup)
		}
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	// Shuffled input must not matter.
	d[0], d[99] = d[99], d[0]
	got := summarize(d)
	want := Latency{P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(Latency{}, summarize(nil)); diff != "" {
		t.Errorf("empty (-want +got)\n%s", diff)
	}
}

func TestParseProc(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		stat    string
		want    int64
		wantErr bool
	}{
		{name: "plain", stat: "42 (envoy) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1", want: 300},
		{name: "name with spaces and parens", stat: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 11 22 0 0 20 0 1 0", want: 33},
		{name: "truncated", stat: "7 (x) R 1 2", wantErr: true},
		{name: "no name", stat: "7 x R", wantErr: true},
		{name: "bad number", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 2 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStatCPU = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	stat := []byte("cpu  100 5 50 800 20 3 2 1 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n")
	if got, err := parseProcStat(stat); err != nil || got != (cpuTimes{busy: 161, total: 981}) {
		t.Errorf("parseProcStat = %+v, %v; want busy 161 total 981", got, err)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5\n", "cpu 1 2 x 4 5\n", "cpu 1 2\n"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
	if m, err := readMachineCPU(); err != nil || m.total <= 0 || m.busy <= 0 || m.busy > m.total {
		t.Errorf("readMachineCPU = %+v, %v", m, err)
	}
	rss, err := parseStatusRSS([]byte("Name:\tenvoy\nVmPeak:\t 9 kB\nVmRSS:\t   2048 kB\nThreads: 3\n"))
	if err != nil || rss != 2<<20 {
		t.Errorf("parseStatusRSS = %d, %v", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name: x\n")); err == nil {
		t.Errorf("parseStatusRSS without VmRSS: no error")
	}
	self, err := readProc(os.Getpid())
	if err != nil || self.rssBytes <= 0 {
		t.Errorf("readProc(self) = %+v, %v", self, err)
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("42 (envoy) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1"))
	f.Add([]byte("7 (a) b (c)) R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseStatCPU(b)
		_, _ = parseStatusRSS(b)
		_, _ = parseProcStat(b)
	})
}

func TestSettleReadsRSSAfterTheLoad(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1}))
	t.Cleanup(srv.Close)
	const load, settleFor = 100 * time.Millisecond, 200 * time.Millisecond
	start := time.Now()
	res, err := Run(context.Background(), Plan{
		Mode: "test",
		Paths: []Path{{Target: Target{Name: BaselinePath, URL: srv.URL},
			Procs: []Proc{{Name: "self", Role: RoleGenerator, PID: os.Getpid()}}}},
		VUs:            []int{1},
		VUDuration:     load,
		Settle:         settleFor,
		SampleInterval: 20 * time.Millisecond,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < load+settleFor {
		t.Fatalf("run took %v, less than the load and the settling (%v)", took, load+settleFor)
	}
	ps := res.Stages[0].Procs
	if len(ps) != 1 || ps[0].RSSSettledMB <= 0 || ps[0].RSSSettledFileMB <= 0 || ps[0].RSSSettledFileMB > ps[0].RSSSettledMB {
		t.Fatalf("procs %+v: want one with the RSS read after the load", ps)
	}
	last := res.RSS[len(res.RSS)-1]
	if last.T < (load + settleFor).Seconds() {
		t.Fatalf("last reading at %.3fs, before the settling ended", last.T)
	}
}
