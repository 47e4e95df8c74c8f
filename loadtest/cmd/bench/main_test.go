package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/loadtest/bench"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantMode   string
		wantRounds int
		wantErr    string
	}{
		{name: "default is quick", wantMode: "quick", wantRounds: 1},
		{name: "quick", args: []string{"-quick"}, wantMode: "quick", wantRounds: 1},
		{name: "full", args: []string{"-full"}, wantMode: "full", wantRounds: 2},
		{name: "rounds override", args: []string{"-full", "-rounds", "3"}, wantMode: "full", wantRounds: 3},
		{name: "both modes", args: []string{"-quick", "-full"}, wantErr: "exclude each other"},
		{name: "errors joined", args: []string{"-latency", "-1s", "-rounds", "-1"}, wantErr: "-latency must not be negative\n-rounds must not be negative"},
		{name: "unknown path", args: []string{"-paths", "direct,gatway"}, wantErr: `-paths: unknown path "gatway"`},
		{name: "bad vus", args: []string{"-vus", "50,x,0"}, wantErr: "-vus: \"x\" is not a positive number\n-vus: \"0\" is not a positive number"},
		{name: "bad extproc env", args: []string{"-extproc-env", "GOGC"}, wantErr: `"GOGC" is not KEY=VALUE`},
		{name: "no envoy workers", args: []string{"-envoy-concurrency", "0"}, wantErr: "-envoy-concurrency must be at least 1"},
		{name: "negative duration", args: []string{"-duration", "-1s"}, wantErr: "-duration must not be negative"},
		{name: "bad kind", args: []string{"-kinds", "closed,soak"}, wantErr: `-kinds: unknown kind "soak"`},
		{name: "check", args: []string{"-check", "x.json"}, wantMode: "check", wantRounds: 3},
		{name: "check update alone", args: []string{"-check-update"}, wantErr: "-check-update needs -check FILE"},
		{name: "unknown peer", args: []string{"-peers", "litellm,bifrost"}, wantErr: `-peers: unknown peer "bifrost"`},
		{name: "bad variant env", args: []string{"-variant", "gc env:GOGC"}, wantErr: `cannot read "env:GOGC"`},
		{name: "variant without name", args: []string{"-variant", "env:GOGC=1"}, wantErr: "want NAME"},
		{name: "bad body size", args: []string{"-bodies", "256KB,12,x"}, wantErr: "-bodies: size \"12\" is below the generator's minimum of 900 bytes\n-bodies: size \"x\""},
		{name: "bad body api", args: []string{"-bodies", "1KB", "-body-apis", "openai_chat,grpc"}, wantErr: `-body-apis: unknown API "grpc"`},
		{name: "bad body language", args: []string{"-bodies", "1KB", "-body-langs", "en,xx"}, wantErr: `-body-langs: unknown language "xx"`},
		{name: "bad agent vus", args: []string{"-agent-vus", "0"}, wantErr: `-agent-vus: "0" is not a positive number`},
		{name: "bad stream shape", args: []string{"-stream-chunks", "0", "-stream-interval", "-1ms"}, wantErr: "-stream-chunks must be at least 1\n-stream-interval must not be negative"},
		{name: "long answers", args: []string{"-kinds", "stream", "-stream-chunks", "200", "-stream-interval", "20ms"}, wantMode: "quick", wantRounds: 1},
		{name: "bad peer", args: []string{"-peer", "other"}, wantErr: "want NAME=URL"},
		{name: "peer without scheme", args: []string{"-peer", "other=localhost:8080"}, wantErr: "must start with http://"},
		{name: "peer named as a path", args: []string{"-peer", "gateway=http://127.0.0.1:1"}, wantErr: "name of one of the bench's own paths"},
		{name: "agent stages, a peer and null", args: []string{"-bodies", "1KB,32KB,256KB,1MB", "-kinds", "agent", "-peer", "other=http://127.0.0.1:8080,12,13", "-paths", "direct,envoy,gateway,null,other"}, wantMode: "quick", wantRounds: 1},
		{name: "peer and variants", args: []string{"-peers", "litellm", "-variant", "gc env:GOGC=400 env:GOMAXPROCS=1", "-variant", "g render:-grpc-client=google", "-paths", "direct,gateway_gc"}, wantMode: "quick", wantRounds: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := f.plan()
			if p.Mode != tt.wantMode || p.Rounds != tt.wantRounds {
				t.Errorf("mode %q rounds %d, want %q %d", p.Mode, p.Rounds, tt.wantMode, tt.wantRounds)
			}
		})
	}
}

func TestParseVariant(t *testing.T) {
	t.Parallel()
	got, err := parseVariant("gc400 env:GOGC=400 render:-grpc-client=google extproc:/tmp/old")
	if err != nil {
		t.Fatal(err)
	}
	want := bench.Variant{Name: "gc400", ExtprocEnv: []string{"GOGC=400"}, RenderArgs: []string{"-grpc-client=google"}, ExtprocBin: "/tmp/old"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("variant (-want +got)\n%s", diff)
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	f, err := parseFlags([]string{"-full", "-paths", "direct,gateway", "-vus", "500,1000", "-duration", "30s",
		"-extproc-env", "GOMAXPROCS=1", "-extproc-env", "GOGC=200"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.extprocEnv, []string{"GOMAXPROCS=1", "GOGC=200"}) {
		t.Errorf("extproc env = %q", f.extprocEnv)
	}
	p := f.plan()
	if !slices.Equal(p.VUs, []int{500, 1000}) || p.SerialDuration != 30*time.Second || p.VUDuration != 30*time.Second ||
		p.RateDuration != 30*time.Second || p.StreamDuration != 30*time.Second || p.Rounds != 2 {
		t.Errorf("plan = %+v", p)
	}
	all := []bench.Path{
		{Target: bench.Target{Name: "direct"}},
		{Target: bench.Target{Name: "envoy"}, Procs: []bench.Proc{{Name: "envoy_envoy", Role: "envoy", PID: 2}}},
		{Target: bench.Target{Name: "gateway"}, Procs: []bench.Proc{{Name: "envoy_gateway", Role: "envoy", PID: 3}}},
	}
	got := selectPaths(all, f.paths, 7)
	self := bench.Proc{Name: "bench", Role: bench.RoleGenerator, PID: 7}
	want := []bench.Path{
		{Target: bench.Target{Name: "direct"}, Procs: []bench.Proc{self}},
		{Target: bench.Target{Name: "gateway"}, Procs: []bench.Proc{{Name: "envoy_gateway", Role: "envoy", PID: 3}, self}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("selectPaths (-want +got)\n%s", diff)
	}
	if n := len(all[2].Procs); n != 1 {
		t.Errorf("selectPaths changed its input: %+v", all[2].Procs)
	}
	if got := selectPaths(all, nil, 7); len(got) != 3 {
		t.Errorf("no -paths kept %d paths, want 3", len(got))
	}
}

// TestQuickPlanFitsTwoMinutes keeps quick mode quick: the stack's five
// paths must be measured in about two minutes, and full mode in under half
// an hour.
func TestQuickPlanFitsTwoMinutes(t *testing.T) {
	t.Parallel()
	f, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := f.plan()
	paths := make([]bench.Path, 5)
	p.Paths = paths
	if est := p.Estimate(); est > 135*time.Second || est < 60*time.Second {
		t.Errorf("quick estimate %v, want about 2 minutes", est)
	}
	f.full = true
	p = f.plan()
	p.Paths = paths
	if want := []int{50, 150, 300, 500, 1000}; !slices.Equal(p.VUs, want) {
		t.Errorf("full VUs = %v, want %v", p.VUs, want)
	}
	if est := p.Estimate(); est > 30*time.Minute {
		t.Errorf("full estimate %v, want under 30 minutes", est)
	}
}

// TestRender writes a stored result's report again without measuring.
func TestRender(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res := &bench.Result{
		Mode:  "full",
		Paths: []bench.Path{{Target: bench.Target{Name: "direct", URL: "http://127.0.0.1:1"}}},
		Stages: []bench.Stage{{Kind: bench.KindClosed, Load: 50, Path: "direct", Rounds: 1, Seconds: 1,
			Requests: 10, Successes: 10, RPS: 10, Latency: bench.Latency{P50: 60, P90: 61, P99: 62, Max: 63, Mean: 60}}},
		RSS: []bench.RSSPoint{{T: 1, Proc: "bench", MB: 300}},
	}
	if err := bench.Write(dir, res); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, bench.MarkdownFile)
	if err := os.Remove(md); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"-render", filepath.Join(dir, bench.JSONFile)}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if want := "| 50 | `direct` | 10 | 0 | 10.0 | 1.000 |"; !strings.Contains(string(b), want) || !strings.Contains(out.String(), want) {
		t.Errorf("rendered report lacks %q:\n%s", want, b)
	}
	if err := run(context.Background(), []string{"-render", filepath.Join(dir, "missing.json")}, io.Discard, io.Discard); err == nil {
		t.Errorf("rendering a missing file: no error")
	}
}

func TestAgentFlags(t *testing.T) {
	t.Parallel()
	f, err := parseFlags([]string{"-bodies", "1KB,256KB", "-body-apis", "anthropic_messages", "-agent-vus", "50,300", "-kinds", "agent",
		"-peer", "other=http://127.0.0.1:8080/,12"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.peerURLs) != 1 || f.peerURLs[0].Name != "other" || len(f.peerURLs[0].PIDs) != 1 || f.peerURLs[0].PIDs[0] != 12 {
		t.Errorf("peers %+v", f.peerURLs)
	}
	p := f.plan()
	if len(p.VUs) != 0 || p.SerialDuration != 0 || len(p.Rates) != 0 || p.StreamVUs != 0 {
		t.Errorf("-kinds agent kept other stages: %+v", p)
	}
	if diff := cmp.Diff([]int{50, 300}, p.AgentVUs); diff != "" {
		t.Errorf("agent VUs (-want +got):\n%s", diff)
	}
	bodies, err := f.agentBodies()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range bodies {
		names = append(names, b.Name)
		if len(b.Data) != b.Size || b.Model != bench.ModelAnthropic {
			t.Errorf("body %s: %d bytes for size %d, model %q", b.Name, len(b.Data), b.Size, b.Model)
		}
	}
	if diff := cmp.Diff([]string{"anthropic_messages_1KB", "anthropic_messages_256KB"}, names); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}

	// -body-langs adds each language's conversation at every size.
	f, err = parseFlags([]string{"-bodies", "1KB,32KB", "-body-apis", "openai_chat", "-body-langs", "en,ja"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if bodies, err = f.agentBodies(); err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, b := range bodies {
		names = append(names, b.Name)
	}
	if diff := cmp.Diff([]string{"openai_chat_1KB", "openai_chat_32KB", "openai_chat_ja_1KB", "openai_chat_ja_32KB"}, names); diff != "" {
		t.Errorf("bodies in two languages (-want +got):\n%s", diff)
	}
	if ja := bodies[3]; bytes.Count(ja.Data, []byte("ファイル")) == 0 || bytes.Contains(bodies[1].Data, []byte("ファイル")) {
		t.Errorf("the Japanese body's prose is not Japanese, or the English body's is")
	}

	// make bench-check measures the 256 KB chat body at 50 VUs besides 300 VUs of the small one.
	f, err = parseFlags([]string{"-check", "x.json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	bodies, err = f.agentBodies()
	if err != nil {
		t.Fatal(err)
	}
	if p := f.plan(); len(bodies) != 1 || bodies[0].Name != "openai_chat_256KB" || len(p.AgentVUs) != 1 || p.AgentVUs[0] != 50 {
		t.Errorf("check mode: bodies %v, agent VUs %v", bodies, p.AgentVUs)
	}
}

// TestBuildTagsAreTheMakefiles: the bench builds extproc and the body
// module as make does, so that what it measures is what make builds.
func TestBuildTagsAreTheMakefiles(t *testing.T) {
	t.Parallel()
	makefile, err := os.ReadFile(filepath.Join("..", "..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "GOFLAGS += -tags="
	for line := range strings.Lines(string(makefile)) {
		if tags, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			if tags != buildTags {
				t.Errorf("the Makefile builds with -tags=%s, the bench with %s", tags, buildTags)
			}
			return
		}
	}
	t.Fatalf("no %q line in the Makefile", prefix)
}

// TestCheckMock: the guard runs the mock its committed figures had (none
// said: the tool loop), refuses -mock-tools against them, and re-records
// with the file's mock unless told otherwise.
func TestCheckMock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, plain bool) string {
		file := filepath.Join(dir, name)
		if err := bench.WriteCheck(file, bench.CheckFigures{Load: 300, ExtprocRatio: 0.5, TaxRatio: 1, MockPlain: plain}); err != nil {
			t.Fatal(err)
		}
		return file
	}
	tools, plain := write("tools.json", false), write("plain.json", true)
	for _, tc := range []struct {
		name      string
		args      []string
		wantTools bool
		wantErr   string
	}{
		{"committed tool loop", []string{"-check", tools}, true, ""},
		{"committed one scan", []string{"-check", plain}, false, ""},
		{"the same mock named", []string{"-check", tools, "-mock-tools"}, true, ""},
		{"another mock named", []string{"-check", plain, "-mock-tools"}, false, "would compare two setups"},
		{"update keeps the file's", []string{"-check", tools, "-check-update"}, true, ""},
		{"update told otherwise", []string{"-check", tools, "-check-update", "-mock-tools=false"}, false, ""},
		{"update of a new file", []string{"-check", filepath.Join(dir, "new.json"), "-check-update"}, false, ""},
		{"no file", []string{"-check", filepath.Join(dir, "new.json")}, false, "reading committed figures"},
	} {
		f, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = checkMock(&f)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || f.mockTools != tc.wantTools {
			t.Errorf("%s: mock tools %v, error %v; want %v", tc.name, f.mockTools, err, tc.wantTools)
		}
	}
}
