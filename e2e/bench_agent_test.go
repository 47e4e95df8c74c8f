package e2e

import (
	"bytes"
	"context"
	"slices"
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
	res := runAgentStages(t, bench.StackConfig{Null: true, EnvoyHeld: true},
		[]string{bench.PathDirect, bench.PathEnvoy, bench.PathGateway, bench.PathNull, bench.PathEnvoyHeld},
		agentBodies(t, bodySpec{agentbody.OpenAIChat, 32 << 10}, bodySpec{agentbody.AnthropicMessages, 32 << 10},
			bodySpec{agentbody.OpenAIChat, 256 << 10}))
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
	runAgentStages(t, bench.StackConfig{BodyModule: lib, EnvoyScan: true},
		[]string{bench.PathGateway, bench.PathEnvoyScan},
		agentBodies(t, bodySpec{agentbody.OpenAIChat, 64 << 10}, bodySpec{agentbody.AnthropicMessages, 64 << 10}))
}

// bodySpec is an agent body's API and size.
type bodySpec struct {
	api  agentbody.API
	size int
}

// agentBodies are English agent bodies of the given APIs and sizes.
func agentBodies(t *testing.T, specs ...bodySpec) []bench.Body {
	t.Helper()
	var bodies []bench.Body
	for _, spec := range specs {
		b, err := bench.NewBody(spec.api, "en", spec.size)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return bodies
}

// runAgentStages starts a benchmark stack of cfg (the e2e binaries and a
// mock filled in), runs each body through the paths named, two agents for
// half a second, and fails unless every stage answered every request.
func runAgentStages(t *testing.T, cfg bench.StackConfig, names []string, bodies []bench.Body) *bench.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg.Dir, cfg.ExtprocBin, cfg.EnvoyBin = t.TempDir(), extprocBin, envoyBin
	cfg.UpstreamURL = startBenchMock(t, mockllm.Options{Latency: 5 * time.Millisecond})
	stack, err := bench.StartStack(ctx, cfg)
	if err != nil {
		t.Fatalf("starting the benchmark stack: %v", err)
	}
	t.Cleanup(stack.Close)
	if err := bench.Preflight(ctx, stack.Paths); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	var paths []bench.Path
	for _, p := range stack.Paths {
		if slices.Contains(names, p.Name) {
			paths = append(paths, p)
		}
	}
	if len(paths) != len(names) {
		t.Fatalf("stack has %d of the paths %v", len(paths), names)
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
	return res
}
