package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchyard/internal/testkit"
)

// badInputLimit is the body limit of the bad-input gateway: small enough
// that bodies over it and just under it cross loopback in milliseconds.
const badInputLimit = 1 << 20

// outcome is what a client gets for one input: either routed to the
// upstream (status 200 from the fake upstream) or refused with an error in
// the API's own shape.
type outcome struct {
	status  int
	routed  bool   // the fake upstream answered
	errType string // OpenAI error.type, or Anthropic error.type on /v1/messages
	code    string // OpenAI error.code (empty for Anthropic)
}

type badInput struct {
	name        string
	method      string // default POST
	path        string // default /v1/chat/completions
	headers     map[string]string
	noKey       bool   // do not add the default bearer client key
	contentType string // default application/json; "-" sends none
	body        []byte
	chunked     bool // stream the body through a pipe: no content-length
	want        outcome
	// openAIShape: the error comes in the OpenAI shape whatever the path
	// (Envoy refuses oversized headers before it knows the path).
	openAIShape bool
	// wantBuffered, when set, is the outcome in BUFFERED body mode.
	wantBuffered *outcome
}

func routedOK() outcome { return outcome{status: 200, routed: true} }

func refused(status int, errType, code string) outcome {
	return outcome{status: status, errType: errType, code: code}
}

func badInputs() []badInput {
	nested := func(depth int) []byte {
		// depth levels in all: the outer object and depth-1 arrays.
		return []byte(`{"model":"gpt-exact","x":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
	}
	padded := func(size int) []byte {
		head := `{"model":"gpt-exact","input":"`
		return []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"model":"gpt-exact"}`))
	zw.Close()
	oneOff := func(key string, i int) string {
		b := []byte(key)
		b[i] ^= 0x01
		return string(b)
	}
	anthropic := map[string]string{"x-api-key": clientKeyA, "anthropic-version": "2023-06-01"}
	invalidReq := func(code string) outcome { return refused(400, "invalid_request_error", code) }
	unauth := refused(401, "authentication_error", "invalid_api_key")
	tooLarge := refused(413, "invalid_request_error", "request_too_large")
	good := []byte(`{"model":"gpt-exact","messages":[{"role":"user","content":"hi"}]}`)

	return []badInput{
		{name: "malformed JSON", body: []byte(`{"model":"gpt-exact",`), want: invalidReq("invalid_json")},
		{name: "malformed JSON, anthropic", path: "/v1/messages", headers: anthropic, noKey: true, body: []byte(`{"model":`),
			want: refused(400, "invalid_request_error", "")},
		{name: "not an object", body: []byte(`["model","gpt-exact"]`), want: invalidReq("invalid_json")},
		{name: "empty body", body: []byte{}, want: invalidReq("invalid_json")},
		{name: "empty body, chunked", body: []byte{}, chunked: true, want: invalidReq("invalid_json")},
		{name: "model missing", body: []byte(`{"messages":[]}`), want: invalidReq("missing_model")},
		{name: "model null", body: []byte(`{"model":null}`), want: invalidReq("invalid_model")},
		{name: "model a number", body: []byte(`{"model":4}`), want: invalidReq("invalid_model")},
		{name: "model an array", body: []byte(`{"model":["gpt-exact"]}`), want: invalidReq("invalid_model")},
		{name: "model an object", body: []byte(`{"model":{"id":"gpt-exact"}}`), want: invalidReq("invalid_model")},
		{name: "model empty string", body: []byte(`{"model":""}`), want: invalidReq("invalid_model")},
		{name: "model a 10 KB string", body: []byte(`{"model":"` + strings.Repeat("m", 10<<10) + `"}`), want: invalidReq("invalid_model")},
		{name: "model nested, not top level", body: []byte(`{"x":{"model":"gpt-exact"}}`), want: invalidReq("missing_model")},
		{name: "duplicate model keys", body: []byte(`{"model":"gpt-exact","model":"renamed"}`), want: invalidReq("duplicate_model")},
		{name: "duplicate model keys, escaped spelling", body: []byte(`{"model":"gpt-exact","m\u006fdel":"renamed"}`), want: invalidReq("duplicate_model")},
		{name: "model in another case", body: []byte(`{"model":"gpt-exact","Model":"renamed"}`), want: invalidReq("ambiguous_key")},
		{name: "stream_options twice", body: []byte(`{"model":"gpt-exact","stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":false}}`), want: invalidReq("ambiguous_key")},
		{name: "body 10 MB, over the limit", body: padded(10_000_000), want: tooLarge},
		{name: "body 10 MB chunked, over the limit", body: padded(10_000_000), chunked: true, want: tooLarge},
		{name: "body one byte over the limit", body: padded(badInputLimit + 1), want: tooLarge},
		{name: "body exactly at the limit", body: padded(badInputLimit), want: routedOK()},
		{name: "body just under the limit, chunked", body: padded(badInputLimit - 1), chunked: true, want: routedOK()},
		{name: "nesting 256 levels, the limit", body: nested(256), want: routedOK()},
		{name: "nesting 257 levels", body: nested(257), want: invalidReq("invalid_json")},
		{name: "nesting 10,000 levels deep", body: nested(10_000), want: invalidReq("invalid_json")},
		{name: "top-level array nested 10,000 levels", body: []byte(strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)), want: invalidReq("invalid_json")},
		{name: "unclosed nesting 100,000 levels", body: []byte(`{"model":"gpt-exact","x":` + strings.Repeat("[", 100_000)), want: invalidReq("invalid_json")},
		{name: "10,000 brackets inside a string", body: []byte(`{"model":"gpt-exact","x":"` + strings.Repeat("[{", 5_000) + `"}`), want: routedOK()},
		{name: "invalid UTF-8 in a message", body: []byte("{\"model\":\"gpt-exact\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\xc3\"}]}"), want: invalidReq("invalid_json")},
		{name: "invalid UTF-8 in the model", body: []byte("{\"model\":\"gpt-\xff\xfe\"}"), want: invalidReq("invalid_json")},
		{name: "UTF-8 escaped as \\u sequences", body: []byte(`{"model":"gpt-exact","messages":[{"role":"user","content":"h\u00e9llo \ud83d\ude00"}]}`), want: routedOK()},
		{name: "NUL and control bytes in the model", body: []byte(`{"model":"gpt\u0000exact\n"}`), want: refused(404, "invalid_request_error", "model_not_found")},
		{name: "gzip-encoded body", headers: map[string]string{"content-encoding": "gzip"}, body: gz.Bytes(), want: refused(415, "invalid_request_error", "unsupported_content_encoding")},
		{name: "wrong content-type", contentType: "text/plain", body: good, want: routedOK()},
		{name: "missing content-type", contentType: "-", body: good, want: routedOK()},
		{name: "chunked upload", body: good, chunked: true, want: routedOK()},
		{name: "unknown path", path: "/v1/chat/completion", body: good, want: refused(404, "invalid_request_error", "unknown_endpoint")},
		{name: "unknown path outside /v1", path: "/admin/config_dump", body: good, want: refused(404, "invalid_request_error", "unknown_endpoint")},
		{name: "path traversal", path: "/v1/chat/../../config_dump", body: good, want: refused(404, "invalid_request_error", "unknown_endpoint")},
		{name: "wrong method", method: "PUT", body: good, want: refused(405, "invalid_request_error", "method_not_allowed")},
		{name: "wrong method, GET without body", method: "GET", want: refused(405, "invalid_request_error", "method_not_allowed")},
		{name: "headers over 64 KB", headers: map[string]string{"x-filler": strings.Repeat("h", 70<<10)}, body: good,
			want: refused(431, "invalid_request_error", "headers_too_large")},
		{name: "headers over 64 KB, anthropic", path: "/v1/messages", headers: map[string]string{"x-api-key": clientKeyA, "x-filler": strings.Repeat("h", 70<<10)}, noKey: true,
			body: []byte(`{"model":"claude-x","max_tokens":1}`), openAIShape: true, want: refused(431, "invalid_request_error", "headers_too_large")},
		{name: "client-sent routing header", headers: map[string]string{"x-switchyard-cluster": "nokey"}, body: good, want: routedOK()},
		{name: "client-sent routing header with an unknown model", headers: map[string]string{"x-switchyard-cluster": "alpha"}, body: []byte(`{"model":"nope"}`),
			want: refused(404, "invalid_request_error", "model_not_found")},
		{name: "client key missing", noKey: true, body: good, want: unauth},
		{name: "client key empty bearer", noKey: true, headers: map[string]string{"authorization": "Bearer "}, body: good, want: unauth},
		{name: "client key empty x-api-key", noKey: true, headers: map[string]string{"x-api-key": ""}, body: good, want: unauth},
		{name: "client key wrong", noKey: true, headers: bearer("swy-client-not-a-key"), body: good, want: unauth},
		{name: "client key differs in the first byte", noKey: true, headers: bearer(oneOff(clientKeyA, 0)), body: good, want: unauth},
		{name: "client key differs in the last byte", noKey: true, headers: bearer(oneOff(clientKeyA, len(clientKeyA)-1)), body: good, want: unauth},
		{name: "client key one byte short", noKey: true, headers: bearer(clientKeyA[:len(clientKeyA)-1]), body: good, want: unauth},
		{name: "client key one byte long", noKey: true, headers: bearer(clientKeyA + "f"), body: good, want: unauth},
		{name: "client key in upper case", noKey: true, headers: bearer(strings.ToUpper(clientKeyA)), body: good, want: unauth},
		{name: "provider key as client key", noKey: true, headers: bearer(alphaKey), body: good, want: unauth},
		{name: "client key wrong, anthropic", path: "/v1/messages", noKey: true, headers: map[string]string{"x-api-key": oneOff(clientKeyA, 3)},
			body: []byte(`{"model":"claude-x","max_tokens":1}`), want: refused(401, "authentication_error", "")},
	}
}

// TestBadInput sends each malformed, huge or strange request through the
// real Envoy in both body modes: each gets its exact status and an error in
// the API's own shape, and the gateway serves a good request right after.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"FULL_DUPLEX_STREAMED", "BUFFERED"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			a, b := startUpstream(t, "A"), startUpstream(t, "B")
			config := strings.Replace(standardConfig(a, b, ""), "max_body_bytes: 65536", fmt.Sprintf("max_body_bytes: %d", badInputLimit), 1)
			gw := startGateway(t, config, gatewayOptions{bodyMode: mode, extraEnv: testEnv})
			hc := &http.Client{Timeout: 20 * time.Second}
			for _, tc := range badInputs() {
				t.Run(tc.name, func(t *testing.T) {
					want := tc.want
					if mode == "BUFFERED" && tc.wantBuffered != nil {
						want = *tc.wantBuffered
					}
					start := time.Now()
					r, err := sendBadInput(hc, gw.url, tc)
					if err != nil {
						t.Fatalf("sending: %v", err)
					}
					t.Logf("%s: %d %s (%v)", mode, r.status, tail(string(r.body), 200), time.Since(start).Round(time.Millisecond))
					shapePath := tc.path
					if tc.openAIShape {
						shapePath = "/v1/chat/completions"
					}
					checkOutcome(t, shapePath, r, want)
					// The gateway keeps serving.
					upstreamSaw(t, gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`))
				})
			}
		})
	}
}

func sendBadInput(hc *http.Client, base string, tc badInput) (result, error) {
	method, path := tc.method, tc.path
	if method == "" {
		method = "POST"
	}
	if path == "" {
		path = "/v1/chat/completions"
	}
	var body io.Reader = http.NoBody
	if tc.body != nil {
		body = bytes.NewReader(tc.body)
	}
	if tc.chunked {
		pr, pw := io.Pipe()
		go func() {
			// Two writes, so the body really arrives in pieces.
			half := len(tc.body) / 2
			if _, err := pw.Write(tc.body[:half]); err != nil {
				return
			}
			_, err := pw.Write(tc.body[half:])
			pw.CloseWithError(err)
		}()
		body = pr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return result{}, err
	}
	if tc.chunked {
		req.ContentLength = -1
	}
	switch tc.contentType {
	case "":
		if tc.body != nil {
			req.Header.Set("content-type", "application/json")
		}
	case "-":
	default:
		req.Header.Set("content-type", tc.contentType)
	}
	if !tc.noKey {
		req.Header.Set("authorization", "Bearer "+clientKeyA)
	}
	for k, v := range tc.headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, fmt.Errorf("reading the %d response: %w", resp.StatusCode, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// checkOutcome asserts the status and the exact error shape of r.
func checkOutcome(t *testing.T, path string, r result, want outcome) {
	t.Helper()
	if r.status != want.status {
		t.Fatalf("status %d, want %d: %s", r.status, want.status, tail(string(r.body), 500))
	}
	if want.routed {
		// The fake upstream echoes what it received, the provider key included.
		var rep upstreamReply
		if err := json.Unmarshal(r.body, &rep); err != nil || rep.Seen.Upstream != "A" {
			t.Fatalf("want the request routed to upstream A, got %v: %s", err, tail(string(r.body), 500))
		}
		if bytes.Contains(r.body, []byte(clientKeyA)) {
			t.Errorf("the client key reached the upstream: %s", tail(string(r.body), 500))
		}
		return
	}
	for _, secret := range []string{alphaKey, betaKey, clientKeyA, clientKeyB} {
		if bytes.Contains(r.body, []byte(secret)) {
			t.Errorf("error body leaks a key: %s", tail(string(r.body), 500))
		}
	}
	if ct := r.header.Get("content-type"); ct != "application/json" {
		t.Errorf("content-type %q, want application/json", ct)
	}
	if strings.HasPrefix(path, "/v1/messages") {
		var e anthropicError
		testkit.DecodeStrict(t, r.body, &e)
		if e.Type != "error" || e.Error.Type != want.errType || e.Error.Message == "" {
			t.Errorf("anthropic error %+v, want type error/%s with a message", e, want.errType)
		}
		return
	}
	var e openAIError
	testkit.DecodeStrict(t, r.body, &e)
	if e.Error.Type != want.errType || e.Error.Code != want.code || e.Error.Message == "" {
		t.Errorf("error type %q code %q message %q, want type %q code %q with a message", e.Error.Type, e.Error.Code, e.Error.Message, want.errType, want.code)
	}
	if !json.Valid(r.body) {
		t.Errorf("error body is not valid JSON: %q", r.body)
	}
}

// TestDeepNestingAtTheDefaultLimit: a body of open brackets filling the
// default 10 MiB limit used to overflow extproc's stack in gjson's recursive
// validator and kill the process. It is refused and extproc keeps serving.
func TestDeepNestingAtTheDefaultLimit(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"FULL_DUPLEX_STREAMED", "BUFFERED"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			a, b := startUpstream(t, "A"), startUpstream(t, "B")
			config := strings.Replace(standardConfig(a, b, ""), "max_body_bytes: 65536\n", "", 1) // default limit
			// The answer is what is tested, not how fast 10 MiB is checked:
			// a busy machine can take longer than BUFFERED mode's 2s.
			gw := startGateway(t, config, gatewayOptions{bodyMode: mode, extraEnv: testEnv,
				envoyConfigArgs: []string{"-message-timeout", "20s"}})
			head := `{"model":"gpt-exact","x":`
			hc := &http.Client{Timeout: 30 * time.Second}
			start := time.Now()
			r, err := sendBadInput(hc, gw.url, badInput{body: []byte(head + strings.Repeat("[", 10<<20-len(head)))})
			if err != nil {
				t.Fatal(err)
			}
			checkOutcome(t, "/v1/chat/completions", r, refused(400, "invalid_request_error", "invalid_json"))
			t.Logf("10 MiB of '[': %d after %v", r.status, time.Since(start).Round(time.Millisecond))
			upstreamSaw(t, gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"gpt-exact"}`))
		})
	}
}
