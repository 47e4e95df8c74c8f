package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"switchyard/loadtest/mockllm"
)

const (
	geminiKey    = "gemini-KEY-e2e-0001"
	geminiAnswer = "Bonjour from the fake Gemini."
	geminiArg    = "Paris"
	// geminiToolTrigger in the last user text makes the fake call every
	// declared function.
	geminiToolTrigger = "use tools"
	geminiResultHead  = mockllm.ToolResultPrefix
	// geminiOverloaded is a model the fake answers 503, as Gemini does
	// when a model is overloaded.
	geminiOverloaded = "gemini-overloaded"
)

// fakeGemini is the Gemini API as far as generateContent goes: it checks
// what the service checks (the x-goog-api-key header, the path and method,
// alt=sse for streams, the body's shape, a function response for every
// function call of the turn before, and for Gemini 3 models the thought
// signature it gave each step's first call) and refuses in Google's error shape;
// it answers text or function calls, streamed or not. It records what it
// received.
type fakeGemini struct {
	URL string
	requestLog
	answers atomic.Int64 // numbers each answer's responseId, as Gemini's are unique
}

func startFakeGemini(t testing.TB) *fakeGemini {
	t.Helper()
	f := &fakeGemini{}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func geminiError(w http.ResponseWriter, status int, state, msg string, reason string) {
	w.Header().Set("content-type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	details := "[]"
	if reason != "" {
		details = fmt.Sprintf(`[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":%q,"domain":"googleapis.com"}]`, reason)
	}
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"status":%q,"details":%s}}`, status, msg, state, details)
}

func (f *fakeGemini) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.record(r, body)
	if r.Header.Get("x-goog-api-key") != geminiKey {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
		return
	}
	model, method, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1beta/models/"), ":")
	if r.Method != http.MethodPost || !ok || !strings.HasPrefix(r.URL.Path, "/v1beta/models/") || model == "" {
		geminiError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.", "")
		return
	}
	stream := method == "streamGenerateContent"
	if model == geminiOverloaded {
		geminiError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "The model is overloaded. Please try again later.", "")
		return
	}
	switch {
	case method != "generateContent" && !stream:
		geminiError(w, http.StatusNotFound, "NOT_FOUND", "unknown method "+method, "")
		return
	case stream && r.URL.Query().Get("alt") != "sse":
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "the fake streams only with alt=sse", "")
		return
	}
	if msg := checkGeminiBody(body); msg != "" {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, "")
		return
	}
	signs := strings.HasPrefix(model, "gemini-3")
	if signs {
		if msg := checkSignatures(body); msg != "" {
			geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", msg, "")
			return
		}
	}
	parts := geminiAnswerParts(body)
	if signs {
		signFirstCall(parts)
	}
	usage := fmt.Sprintf(`{"promptTokenCount":%d,"candidatesTokenCount":%d,"totalTokenCount":%d}`, len(body)/4, 7, len(body)/4+7)
	id := fmt.Sprintf("fake-%d", f.answers.Add(1))
	if !stream {
		w.Header().Set("content-type", "application/json; charset=UTF-8")
		fmt.Fprintf(w, `{"candidates":[{"content":{"role":"model","parts":%s},"finishReason":"STOP","index":0}],"usageMetadata":%s,"modelVersion":%q,"responseId":%q}`,
			mustJSON(parts), usage, model, id)
		return
	}
	w.Header().Set("content-type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	var events []string
	for _, p := range parts {
		if text, ok := p["text"].(string); ok {
			for _, piece := range strings.SplitAfter(text, " ") {
				events = append(events, mustJSON([]map[string]any{{"text": piece}}))
			}
			continue
		}
		events = append(events, mustJSON([]map[string]any{p}))
	}
	for i, ev := range events {
		tail := ""
		if i == len(events)-1 {
			tail = `,"finishReason":"STOP"`
		}
		fmt.Fprintf(w, "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":%s}%s,\"index\":0}],\"usageMetadata\":%s,\"modelVersion\":%q,\"responseId\":%q}\r\n\r\n",
			ev, tail, usage, model, id)
		if fl != nil {
			fl.Flush()
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkGeminiBody refuses a body Gemini would: unknown fields, no
// contents, roles other than user and model, parts of no known kind,
// function declarations without a name, and a turn answering function
// calls with a different number of function responses.
func checkGeminiBody(body []byte) string {
	if !gjson.ValidBytes(body) {
		return "Invalid JSON payload received."
	}
	known := map[string]bool{"contents": true, "systemInstruction": true, "tools": true, "toolConfig": true,
		"generationConfig": true, "safetySettings": true, "cachedContent": true}
	msg := ""
	gjson.ParseBytes(body).ForEach(func(k, _ gjson.Result) bool {
		if !known[k.String()] {
			msg = fmt.Sprintf("Invalid JSON payload received. Unknown name %q: Cannot find field.", k.String())
		}
		return msg == ""
	})
	if msg != "" {
		return msg
	}
	contents := gjson.GetBytes(body, "contents").Array()
	if len(contents) == 0 {
		return "* GenerateContentRequest.contents: contents is not specified"
	}
	calls := 0
	for i, c := range contents {
		role := c.Get("role").String()
		if role != "user" && role != "model" {
			return fmt.Sprintf("Please use a valid role: user, model. (contents[%d])", i)
		}
		nCalls, nResponses := 0, 0
		for _, p := range c.Get("parts").Array() {
			switch {
			case p.Get("text").Exists(), p.Get("inlineData").Exists():
			case p.Get("functionCall.name").String() != "":
				nCalls++
			case p.Get("functionResponse.name").String() != "" && p.Get("functionResponse.response").IsObject():
				nResponses++
			default:
				return fmt.Sprintf("contents[%d]: a part must hold text, inlineData, functionCall or functionResponse: %s", i, p.Raw)
			}
		}
		if len(c.Get("parts").Array()) == 0 {
			return fmt.Sprintf("* GenerateContentRequest.contents[%d].parts: contents.parts must not be empty.", i)
		}
		if calls > 0 && nResponses != calls {
			return "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
		}
		calls = nCalls
	}
	for _, d := range gjson.GetBytes(body, "tools.#.functionDeclarations|@flatten").Array() {
		if d.Get("name").String() == "" {
			return "* GenerateContentRequest.tools[0].function_declarations[0].name: Name cannot be empty."
		}
	}
	return ""
}

// geminiSigningKey makes the fake's thought signatures, which only it can
// make or check, as Gemini's are.
var geminiSigningKey = []byte("fake gemini thought signatures")

// thoughtSignature is the signature of a call of the function name: a
// nonce and a MAC of it and the name.
func thoughtSignature(nonce []byte, name string) []byte {
	m := hmac.New(sha256.New, geminiSigningKey)
	m.Write(nonce)
	m.Write([]byte(name))
	return append(nonce[:len(nonce):len(nonce)], m.Sum(nil)[:16]...)
}

// decodeSignature reads a signature as Google reads bytes in JSON: base64,
// standard or URL-safe, padded or not.
func decodeSignature(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, true
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return b, err == nil
}

// signFirstCall gives the first function call of an answer a thought
// signature, as Gemini 3 does (parallel calls after it get none).
func signFirstCall(parts []map[string]any) {
	for _, p := range parts {
		if fc, ok := p["functionCall"].(map[string]any); ok {
			nonce := make([]byte, 12)
			_, _ = rand.Read(nonce)
			p["thoughtSignature"] = base64.StdEncoding.EncodeToString(thoughtSignature(nonce, fc["name"].(string)))
			return
		}
	}
}

// checkSignatures refuses what Gemini 3 refuses: a step of the current
// turn (after the last user text) whose first function call comes back
// without the signature Gemini gave it.
func checkSignatures(body []byte) string {
	contents := gjson.GetBytes(body, "contents").Array()
	turn := currentTurn(contents)
	for i, c := range contents[turn:] {
		var first gjson.Result
		for _, p := range c.Get("parts").Array() {
			if p.Get("functionCall").Exists() {
				first = p
				break
			}
		}
		if c.Get("role").String() != "model" || !first.Exists() {
			continue
		}
		name := first.Get("functionCall.name").String()
		raw, ok := decodeSignature(first.Get("thoughtSignature").String())
		if !ok || len(raw) != 28 || !hmac.Equal(thoughtSignature(raw[:12], name), raw) {
			return fmt.Sprintf("Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, "+
				"and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:%s` , position %d. "+
				"Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.", name, turn+i+1)
		}
	}
	return ""
}

// currentTurn is where the conversation's current turn starts: after its
// last user message of text without function responses.
func currentTurn(contents []gjson.Result) int {
	turn := 0
	for i, c := range contents {
		text, responses := false, false
		for _, p := range c.Get("parts").Array() {
			text = text || p.Get("text").String() != ""
			responses = responses || p.Get("functionResponse").Exists()
		}
		if c.Get("role").String() == "user" && text && !responses {
			turn = i + 1
		}
	}
	return turn
}

// loopTrigger asks for a loop of calls, as the mock's tool loop does
// (loadtest/mockllm): `call:NAME*N{arguments}`, {n} in the arguments the
// step's number.
var loopTrigger = regexp.MustCompile(`call:([A-Za-z0-9_]+)\*(\d+)(\{[^\n]*\})`)

// geminiLoopParts answers a turn whose prompt holds loopTrigger: a call of
// NAME until N steps have called it, then text quoting the last function
// response. false: the prompt asks for no loop, or of an undeclared tool.
func geminiLoopParts(body []byte) ([]map[string]any, bool) {
	contents := gjson.GetBytes(body, "contents").Array()
	turn := currentTurn(contents)
	if turn == 0 {
		return nil, false
	}
	prompt := ""
	for _, p := range contents[turn-1].Get("parts").Array() {
		prompt += p.Get("text").String() + "\n"
	}
	m := loopTrigger.FindStringSubmatch(prompt)
	if m == nil || !gjson.GetBytes(body, `tools.#.functionDeclarations|@flatten|#(name==`+strconv.Quote(m[1])+`)`).Exists() {
		return nil, false
	}
	steps, last := 0, ""
	for _, c := range contents[turn:] {
		for _, p := range c.Get("parts").Array() {
			if p.Get("functionCall").Exists() {
				steps++
				break
			}
		}
		for _, p := range c.Get("parts").Array() {
			if r := p.Get("functionResponse.response"); r.Exists() {
				last = r.Get("content").String() + r.Get("error").String()
			}
		}
	}
	if n, _ := strconv.Atoi(m[2]); steps >= n {
		return []map[string]any{{"text": geminiResultHead + last}}, true
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(strings.ReplaceAll(m[3], "{n}", strconv.Itoa(steps+1))), &args); err != nil {
		return []map[string]any{{"text": "the loop's arguments are not JSON: " + err.Error()}}, true
	}
	return []map[string]any{{"functionCall": map[string]any{"name": m[1], "args": args}}}, true
}

// geminiAnswerParts answers the conversation: a loop of calls when its
// prompt asks for one (geminiLoopParts), the function responses of the
// last turn quoted, a call of every declared function when the last user
// text asks for tools, or text.
func geminiAnswerParts(body []byte) []map[string]any {
	if parts, ok := geminiLoopParts(body); ok {
		return parts
	}
	last := gjson.GetBytes(body, "contents.@reverse.0.parts")
	var results []string
	text := ""
	for _, p := range last.Array() {
		if r := p.Get("functionResponse.response.content"); r.Exists() {
			results = append(results, r.String())
		}
		text += p.Get("text").String()
	}
	if len(results) > 0 {
		return []map[string]any{{"text": geminiResultHead + strings.Join(results, "|")}}
	}
	decls := gjson.GetBytes(body, "tools.#.functionDeclarations|@flatten").Array()
	if !strings.Contains(text, geminiToolTrigger) || len(decls) == 0 {
		return []map[string]any{{"text": geminiAnswer}}
	}
	var parts []map[string]any
	for _, d := range decls {
		args := map[string]any{}
		d.Get("parametersJsonSchema.properties").ForEach(func(k, v gjson.Result) bool {
			if v.Get("type").String() == "integer" {
				args[k.String()] = 1
			} else {
				args[k.String()] = geminiArg
			}
			return true
		})
		parts = append(parts, map[string]any{"functionCall": map[string]any{"name": d.Get("name").String(), "args": args}})
	}
	return parts
}

// TestGeminiAPI: the official SDKs through the real Envoy to the fake
// Gemini API: chat completions and Messages translated to generateContent
// and streamGenerateContent?alt=sse, text and function calls and their
// responses; a wrong key reaches each client as its API's 401; tokens are
// counted from usageMetadata; the key is never logged.
func TestGeminiAPI(t *testing.T) {
	t.Parallel()
	py := sdkPython(t)
	gem := startFakeGemini(t)
	gw := startGateway(t, fmt.Sprintf(`providers:
  - name: gemini
    url: %[1]s
    schema: gemini
    auth: {type: header, header: x-goog-api-key, key_env: GEMINI_E2E_KEY}
  - name: gemini-wrong-key
    url: %[1]s
    schema: gemini
    auth: {type: header, header: x-goog-api-key, key_env: GEMINI_E2E_WRONG}
  - name: gemini-backup
    url: %[1]s
    schema: gemini
    auth: {type: header, header: x-goog-api-key, key_env: GEMINI_E2E_KEY}
usage: {enabled: true}
routes:
  - model: gemini-fb
    targets: [{provider: gemini, model: gemini-overloaded}]
    fallbacks: [{provider: gemini-backup, model: gemini-2.5-flash}]
  - {model: gemini-chat, provider: gemini, rewrite_model: gemini-3-flash-preview}
  - {model: gemini-msgs, provider: gemini, rewrite_model: gemini-3-pro-preview}
  - {model: bad-key, provider: gemini-wrong-key}
`, gem.URL), gatewayOptions{logLevel: "debug", extraEnv: []string{"GEMINI_E2E_KEY=" + geminiKey, "GEMINI_E2E_WRONG=not-the-gemini-key"}})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "sdk_gemini.py"),
		gw.url, "gemini-chat", "gemini-msgs", geminiAnswer, geminiToolTrigger, geminiArg, geminiResultHead).CombinedOutput()
	t.Logf("sdk_gemini.py:\n%s", out)
	if err != nil || !strings.Contains(string(out), `{"passed": 2}`) {
		t.Fatalf("the SDKs failed through Gemini: %v", err)
	}
	reqs := gem.take()
	if len(reqs) == 0 {
		t.Fatal("the fake Gemini received nothing")
	}
	streams := 0
	for _, r := range reqs {
		switch r.URI {
		case "/v1beta/models/gemini-3-flash-preview:generateContent", "/v1beta/models/gemini-3-pro-preview:generateContent":
		case "/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse", "/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse":
			streams++
		default:
			t.Errorf("Gemini got %s %s", r.Method, r.URI)
		}
		for _, h := range []string{"authorization", "x-api-key", "api-key", "anthropic-version"} {
			if r.Header.Get(h) != "" {
				t.Errorf("%s: the client's %s reached Gemini", r.URI, h)
			}
		}
	}
	if streams == 0 {
		t.Error("no request reached streamGenerateContent")
	}

	res := gw.do(t, "POST", "/v1/chat/completions", map[string]string{"content-type": "application/json"},
		`{"model":"bad-key","messages":[{"role":"user","content":"hi"}]}`)
	if res.status != http.StatusUnauthorized || gjson.GetBytes(res.body, "error.type").String() != "authentication_error" ||
		!strings.Contains(gjson.GetBytes(res.body, "error.message").String(), "API key not valid") {
		t.Errorf("chat with a wrong Gemini key: %d %s, want 401 authentication_error in OpenAI's shape", res.status, res.body)
	}
	res = gw.do(t, "POST", "/v1/messages", map[string]string{"content-type": "application/json", "anthropic-version": "2023-06-01"},
		`{"model":"bad-key","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if res.status != http.StatusUnauthorized || gjson.GetBytes(res.body, "error.type").String() != "authentication_error" {
		t.Errorf("a Messages stream with a wrong Gemini key: %d %s, want 401 authentication_error in Anthropic's shape", res.status, res.body)
	}
	res = gw.do(t, "POST", "/v1/chat/completions", map[string]string{"content-type": "application/json"},
		`{"model":"gemini-chat","n":3,"messages":[{"role":"user","content":"hi"}]}`)
	if res.status != http.StatusBadRequest || !bytes.Contains(res.body, []byte("one candidate")) {
		t.Errorf("n=3 to Gemini: %d %s, want the gateway's 400", res.status, res.body)
	}

	// A fallback chain of Gemini providers: the overloaded model's 503 moves
	// the request on, translated once, and the backup's answer is translated
	// for each client API, streamed or not.
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"gemini-fb","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/chat/completions", `{"model":"gemini-fb","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"gemini-fb","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"gemini-fb","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		res := gw.do(t, "POST", tc.path, map[string]string{"content-type": "application/json", "anthropic-version": "2023-06-01"}, tc.body)
		text := gjson.GetBytes(res.body, "choices.0.message.content").String() + gjson.GetBytes(res.body, "content.0.text").String()
		if strings.Contains(tc.body, `"stream":true`) {
			text = sseText(res.body)
		}
		if res.status != http.StatusOK || text != geminiAnswer {
			t.Errorf("%s %s through the fallback: %d %q\n%s", tc.path, tc.body, res.status, text, res.body)
		}
	}
	fb := gem.take()
	var overloaded, backup int
	for _, r := range fb {
		switch {
		case strings.Contains(r.URI, geminiOverloaded):
			overloaded++
		case strings.Contains(r.URI, "gemini-2.5-flash"):
			backup++
		}
	}
	if overloaded != 4 || backup != 4 {
		t.Errorf("the fallback requests reached the overloaded model %d times and the backup %d times, want 4 and 4", overloaded, backup)
	}

	waitFor(t, "Gemini's tokens counted", func() bool {
		m := gw.metrics(t)
		return metricSum(m, "switchyard_tokens_total", `provider="gemini"`, `type="input"`) > 0 &&
			metricSum(m, "switchyard_tokens_total", `provider="gemini"`, `type="output"`) > 0
	})
	if logs := gw.extprocOut.String(); strings.Contains(logs, geminiKey) || strings.Contains(logs, "not-the-gemini-key") {
		t.Error("a provider key appears in extproc's log")
	}
}

// startClaudeOnGemini is startClaude with its model, gem-cc, served by the
// fake Gemini as model.
func startClaudeOnGemini(t *testing.T, gem *fakeGemini, model string) claudeRun {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "gemini-key")
	writeFile(t, keyFile, geminiKey)
	return startClaude(t, "gem-cc", func(cfg string) string {
		cfg = strings.Replace(cfg, "\nproviders:\n", fmt.Sprintf(`
providers:
  - name: gemini
    url: %s
    schema: gemini
    auth: {type: header, header: x-goog-api-key, key_file: %s}
`, gem.URL, keyFile), 1)
		cfg = strings.Replace(cfg, "\nroutes:\n", "\nroutes:\n  - {model: gem-cc, provider: gemini, rewrite_model: "+model+"}\n", 1)
		return withAgentKey(cfg)
	})
}

// TestClaudeCodeOnGemini: Claude Code, with the README's settings, completes
// a prompt on a model served by the Gemini API: its Messages requests (a
// long system prompt, dozens of tools, thinking and context hints) reach the
// fake Gemini as generateContent calls it accepts, and the answers come back
// as Messages events.
func TestClaudeCodeOnGemini(t *testing.T) {
	t.Parallel()
	gem := startFakeGemini(t)
	c := startClaudeOnGemini(t, gem, "gemini-2.5-pro")
	run := runAgent(t, c.bin, []string{"--settings", c.settings, "-p", "Reply with one short sentence."}, c.env)
	checkAgentOutput(t, run, geminiAnswer, c.guard)
	reqs := gem.take()
	if len(reqs) == 0 {
		t.Fatal("the fake Gemini received nothing")
	}
	for i, r := range reqs {
		if !strings.HasPrefix(r.URI, "/v1beta/models/gemini-2.5-pro:") {
			t.Errorf("request %d: %s %s, want a gemini-2.5-pro method", i, r.Method, r.URI)
		}
		if n := len(gjson.GetBytes(r.Body, "tools.0.functionDeclarations").Array()); i == 0 && n == 0 {
			t.Logf("request %d declared no functions", i)
		}
	}
	if leaked := c.mock.take(); len(leaked) > 0 {
		t.Errorf("%d requests reached the mock instead of Gemini", len(leaked))
	}
}

// TestClaudeCodeToolLoopOnGemini: Claude Code runs a loop of Bash calls on
// a Gemini 3 model, streamed through the gateway's Messages translation:
// each call's id carries Gemini's thought signature, which Claude Code
// sends back with the call's result and the gateway returns to Gemini (the
// fake refuses a step without it), and each step's output reaches Gemini.
func TestClaudeCodeToolLoopOnGemini(t *testing.T) {
	t.Parallel()
	gem := startFakeGemini(t)
	c := startClaudeOnGemini(t, gem, "gemini-3-pro-preview")
	prompt := fmt.Sprintf(`Run the steps. call:Bash*%d{"command":%q,"description":"Print step {n}"}`, loopSteps, stepCommand)
	run := runAgent(t, c.bin, []string{"--settings", c.settings, "--allowedTools", "Bash", "-p", prompt}, c.env)
	checkFinalAnswer(t, run, c.guard)
	var loop []recordedRequest
	for _, r := range gem.take() {
		if bytes.Contains(r.Body, []byte("call:Bash*")) {
			loop = append(loop, r)
		}
	}
	if len(loop) != loopSteps+1 {
		t.Fatalf("%d requests carry the prompt, want %d (one per step and the last one)", len(loop), loopSteps+1)
	}
	for i, r := range loop {
		if !strings.HasPrefix(r.URI, "/v1beta/models/gemini-3-pro-preview:streamGenerateContent") {
			t.Errorf("loop request %d: %s, want a gemini-3-pro-preview stream", i, r.URI)
		}
		signed := gjson.GetBytes(r.Body, `contents.#.parts.#(functionCall.name!="").thoughtSignature`).Array()
		if len(signed) != i {
			t.Errorf("loop request %d: %d signed calls, want %d", i, len(signed), i)
		}
		results := gjson.GetBytes(r.Body, `contents.#.parts.#.functionResponse.response.content|@flatten`).Array()
		if len(results) != i {
			t.Errorf("loop request %d carries %d function responses, want %d", i, len(results), i)
			continue
		}
		for n := 1; n <= i; n++ {
			if !strings.Contains(results[n-1].String(), stepOutput(n)) {
				t.Errorf("loop request %d: function response %d is %q, want it to hold %q", i, n, results[n-1], stepOutput(n))
			}
		}
	}
}

// sseText joins the text deltas of a chat or Messages stream.
func sseText(body []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "data: ")
		if !ok || !gjson.Valid(data) {
			continue
		}
		b.WriteString(gjson.Get(data, "choices.0.delta.content").String())
		b.WriteString(gjson.Get(data, "delta.text").String())
	}
	return b.String()
}
