package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/loadtest/mockllm"
)

// The agents' tool loops: Claude Code and Codex, through Envoy and extproc,
// run a loop of loopSteps tool calls the mock asks for (loadtest/mockllm
// tools.go: `call:NAME*N{arguments}`), each a shell command whose output the
// tests then look for in what the mock received next.

// loopSteps is the number of tool calls in each loop.
const loopSteps = 3

// stepCommand is the shell command of step {n} (the mock puts the step's
// number in place); its output, stepOutput, is not in its text, so a tool
// result that holds stepOutput comes from the command having run.
const stepCommand = "printf swy-step-%s {n}"

func stepOutput(n int) string { return "swy-step-" + strconv.Itoa(n) }

// checkFinalAnswer: the CLI printed the mock's answer to the loop's end,
// which quotes the last step's result (the CLI may wrap the command's
// output: Codex adds the exit code and wall time), and nothing went wrong.
func checkFinalAnswer(t *testing.T, run agentRun, guard *egressGuard) {
	t.Helper()
	checkAgentOutput(t, run, mockllm.ToolResultPrefix, guard)
	if _, answer, _ := strings.Cut(run.stdout, mockllm.ToolResultPrefix); !strings.Contains(answer, stepOutput(loopSteps)) {
		t.Errorf("the final answer does not quote the last step's output %q", stepOutput(loopSteps))
	}
}

// loopGuard is the counted runs' loop guard: stricter than any a deployment
// would set, yet a legitimate loop (every request's last item is a new tool
// result) must pass it.
const loopGuard = "{max_repeats: 2, window: 60s}"

// withCountedAgentKey is withAgentKey with usage counting on and the loop
// guard on the agents' key.
func withCountedAgentKey(config string) string {
	return withAgentKey(config) + "    loop_guard: " + loopGuard + "\nusage: {enabled: true}\n"
}

// loopModes are the two gateway setups every loop runs against; the
// counted one is checked with checkCounted.
var loopModes = []struct {
	name    string
	keyed   func(string) string
	counted bool
}{
	{"plain", withAgentKey, false},
	{"counted and guarded", withCountedAgentKey, true},
}

// TestClaudeCodeToolLoop: `claude -p` with Bash allowed runs a loop of
// loopSteps Bash calls through the gateway, streamed, on a model served
// with the Messages API and on one served with chat completions (the
// gateway translates); each step's output reaches the provider in the next
// request and the final answer reaches Claude Code. With usage counting on
// and a loop guard on its key, every turn's tokens are counted and no
// request is refused.
func TestClaudeCodeToolLoop(t *testing.T) {
	t.Parallel()
	prompt := fmt.Sprintf(`Run the steps. call:Bash*%d{"command":%q,"description":"Print step {n}"}`, loopSteps, stepCommand)
	for _, model := range []string{"mock-claude", "mock-gpt"} {
		for _, mode := range loopModes {
			t.Run(model+" "+mode.name, func(t *testing.T) {
				t.Parallel()
				c := startClaude(t, model, mode.keyed)
				run := runAgent(t, c.bin, []string{"--settings", c.settings, "--allowedTools", "Bash", "-p", prompt}, c.env)
				checkFinalAnswer(t, run, c.guard)
				reqs := c.mock.take()
				t.Logf("the mock received %d requests:\n%s", len(reqs), describe(reqs))
				checkLoop(t, reqs, "call:Bash*")
				if mode.counted {
					checkCounted(t, c.gw, reqs, "/v1/messages", `{"model":"`+model+`","max_tokens":5,"messages":[{"role":"user","content":"guard probe"}]}`,
						map[string]string{"authorization": "Bearer " + c.token})
				}
			})
		}
	}
}

// TestCodexToolLoop: `codex exec` runs a loop of loopSteps shell calls
// (its exec_command tool) through the gateway on the Responses API, checked
// as TestClaudeCodeToolLoop checks Claude Code's.
func TestCodexToolLoop(t *testing.T) {
	t.Parallel()
	for _, mode := range loopModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			c := startCodex(t, mode.keyed)
			prompt := fmt.Sprintf(`Run the steps. call:exec_command*%d{"cmd":%q}`, loopSteps, stepCommand)
			run := runAgent(t, c.bin, []string{"exec", "--skip-git-repo-check", prompt}, c.env)
			checkFinalAnswer(t, run, c.guard)
			reqs := c.mock.take()
			t.Logf("the mock received %d requests:\n%s", len(reqs), describe(reqs))
			checkLoop(t, reqs, "call:exec_command*")
			if mode.counted {
				checkCounted(t, c.gw, reqs, "/v1/responses", `{"model":"mock-gpt","input":"guard probe"}`,
					map[string]string{"authorization": "Bearer " + codexAgentKey})
			}
		})
	}
}

// checkLoop checks the loop on the wire: the requests that carry the
// prompt (trigger) are streamed, and the one after step n holds step n's
// output in a tool result, for every step; the loop ends with the request
// after the last step.
func checkLoop(t *testing.T, reqs []recordedRequest, trigger string) {
	t.Helper()
	var loop []recordedRequest
	for _, r := range reqs {
		if bytes.Contains(r.Body, []byte(trigger)) {
			loop = append(loop, r)
		}
	}
	if len(loop) != loopSteps+1 {
		t.Fatalf("%d requests carry the prompt, want %d (one per step and the last one)", len(loop), loopSteps+1)
	}
	for i, r := range loop {
		if !gjson.GetBytes(r.Body, "stream").Bool() {
			t.Errorf("loop request %d is not streamed", i)
		}
		results := toolResults(r)
		if len(results) != i {
			t.Errorf("loop request %d carries %d tool results, want %d: %q", i, len(results), i, results)
			continue
		}
		for n := 1; n <= i; n++ {
			if !strings.Contains(results[n-1], stepOutput(n)) {
				t.Errorf("loop request %d: tool result %d is %q, want it to hold %q", i, n, results[n-1], stepOutput(n))
			}
		}
	}
}

// toolResults returns the text of every tool result a request carries, in
// order, in the provider's API.
func toolResults(r recordedRequest) []string {
	var out []string
	text := func(c gjson.Result) string {
		if c.Type == gjson.String {
			return c.Str
		}
		var b strings.Builder
		c.ForEach(func(_, p gjson.Result) bool {
			b.WriteString(p.Get("text").String())
			return true
		})
		return b.String()
	}
	switch pathOnlyURI(r.URI) {
	case "/v1/messages":
		gjson.GetBytes(r.Body, "messages").ForEach(func(_, m gjson.Result) bool {
			m.Get("content").ForEach(func(_, b gjson.Result) bool {
				if b.Get("type").Str == "tool_result" {
					out = append(out, text(b.Get("content")))
				}
				return true
			})
			return true
		})
	case "/v1/chat/completions":
		gjson.GetBytes(r.Body, "messages").ForEach(func(_, m gjson.Result) bool {
			if m.Get("role").Str == "tool" {
				out = append(out, text(m.Get("content")))
			}
			return true
		})
	case "/v1/responses":
		gjson.GetBytes(r.Body, "input").ForEach(func(_, it gjson.Result) bool {
			if it.Get("type").Str == "function_call_output" {
				out = append(out, text(it.Get("output")))
			}
			return true
		})
	}
	return out
}

// checkCounted: every answer's tokens, as the provider reported them,
// are counted for the agents' key (each request replayed against the mock
// gives what it reported), one observation per request; the loop guard
// refused nothing, and it was on: the same probe sent once too often is
// refused.
func checkCounted(t *testing.T, gw *gateway, reqs []recordedRequest, probePath, probe string, auth map[string]string) {
	t.Helper()
	want := tokenCounts{}
	h := mockllm.New(mockllm.Options{Latency: -1, ChunkInterval: -1})
	for _, r := range reqs {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(r.Method, r.URI, bytes.NewReader(r.Body)))
		for typ, n := range reportedUsage(t, rec.Body.Bytes()) {
			want[typ] += n
		}
	}
	if want["input"] == 0 || want["output"] == 0 {
		t.Fatalf("the mock reported no usage for the loop: %v", want)
	}
	sum := func(metric string, labels ...string) float64 {
		return metricSum(gw.metrics(t), metric, labels...)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := tokenCounts{}
		for typ := range want {
			got[typ] = sum("switchyard_tokens_total", `key="`+agentKeyName+`"`, `type="`+typ+`"`)
		}
		n := sum("switchyard_request_duration_seconds_count")
		if maps.Equal(got, want) && n == float64(len(reqs)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens counted %v, want %v; %v answers observed, want %d\n%s", got, want, n, len(reqs), grep(gw.metrics(t), "switchyard_"))
		}
		time.Sleep(25 * time.Millisecond)
	}
	refusals := `switchyard_loop_guard_refusals_total{key_name="` + agentKeyName + `"}`
	if v, _ := metricValue(gw.metrics(t), refusals); v != 0 {
		t.Errorf("the loop guard refused %v of the loop's requests", v)
	}
	for i := range 3 {
		r := gw.do(t, http.MethodPost, probePath, auth, probe)
		// The refusal is in the called API's shape; both say why.
		if refused := r.status == http.StatusTooManyRequests && strings.Contains(string(r.body), "an identical request"); refused != (i == 2) {
			t.Errorf("probe %d: %d %s; want only the third refused by the loop guard", i+1, r.status, r.body)
		}
	}
	waitMetric(t, gw, refusals, 1)
}
