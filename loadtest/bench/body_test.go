package bench

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"switchyard/loadtest/agentbody"
	"switchyard/loadtest/mockllm"
)

func TestSizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"1KB": 1 << 10, "256KB": 256 << 10, "1MB": 1 << 20, "900": 900, "900B": 900} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "KB", "-1KB", "0", "1GB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for n, want := range map[int]string{1 << 10: "1KB", 256 << 10: "256KB", 1 << 20: "1MB", 900: "900B", 1500: "1500B"} {
		if got := SizeName(n); got != want {
			t.Errorf("SizeName(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRunAgentStages: the agent stages send each body to its API's
// endpoint (the mock answers each in its shape, checked by the load
// loop), pair every path with direct in the same body and load, and the
// report has the cost table and the chart.
func TestRunAgentStages(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{Latency: 2 * time.Millisecond}))
	t.Cleanup(srv.Close)
	var bodies []Body
	for _, api := range []agentbody.API{agentbody.OpenAIChat, agentbody.AnthropicMessages} {
		for _, size := range []int{1 << 10, 32 << 10} {
			b, err := NewBody(api, "en", size)
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, b)
		}
	}
	self := Proc{Name: "extproc_self", Role: roleExtproc, PID: os.Getpid()}
	plan := Plan{
		Mode: "test",
		Paths: []Path{
			{Target: Target{Name: BaselinePath, URL: srv.URL}},
			{Target: Target{Name: PathEnvoy, URL: srv.URL}, Procs: []Proc{{Name: "envoy_self", Role: roleEnvoy, PID: os.Getpid()}}},
			{Target: Target{Name: PathNull, URL: srv.URL}, Procs: []Proc{self}},
			{Target: Target{Name: PathGateway, URL: srv.URL}, Procs: []Proc{self}},
		},
		Rounds: 1, Warmup: 20 * time.Millisecond, AgentDuration: 150 * time.Millisecond, AgentVUs: []int{2},
		SampleInterval: 50 * time.Millisecond, Bodies: bodies,
	}
	res, err := Run(context.Background(), plan, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ Body, Path string }
	var got []key
	for _, s := range res.Stages {
		if s.Kind != KindAgent || s.Load != 2 {
			t.Errorf("stage %s/%d, want only agent stages at 2 VUs", s.Kind, s.Load)
		}
		if s.Errors > 0 || s.Requests == 0 {
			t.Errorf("%s on %s: %d requests, %d errors %v %v", s.Body, s.Path, s.Requests, s.Errors, s.ErrorKinds, s.ErrorBodies)
		}
		got = append(got, key{s.Body, s.Path})
	}
	var want []key
	for _, b := range bodies {
		for _, p := range []string{BaselinePath, PathEnvoy, PathNull, PathGateway} {
			want = append(want, key{b.Name, p})
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b key) bool { return a.Body+a.Path < b.Body+b.Path })); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, BodyChart)); err != nil {
		t.Errorf("no body chart: %v", err)
	}
	md := Markdown(res)
	for _, want := range []string{"## Agent-shaped bodies", "## Cost against body size", "| openai_chat_32KB | 2 | `gateway` |",
		"| anthropic_messages_1KB | 2 | `null` |", BodyChart} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestMeasureCheckAgent(t *testing.T) {
	t.Parallel()
	agent := func(path string, procs ...ProcStats) Stage {
		return Stage{Kind: KindAgent, Load: 50, Body: "openai_chat_256KB", Path: path, Procs: procs}
	}
	r := &Result{Stages: []Stage{
		checkStage(PathEnvoy, 300, 0, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 100}),
		checkStage(PathGateway, 300, 0, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 180}, ProcStats{Role: roleExtproc, CPUMicrosPerR: 50}),
		agent(PathEnvoy, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 400}),
		agent(PathGateway, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 800}, ProcStats{Role: roleExtproc, CPUMicrosPerR: 200}),
	}}
	got, err := MeasureCheck(r, 300)
	if err != nil {
		t.Fatal(err)
	}
	if got.AgentBody != "openai_chat_256KB" || got.AgentLoad != 50 || got.AgentGatewayRatio != 2.5 || got.AgentExtprocMicros != 200 {
		t.Errorf("agent figures %+v", got)
	}
	committed := got
	committed.AgentGatewayRatio = 1.9
	results := CompareCheck(committed, got, 0.25)
	if len(results) != 3 || !results[2].Fail || results[0].Fail {
		t.Errorf("a 2.5 against a committed 1.9 must fail the agent figure alone: %+v", results)
	}
	if report, failed := CheckReport(committed, got, results); !failed || !strings.Contains(report, "agent stage openai_chat_256KB at 50 VUs") {
		t.Errorf("report (failed %v):\n%s", failed, report)
	}
	// A committed file without the agent figure guards the others only.
	committed.AgentGatewayRatio = 0
	if n := len(CompareCheck(committed, got, 0.25)); n != 2 {
		t.Errorf("%d figures compared, want 2", n)
	}
	r.Stages = r.Stages[:3]
	if _, err := MeasureCheck(r, 300); err == nil {
		t.Error("an agent stage on envoy alone was accepted")
	}
}

// TestReportOneBodySize: a run of one body size has no chart of cost
// against size (its one point has no range to draw) and its report links
// none; it still writes its tables.
func TestReportOneBodySize(t *testing.T) {
	t.Parallel()
	body := Body{Name: "openai_chat_1KB", API: agentbody.OpenAIChat, Size: 1 << 10}
	stage := func(path string, us float64) Stage {
		return Stage{Kind: KindAgent, Load: 50, Body: body.Name, Path: path, Requests: 100,
			Procs: []ProcStats{{Role: roleEnvoy, CPUMicrosPerR: us}}}
	}
	res := &Result{Bodies: []Body{body}, Paths: []Path{{Target: Target{Name: PathEnvoy}}, {Target: Target{Name: PathGateway}}},
		Stages: []Stage{stage(BaselinePath, 0), stage(PathEnvoy, 100), stage(PathGateway, 250)}}
	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, BodyChart)); err == nil {
		t.Error("a chart of cost against size from one size")
	}
	if md, err := os.ReadFile(filepath.Join(dir, MarkdownFile)); err != nil || strings.Contains(string(md), BodyChart) ||
		!strings.Contains(string(md), "## Cost against body size") {
		t.Errorf("report (%v):\n%s", err, md)
	}
}
