package processor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"

	"switchyard/bedrock"
	"switchyard/config"
	"switchyard/routing"
)

const bedrockTestSecret = "processor-bedrock-secret"

func bedrockRouter(t *testing.T) *routing.Router {
	t.Helper()
	bedrock.Preset("us-west-2", "processor-test", bedrock.Static(aws.Credentials{
		AccessKeyID: "AKIDPROCESSORTEST", SecretAccessKey: bedrockTestSecret, SessionToken: "processor-session-token"}))
	return compileRouter(t, `providers:
  - name: bedrock
    schema: bedrock
    url: http://127.0.0.1:9099
    auth: {type: aws_sigv4, region: us-west-2, profile: processor-test}
routes:
  - model: claude-b
    provider: bedrock
    rewrite_model: anthropic.claude-haiku-4-5-20251001-v1:0
`)
}

func header(a Attempt, name string) string {
	for _, h := range a.SetHeaders {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// A Messages request to Bedrock becomes a signed InvokeModel call of the
// route's model, streamed or not, and its answer passes a translate
// cluster; a chat completions request is translated first.
func TestPlanBedrock(t *testing.T) {
	t.Parallel()
	r := bedrockRouter(t)
	for _, c := range []struct {
		name, path, body, wantPath string
		translate                  bool
	}{
		{"messages stream", "/v1/messages?beta=true", `{"model":"claude-b","max_tokens":9,"stream":true,"context_management":{"edits":[]},"messages":[{"role":"user","content":"hi"}]}`,
			"/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream", false},
		{"messages", "/v1/messages", `{"model":"claude-b","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`,
			"/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke", false},
		{"chat stream", "/v1/chat/completions", `{"model":"claude-b","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			"/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := DryRun(context.Background(), r, nil, Request{Method: "POST", Path: c.path, Body: []byte(c.body),
				Headers: map[string]string{"anthropic-beta": "claude-code-20250219,context-management-2025-06-27"}}, "")
			if err != nil {
				t.Fatal(err)
			}
			a := p.Attempts[0]
			if a.Path != c.wantPath || !a.Bedrock || !a.BodyChanged || a.Credential != "authorization" {
				t.Errorf("attempt %s bedrock %v changed %v credential %q", a.Path, a.Bedrock, a.BodyChanged, a.Credential)
			}
			if gjson.GetBytes(a.Body, "model").Exists() || gjson.GetBytes(a.Body, "stream").Exists() ||
				gjson.GetBytes(a.Body, "anthropic_version").String() != bedrock.AnthropicVersion || !gjson.GetBytes(a.Body, "max_tokens").Exists() {
				t.Errorf("body %s", a.Body)
			}
			if got := gjson.GetBytes(a.Body, "anthropic_beta").Raw; got != `["context-management-2025-06-27"]` {
				t.Errorf("anthropic_beta %s, want the beta Bedrock takes and not claude-code's: %s", got, a.Body)
			}
			if c.name == "messages stream" && !gjson.GetBytes(a.Body, "context_management").Exists() {
				t.Errorf("a field Bedrock takes was dropped: %s", a.Body)
			}
			if header(a, ":authority") != "127.0.0.1:9099" || header(a, "x-amz-date") == "" ||
				header(a, "x-amz-security-token") != "processor-session-token" ||
				!strings.HasPrefix(header(a, "authorization"), "AWS4-HMAC-SHA256 Credential=AKIDPROCESSORTEST/") {
				t.Errorf("headers %v", a.SetHeaders)
			}
			if a.SetHeaders[0].Value != routing.TranslateClusterPrefix+"bedrock" || !p.Response.Bedrock || p.Response.Translate != c.translate {
				t.Errorf("cluster %s, response %+v", a.SetHeaders[0].Value, p.Response)
			}
			for _, h := range []string{"anthropic-beta", "anthropic-version", "x-api-key"} {
				if !slices.Contains(a.RemoveHeaders, h) {
					t.Errorf("%s is not removed: %v", h, a.RemoveHeaders)
				}
			}
			if slices.Contains(a.RemoveHeaders, "authorization") {
				t.Errorf("the signature's header is removed: %v", a.RemoveHeaders)
			}
		})
	}
	p, err := DryRun(context.Background(), r, nil, Request{Method: "POST", Path: "/v1/messages/count_tokens",
		Body: []byte(`{"model":"claude-b","messages":[{"role":"user","content":"hi"}]}`)}, "")
	if err != nil || p.Answer == nil {
		t.Errorf("count_tokens for Bedrock: %v %s", err, p.Answer)
	}
}

// A count_tokens call on a chain that could fall back to Bedrock or to
// Claude on Vertex is estimated at once: neither counts tokens under the
// model, and a Bedrock attempt would run the conversation, and bill it.
func TestCountTokensWithCloudFallback(t *testing.T) {
	t.Parallel()
	bedrockRouter(t) // its credentials
	r := compileRouter(t, `providers:
  - {name: anthropic, url: "https://api.anthropic.com", schema: anthropic}
  - name: bedrock
    schema: bedrock
    url: http://127.0.0.1:9099
    auth: {type: aws_sigv4, region: us-west-2, profile: processor-test}
routes:
  - model: chain
    targets: [{provider: anthropic, model: claude-sonnet-4-5}]
    fallbacks: [{provider: bedrock, model: "anthropic.claude-opus-4-1-20250805-v1:0"}]
  - model: native
    targets: [{provider: anthropic, model: claude-sonnet-4-5}]
    fallbacks: [{provider: anthropic, model: claude-haiku-4-5}]
`)
	for model, estimated := range map[string]bool{"chain": true, "native": false} {
		p, err := DryRun(context.Background(), r, nil, Request{Method: "POST", Path: countTokensPath,
			Body: []byte(`{"model":"` + model + `","max_tokens":4096,"messages":[{"role":"user","content":"count me"}]}`)}, "")
		if err != nil || (p.Answer != nil) != estimated {
			t.Errorf("count_tokens on %s: %v, answer %s; want an estimate: %v", model, err, p.Answer, estimated)
		}
	}
}

// Without credentials a Bedrock request fails with 503, naming no secret.
func TestPlanBedrockWithoutCredentials(t *testing.T) {
	t.Parallel()
	bedrock.Preset("ap-south-1", "", &bedrock.Credentials{})
	r := compileRouter(t, "providers:\n  - {name: b, schema: bedrock, auth: {type: aws_sigv4, region: ap-south-1}}\n")
	_, err := DryRun(context.Background(), r, nil, Request{Method: "POST", Path: "/v1/messages",
		Body: []byte(`{"model":"b/anthropic.claude-x","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`)}, "")
	var e *apiError
	if err == nil || !errorAs(err, &e) || e.status != 503 || !strings.Contains(e.message, "no AWS credentials") {
		t.Fatalf("got %v", err)
	}
}

func bedrockAnswerHeaders(kv ...string) *extprocv3.HttpHeaders {
	return headersMsg(buffered, false, kv...).GetRequestHeaders()
}

// A Bedrock model of another maker is reached through Converse; what
// Converse cannot carry is refused with a clear 400.
func TestPlanBedrockOtherMaker(t *testing.T) {
	t.Parallel()
	r := bedrockRouter(t)
	p, err := DryRun(context.Background(), r, nil, Request{Method: "POST", Path: "/v1/chat/completions",
		Body: []byte(`{"model":"bedrock/amazon.nova-pro-v1:0","stream":true,"max_tokens":7,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`)}, "")
	if err != nil {
		t.Fatal(err)
	}
	a := p.Attempts[0]
	if a.Path != "/model/amazon.nova-pro-v1%3A0/converse-stream" || !a.Converse || !a.Bedrock ||
		gjson.GetBytes(a.Body, "inferenceConfig.maxTokens").Int() != 7 || gjson.GetBytes(a.Body, "system.0.text").String() != "be brief" ||
		gjson.GetBytes(a.Body, "messages.0.content.0.text").String() != "hi" || !strings.HasPrefix(header(a, "authorization"), "AWS4-HMAC-SHA256") {
		t.Errorf("attempt %s converse %v body %s", a.Path, a.Converse, a.Body)
	}
	_, err = DryRun(context.Background(), r, nil, Request{Method: "POST", Path: "/v1/messages",
		Body: []byte(`{"model":"bedrock/amazon.nova-pro-v1:0","max_tokens":9,"top_k":5,"messages":[{"role":"user","content":"hi"}]}`)}, "")
	var e *apiError
	if err == nil || !errorAs(err, &e) || e.status != 400 || !strings.Contains(e.message, "top_k is not supported") {
		t.Fatalf("top_k on Converse: %v", err)
	}
}

func errorAs(err error, e **apiError) bool {
	a, ok := err.(*apiError)
	*e = a
	return ok
}

func bedrockFrame(t *testing.T, event string) []byte {
	p, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(event))})
	var m eventstream.Message
	m.Headers.Set(":event-type", eventstream.StringValue("chunk"))
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Payload = p
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A Bedrock stream reaches an OpenAI client as chat chunks, chunk by
// chunk, and its tokens are counted from the Messages events, a 1-hour
// cache write included.
func TestRewriteBedrockStream(t *testing.T) {
	t.Parallel()
	r := responseStream{job: &responseJob{clientAPI: config.APIOpenAI, upstream: config.APIAnthropic, model: "claude-b", bedrock: true}}
	r.onHeaders(bedrockAnswerHeaders(":status", "200", "content-type", bedrock.StreamContentType))
	var out []byte
	for _, e := range []string{
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":11,` +
			`"cache_creation_input_tokens":50,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":30},"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}`,
		`{"type":"message_stop"}`,
	} {
		chunk := r.rewrite.write(bedrockFrame(t, e), false)
		if r.tokens != nil {
			r.tokens.Write(r.rewrite.events.last)
		}
		out = append(out, chunk...)
	}
	out = append(out, r.rewrite.write(nil, true)...)
	s := string(out)
	if !strings.Contains(s, `"object":"chat.completion.chunk"`) || !strings.Contains(s, `"content":"Hi"`) || !strings.HasSuffix(s, "data: [DONE]\n\n") {
		t.Errorf("client got:\n%s", s)
	}
	if tok := r.tokens.Close(); tok.Input != 11 || tok.Output != 4 || tok.CacheCreation != 50 || tok.CacheCreation1h != 30 {
		t.Errorf("tokens %+v", tok)
	}
}

// Bedrock's errors reach each client in its API's shape and status.
func TestRewriteBedrockError(t *testing.T) {
	t.Parallel()
	for _, api := range []config.API{config.APIOpenAI, config.APIAnthropic} {
		r := responseStream{job: &responseJob{clientAPI: api, upstream: config.APIAnthropic, bedrock: true}}
		r.onHeaders(bedrockAnswerHeaders(":status", "429", "content-type", "application/json", "x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/"))
		body := r.rewrite.write([]byte(`{"message":"Too many requests, please wait before trying again."}`), true)
		typ := gjson.GetBytes(body, "error.type").String()
		if r.rewrite.status != 429 || typ != "rate_limit_error" && typ != "rate_limit_exceeded" && gjson.GetBytes(body, "error.code").String() != "rate_limit_error" {
			t.Errorf("%s: %d %s", api, r.rewrite.status, body)
		}
		if api == config.APIAnthropic && gjson.GetBytes(body, "type").String() != "error" {
			t.Errorf("anthropic shape: %s", body)
		}
	}
}

// A whole Converse answer's tokens are counted: its usage is camel-cased
// (inputTokens), which the usage reader finds in the client's translated
// answer, not in Bedrock's.
func TestConverseAnswerCounted(t *testing.T) {
	t.Parallel()
	s := New(Options{Router: func() *routing.Router { return nil }, Metrics: NewMetrics(prometheus.NewRegistry())})
	answer := `{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},"stopReason":"end_turn",` +
		`"usage":{"inputTokens":5,"outputTokens":7,"totalTokens":12},"metrics":{"latencyMs":10}}`
	for _, api := range []config.API{config.APIOpenAI, config.APIAnthropic} {
		r := responseStream{srv: s, job: &responseJob{clientAPI: api, upstream: config.APIAnthropic, model: "nova", bedrock: true, converse: true}}
		r.onHeaders(bedrockAnswerHeaders(":status", "200", "content-type", "application/json"))
		out := r.onBody(t.Context(), []byte(answer), true)
		if r.rewrite.status != 200 || !strings.Contains(string(out), "Hi") {
			t.Fatalf("%s: %d %s", api, r.rewrite.status, out)
		}
		if tok := r.log.Tokens; tok == nil || tok.Input != 5 || tok.Output != 7 {
			t.Errorf("%s: tokens %+v, want 5 in and 7 out", api, tok)
		}
	}
}
