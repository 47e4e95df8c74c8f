package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/loadtest/mockllm"
)

// The agent CLIs' tests run the real Claude Code and Codex CLIs, installed
// by `make agents` (pinned versions, from npm), through Envoy and extproc
// against the mock LLM, with the settings the README gives for `make run`:
// the settings blocks are read from README.md itself, so a README that no
// longer works fails here.

// agentsDir is where `make agents` installs the CLIs.
const agentsDir = ".tools/agents"

// agentTimeout bounds one CLI run; the mock answers in milliseconds.
const agentTimeout = 2 * time.Minute

// makeRunURL is the gateway address `make run` listens on, as the README
// writes it; the tests put their own gateway's address in its place.
const makeRunURL = "http://127.0.0.1:10000"

// mockURLInExample is the mock's address in examples/switchyard.yaml.
const mockURLInExample = "http://127.0.0.1:8081"

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// recordedRequest is one request as the upstream received it.
type recordedRequest struct {
	Method string
	URI    string // path and query
	Host   string
	Header http.Header
	Body   []byte
}

// requestLog records what an upstream received, for the tests to assert on.
type requestLog struct {
	mu   sync.Mutex
	reqs []recordedRequest
}

func (l *requestLog) record(r *http.Request, body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, recordedRequest{Method: r.Method, URI: r.URL.RequestURI(), Host: r.Host, Header: r.Header.Clone(), Body: body})
}

// take returns the requests recorded so far and forgets them.
func (l *requestLog) take() []recordedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reqs
	l.reqs = nil
	return r
}

// recordingMock is the mock LLM behind a recorder: the tests assert on what
// the upstream actually received.
type recordingMock struct {
	URL string
	requestLog
}

// startMock serves the mock LLM (no latency) on a loopback port of its own.
func startMock(t testing.TB) *recordingMock {
	t.Helper()
	m := &recordingMock{}
	h := mockllm.New(mockllm.Options{Latency: -1, ChunkInterval: -1})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		m.record(r, body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// exampleConfig is examples/switchyard.yaml (the config of `make run`) with
// the mock's address replaced by mockURL.
func exampleConfig(t testing.TB, mockURL string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "switchyard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(mockURLInExample)) {
		t.Fatalf("examples/switchyard.yaml no longer names the mock at %s", mockURLInExample)
	}
	return strings.ReplaceAll(string(b), mockURLInExample, mockURL)
}

// agentKeyEnv holds the client key of the agent tests' gateway: the token
// the README's Claude Code settings send, so the gateway checks it.
const agentKeyEnv = "SWY_TEST_AGENT_KEY"

// agentKeyName names the agent tests' client key in metrics.
const agentKeyName = "agents"

// withAgentKey adds a client key to a config: a request without it is
// refused, so a CLI that gets its answer has sent it.
func withAgentKey(config string) string {
	return config + "\nclient_keys:\n  - name: " + agentKeyName + "\n    key_env: " + agentKeyEnv + "\n"
}

// readmeBlock returns the fenced code block that follows the line
// "<!-- e2e: name -->" in README.md.
func readmeBlock(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- e2e: " + name + " -->\n"
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README.md has no %q marker", strings.TrimSpace(marker))
	}
	fence, rest, ok := strings.Cut(rest, "\n")
	if !ok || !strings.HasPrefix(fence, "```") {
		t.Fatalf("README.md: %q is not followed by a fenced code block", strings.TrimSpace(marker))
	}
	block, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatalf("README.md: the block after %q is not closed", strings.TrimSpace(marker))
	}
	return block
}

// agentCLI returns the installed CLI `name` once it reports the version the
// Makefile pins (variable pin); without it the test fails and says how to
// install it.
func agentCLI(t testing.TB, name, pin string) string {
	t.Helper()
	const how = "run `make agents` (installs the pinned @anthropic-ai/claude-code and @openai/codex from npm into " +
		agentsDir + "; needs npm)"
	bin := filepath.Join(repoRoot(t), agentsDir, "node_modules", ".bin", name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is required for the agent end-to-end tests: %s", bin, how)
	}
	want := makeVariable(t, pin)
	cmd := exec.Command(bin, "--version")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("%s --version: %v %q, want version %s: %s", bin, err, out, want, how)
	}
	return bin
}

// makeVariable returns the value of `name := value` in the Makefile.
func makeVariable(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*:=\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("the Makefile does not set %s", name)
	}
	return string(m[1])
}

// egressGuard stands as HTTP(S) proxy for a CLI: everything the CLI sends
// anywhere but the gateway arrives here, is refused and recorded.
type egressGuard struct {
	url  string
	mu   sync.Mutex
	seen []string
}

func startEgressGuard(t testing.TB) *egressGuard {
	g := &egressGuard{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.seen = append(g.seen, r.Method+" "+r.Host+r.URL.Path)
		g.mu.Unlock()
		http.Error(w, "no network in tests", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

// env is the proxy environment that sends all but loopback traffic to g.
func (g *egressGuard) env() []string {
	var env []string
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} {
		env = append(env, k+"="+g.url, strings.ToLower(k)+"="+g.url)
	}
	return append(env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
}

func (g *egressGuard) attempts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.seen...)
}

// agentRun is one finished CLI run.
type agentRun struct {
	stdout, stderr string
	elapsed        time.Duration
}

// runAgent runs a CLI with exactly env (nothing inherited but PATH) in a
// fresh working directory, bounded by agentTimeout; the whole process group
// is killed at the deadline. It fails the test unless the CLI exits 0.
func runAgent(t *testing.T, bin string, args, env []string) agentRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "TERM=dumb", "NO_COLOR=1"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	run := agentRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	t.Logf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), args, run.elapsed.Round(time.Millisecond), run.stdout, run.stderr)
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v", filepath.Base(bin), agentTimeout)
	}
	if err != nil {
		t.Fatalf("%s exited with %v", filepath.Base(bin), err)
	}
	// A process the CLI left behind in its group would outlive the test.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return run
}

// errorLine matches a line that reports an error, whatever the CLI's format
// ("ERROR codex_core::...", "Error: ...", "API Error: 404 ...", a panic).
var errorLine = regexp.MustCompile(`(?i)\b(error|panic|fatal|failed)\b`)

// checkAgentOutput: want on stdout, no error line anywhere and nothing
// sent past the gateway.
func checkAgentOutput(t *testing.T, run agentRun, want string, guard *egressGuard) {
	t.Helper()
	if !strings.Contains(run.stdout, want) {
		t.Errorf("stdout does not contain %q", want)
	}
	for _, out := range []string{run.stdout, run.stderr} {
		for _, line := range strings.Split(out, "\n") {
			if errorLine.MatchString(line) {
				t.Errorf("error line in the output: %s", line)
			}
		}
	}
	if a := guard.attempts(); len(a) > 0 {
		t.Errorf("the CLI sent requests past the gateway: %q", a)
	}
}

// describe lists a CLI's requests for the log: endpoint, model and the
// header names it sent (values of the ones agents depend on).
func describe(reqs []recordedRequest) string {
	var b strings.Builder
	for _, r := range reqs {
		var body struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = json.Unmarshal(r.Body, &body)
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, strings.ToLower(k))
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "%s %s model=%q stream=%v body=%dB\n  headers: %s\n", r.Method, r.URI, body.Model, body.Stream, len(r.Body), strings.Join(names, " "))
		for _, k := range names {
			if agentHeader(k) {
				fmt.Fprintf(&b, "  %s: %s\n", k, r.Header.Get(k))
			}
		}
	}
	return b.String()
}

func agentHeader(name string) bool {
	switch name {
	case "anthropic-version", "anthropic-beta", "openai-beta", "x-claude-code-session-id", "session_id", "session-id",
		"conversation_id", "thread-id", "x-client-request-id", "originator", "user-agent", "x-app":
		return true
	}
	return false
}

// TestClaudeCodeThroughGateway runs `claude -p` with the README's settings
// against the gateway of `make run` (examples/switchyard.yaml) and the mock:
// a prompt (POST /v1/messages) and the /context command, which counts the
// tokens of each part of the context (POST /v1/messages/count_tokens).
func TestClaudeCodeThroughGateway(t *testing.T) {
	t.Parallel()
	c := startClaude(t, "mock-claude", withAgentKey)
	claude, settings, env, mock, gw, guard := c.bin, c.settings, c.env, c.mock, c.gw, c.guard
	total := 0
	for _, tc := range []struct {
		name, prompt, want, path string
	}{
		{name: "prompt", prompt: "Reply with one short sentence.", want: mockllm.Answer, path: "/v1/messages"},
		{name: "context", prompt: "/context", want: "Context Usage", path: "/v1/messages/count_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := runAgent(t, claude, []string{"--settings", settings, "-p", tc.prompt}, env)
			checkAgentOutput(t, run, tc.want, guard)
			reqs := mock.take()
			total += len(reqs)
			t.Logf("Claude Code sent %d requests:\n%s", len(reqs), describe(dedupe(reqs)))
			if len(reqs) == 0 {
				t.Fatal("the mock received nothing")
			}
			checkClaudeRequests(t, reqs, tc.path)
		})
	}
	// The gateway read Claude Code's session header on every request.
	waitMetric(t, gw, `switchyard_session_requests_total{source="claude_code"}`, float64(total))
}

// claudeRun is Claude Code set up with the README's settings against the
// gateway of `make run` and the mock.
type claudeRun struct {
	bin, settings string
	token         string // the client key the settings send
	env           []string
	mock          *recordingMock
	gw            *gateway
	guard         *egressGuard
}

// startClaude sets Claude Code up with the README's settings, every model
// replaced by model, against a gateway whose config keyed adds the client
// key (withAgentKey or a variant of it) to the config of `make run`;
// extproc also gets env.
func startClaude(t *testing.T, model string, keyed func(string) string, env ...string) claudeRun {
	t.Helper()
	c := claudeRun{bin: agentCLI(t, "claude", "CLAUDE_CODE_VERSION"), mock: startMock(t)}
	block := readmeBlock(t, "claude-settings")
	var parsed struct {
		Env map[string]string `json:"env"`
	}
	if err := json.Unmarshal([]byte(block), &parsed); err != nil || parsed.Env["ANTHROPIC_AUTH_TOKEN"] == "" {
		t.Fatalf("README's Claude Code settings: %v, no ANTHROPIC_AUTH_TOKEN in %s", err, block)
	}
	// The gateway requires the token the settings send as its client key.
	c.token = parsed.Env["ANTHROPIC_AUTH_TOKEN"]
	c.gw = startGateway(t, keyed(exampleConfig(t, c.mock.URL)),
		gatewayOptions{extraEnv: append([]string{agentKeyEnv + "=" + c.token}, env...)})
	c.guard = startEgressGuard(t)
	home := t.TempDir()
	c.settings = filepath.Join(home, "switchyard-claude.json")
	writeFile(t, c.settings, strings.ReplaceAll(strings.ReplaceAll(block, makeRunURL, c.gw.url), `"mock-claude"`, strconv.Quote(model)))
	c.env = append([]string{"HOME=" + home, "TMPDIR=" + t.TempDir()}, c.guard.env()...)
	return c
}

// TestClaudeCodeOnOpenAIModel: Claude Code completes a prompt on a model
// served with the OpenAI API (mock-gpt): the gateway translates its
// Messages requests into chat completions and the answers back, and
// estimates count_tokens (/context) itself.
func TestClaudeCodeOnOpenAIModel(t *testing.T) {
	t.Parallel()
	c := startClaude(t, "mock-gpt", withAgentKey)
	for _, tc := range []struct{ name, prompt, want string }{
		{name: "prompt", prompt: "Reply with one short sentence.", want: mockllm.Answer},
		{name: "context", prompt: "/context", want: "Context Usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := runAgent(t, c.bin, []string{"--settings", c.settings, "-p", tc.prompt}, c.env)
			checkAgentOutput(t, run, tc.want, c.guard)
			reqs := c.mock.take()
			t.Logf("Claude Code's requests reached the mock as %d requests:\n%s", len(reqs), describe(dedupe(reqs)))
			for i, r := range reqs {
				if r.Method != "POST" || pathOnlyURI(r.URI) != "/v1/chat/completions" || gjson.GetBytes(r.Body, "model").String() != "mock-gpt" {
					t.Errorf("request %d: %s %s for %q, want POST /v1/chat/completions for mock-gpt", i, r.Method, r.URI, gjson.GetBytes(r.Body, "model").String())
				}
			}
			if tc.name == "prompt" && len(reqs) == 0 {
				t.Error("the mock received nothing")
			}
		})
	}
}

// checkClaudeRequests: every request went to path (with Claude Code's
// ?beta=true) for mock-claude, with the headers Claude Code depends on and
// one session id.
func checkClaudeRequests(t *testing.T, reqs []recordedRequest, path string) {
	t.Helper()
	var session string
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.URI != path+"?beta=true" {
			t.Errorf("request %d: %s %s, want POST %s?beta=true", i, r.Method, r.URI, path)
			continue
		}
		var body struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil || body.Model != "mock-claude" {
			t.Errorf("request %d: model %q (%v), want mock-claude", i, body.Model, err)
		}
		if v := r.Header.Get("anthropic-version"); v != "2023-06-01" {
			t.Errorf("request %d: anthropic-version %q", i, v)
		}
		if r.Header.Get("anthropic-beta") == "" {
			t.Errorf("request %d: no anthropic-beta header", i)
		}
		s := r.Header.Get("x-claude-code-session-id")
		if s == "" || (session != "" && s != session) {
			t.Errorf("request %d: x-claude-code-session-id %q, want one id for the whole run", i, s)
		}
		session = s
		// The client's token never reaches a provider.
		if v := r.Header.Get("authorization"); v != "" {
			t.Errorf("request %d: authorization %q reached the upstream", i, v)
		}
	}
}

// dedupe keeps the first request of each method and URI, for the log.
func dedupe(reqs []recordedRequest) []recordedRequest {
	seen := map[string]bool{}
	var out []recordedRequest
	for _, r := range reqs {
		if k := r.Method + " " + r.URI; !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// TestCodexThroughGateway runs `codex exec` with the README's config.toml
// against the gateway of `make run` (examples/switchyard.yaml) and the mock.
func TestCodexThroughGateway(t *testing.T) {
	t.Parallel()
	c := startCodex(t, withAgentKey)
	mock, gw := c.mock, c.gw

	run := runAgent(t, c.bin, []string{"exec", "--skip-git-repo-check", "Reply with one short sentence."}, c.env)
	checkAgentOutput(t, run, mockllm.Answer, c.guard)

	reqs := mock.take()
	t.Logf("Codex sent:\n%s", describe(reqs))
	if len(reqs) == 0 {
		t.Fatal("the mock received nothing")
	}
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.URI != "/v1/responses" {
			t.Errorf("request %d: %s %s, want POST /v1/responses", i, r.Method, r.URI)
			continue
		}
		var body struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil || body.Model != "mock-gpt" || !body.Stream {
			t.Errorf("request %d: model %q stream %v (%v), want a mock-gpt stream", i, body.Model, body.Stream, err)
		}
		if r.Header.Get("session-id") == "" && r.Header.Get("session_id") == "" {
			t.Errorf("request %d: no session header", i)
		}
		if v := r.Header.Get("originator"); v != "codex_exec" {
			t.Errorf("request %d: originator %q", i, v)
		}
	}
	// The gateway read Codex's session on every request.
	waitMetric(t, gw, `switchyard_session_requests_total{source="codex"}`, float64(len(reqs)))
}

// codexRun is Codex set up with the README's config.toml against the
// gateway of `make run` and the mock.
type codexRun struct {
	bin   string
	env   []string
	mock  *recordingMock
	gw    *gateway
	guard *egressGuard
}

// codexAgentKey is the client key Codex sends.
const codexAgentKey = "swy-agent-key-3f9c2a7e51d8"

// startCodex sets Codex up with the README's config.toml against a gateway
// whose config keyed adds the client key (withAgentKey or a variant of it)
// to the config of `make run`.
func startCodex(t *testing.T, keyed func(string) string) codexRun {
	t.Helper()
	c := codexRun{bin: agentCLI(t, "codex", "CODEX_VERSION"), mock: startMock(t)}
	c.gw = startGateway(t, keyed(exampleConfig(t, c.mock.URL)), gatewayOptions{extraEnv: []string{agentKeyEnv + "=" + codexAgentKey}})
	c.guard = startEgressGuard(t)

	// The README's config.toml, with the env_key line the README says to
	// add when the gateway requires client keys.
	config := strings.ReplaceAll(readmeBlock(t, "codex-config"), makeRunURL, c.gw.url)
	const providerLine = `wire_api = "responses"` + "\n"
	if !strings.Contains(config, providerLine) {
		t.Fatalf("README's Codex config has no %q line in its provider section", strings.TrimSpace(providerLine))
	}
	config = strings.Replace(config, providerLine, providerLine+`env_key = "SWITCHYARD_KEY"`+"\n", 1)
	// Codex refuses to put its helper links in a CODEX_HOME under TMPDIR,
	// so TMPDIR is a directory of its own.
	home, codexHome := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(codexHome, "config.toml"), config)
	c.env = append([]string{"HOME=" + home, "CODEX_HOME=" + codexHome, "TMPDIR=" + t.TempDir(), "SWITCHYARD_KEY=" + codexAgentKey}, c.guard.env()...)
	return c
}
