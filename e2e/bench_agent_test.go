package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"switchyard/loadtest/agentbody"
	"switchyard/loadtest/bench"
	"switchyard/loadtest/mockllm"
)

// TestBenchAgentStages runs the agent stages against the real Envoy and
// extproc: agent-shaped bodies of both API shapes through Envoy alone, the
// gateway, the null processor (extproc -null-route) and Envoy alone holding
// each body whole (envoy-config -hold-body). Every request must be answered
// by the mock in the body's own API, the Messages bodies untranslated; it
// proves the null path routes and echoes full-duplex bodies as Envoy
// expects, and that bodies of many HTTP/2 frames cross extproc's codec.
func TestBenchAgentStages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	stack, err := bench.StartStack(ctx, bench.StackConfig{
		Dir: t.TempDir(), ExtprocBin: extprocBin, EnvoyBin: envoyBin,
		UpstreamURL: startBenchMock(t, mockllm.Options{Latency: 5 * time.Millisecond}), Null: true, EnvoyHeld: true,
	})
	if err != nil {
		t.Fatalf("starting the benchmark stack: %v", err)
	}
	t.Cleanup(stack.Close)
	if err := bench.Preflight(ctx, stack.Paths); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	var paths []bench.Path
	for _, p := range stack.Paths {
		switch p.Name {
		case bench.PathDirect, bench.PathEnvoy, bench.PathGateway, bench.PathNull, bench.PathEnvoyHeld:
			paths = append(paths, p)
		}
	}
	if len(paths) != 5 {
		t.Fatalf("stack has %d of the direct, envoy, gateway, null and envoy_held paths", len(paths))
	}
	var bodies []bench.Body
	for _, spec := range []struct {
		api  agentbody.API
		size int
	}{{agentbody.OpenAIChat, 32 << 10}, {agentbody.AnthropicMessages, 32 << 10}, {agentbody.OpenAIChat, 256 << 10}} {
		b, err := bench.NewBody(spec.api, "en", spec.size)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	plan := bench.Plan{Mode: "test", Paths: paths, Rounds: 1, Warmup: 100 * time.Millisecond,
		Bodies: bodies, AgentVUs: []int{2}, AgentDuration: 500 * time.Millisecond, SampleInterval: 100 * time.Millisecond}
	var progress bytes.Buffer
	res, err := bench.Run(ctx, plan, &progress)
	if err != nil {
		t.Fatalf("running the plan: %v\nprogress:\n%s", err, progress.String())
	}
	if want := len(bodies) * len(paths); len(res.Stages) != want {
		t.Fatalf("%d stages, want %d", len(res.Stages), want)
	}
	for _, s := range res.Stages {
		if s.Kind != bench.KindAgent || s.Requests == 0 || s.Errors > 0 {
			t.Errorf("%s %s on %s: %d requests, %d errors %v %v", s.Kind, s.Body, s.Path, s.Requests, s.Errors, s.ErrorKinds, s.ErrorBodies)
		}
	}
	if md := bench.Markdown(res); !strings.Contains(md, "## Cost against body size") {
		t.Errorf("report has no cost table:\n%s", md)
	}
}

// TestBenchEnvoyScan runs agent stages through Envoy alone holding and
// scanning each body with the body module (envoy-config -no-extproc
// -body-module, the envoy_scan path) and through the gateway with the
// module: both API shapes, each body answered by the mock in its own API,
// so that the baseline the growth goal is measured against forwards what
// it scans.
func TestBenchEnvoyScan(t *testing.T) {
	t.Parallel()
	lib, err := bodyModuleLib()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stack, err := bench.StartStack(ctx, bench.StackConfig{
		Dir: t.TempDir(), ExtprocBin: extprocBin, EnvoyBin: envoyBin, BodyModule: lib, EnvoyScan: true,
		UpstreamURL: startBenchMock(t, mockllm.Options{Latency: 5 * time.Millisecond}),
	})
	if err != nil {
		t.Fatalf("starting the benchmark stack: %v", err)
	}
	t.Cleanup(stack.Close)
	if err := bench.Preflight(ctx, stack.Paths); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	var paths []bench.Path
	for _, p := range stack.Paths {
		if p.Name == bench.PathEnvoyScan || p.Name == bench.PathGateway {
			paths = append(paths, p)
		}
	}
	if len(paths) != 2 {
		t.Fatalf("stack has %d of the gateway and envoy_scan paths", len(paths))
	}
	var bodies []bench.Body
	for _, api := range []agentbody.API{agentbody.OpenAIChat, agentbody.AnthropicMessages} {
		b, err := bench.NewBody(api, "en", 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	plan := bench.Plan{Mode: "test", Paths: paths, Rounds: 1, Warmup: 100 * time.Millisecond,
		Bodies: bodies, AgentVUs: []int{2}, AgentDuration: 500 * time.Millisecond, SampleInterval: 100 * time.Millisecond}
	var progress bytes.Buffer
	res, err := bench.Run(ctx, plan, &progress)
	if err != nil {
		t.Fatalf("running the plan: %v\nprogress:\n%s", err, progress.String())
	}
	if want := len(bodies) * len(paths); len(res.Stages) != want {
		t.Fatalf("%d stages, want %d", len(res.Stages), want)
	}
	for _, s := range res.Stages {
		if s.Requests == 0 || s.Errors > 0 {
			t.Errorf("%s on %s: %d requests, %d errors %v %v", s.Body, s.Path, s.Requests, s.Errors, s.ErrorKinds, s.ErrorBodies)
		}
	}
}
