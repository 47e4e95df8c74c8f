package bedrock

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/tidwall/gjson"

	"switchyard/loadtest/agentbody"
)

var testCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "session-token"}

// sigV4 computes a signature by the specification, independently of the
// SDK: the canonical request (path escaped once more), the string to sign
// and the derived key.
func sigV4(t *testing.T, host, path, amzDate string, body []byte, withToken bool) string {
	t.Helper()
	sum := sha256.Sum256(body)
	canonPath := strings.ReplaceAll(path, "%", "%25")
	headers := "host:" + host + "\nx-amz-date:" + amzDate + "\n"
	signed := "host;x-amz-date"
	if withToken {
		headers += "x-amz-security-token:" + testCreds.SessionToken + "\n"
		signed += ";x-amz-security-token"
	}
	canonical := "POST\n" + canonPath + "\n\n" + headers + "\n" + signed + "\n" + hex.EncodeToString(sum[:])
	crSum := sha256.Sum256([]byte(canonical))
	scope := amzDate[:8] + "/us-east-1/bedrock/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+testCreds.SecretAccessKey), amzDate[:8])
	for _, s := range []string{"us-east-1", "bedrock", "aws4_request"} {
		k = mac(k, s)
	}
	return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" + scope + ", SignedHeaders=" + signed + ", Signature=" + hex.EncodeToString(mac(k, toSign))
}

// TestEndpointHost: the Host signed is the one Envoy sends: a host name
// alone (the routes' auto_host_rewrite puts the DNS endpoint's name, which
// has no port), an IP address with its port unless it is the default.
func TestEndpointHost(t *testing.T) {
	for _, c := range []struct {
		host string
		port int
		tls  bool
		want string
	}{
		{"bedrock-runtime.us-east-1.amazonaws.com", 443, true, "bedrock-runtime.us-east-1.amazonaws.com"},
		{"bedrock-proxy.internal", 8443, true, "bedrock-proxy.internal"},
		{"127.0.0.1", 8080, false, "127.0.0.1:8080"},
		{"127.0.0.1", 80, false, "127.0.0.1"},
		{"::1", 9443, true, "[::1]:9443"},
	} {
		if got := NewEndpoint("us-east-1", c.host, c.port, c.tls, nil).Host; got != c.want {
			t.Errorf("NewEndpoint(%s, %d, tls %v).Host = %q, want %q", c.host, c.port, c.tls, got, c.want)
		}
	}
}

func TestSignMatchesTheSpecification(t *testing.T) {
	now := time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC)
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":8,"messages":[]}`)
	for _, c := range []struct {
		name  string
		creds aws.Credentials
		host  string
		port  int
		tls   bool
	}{
		{"session credentials, default port", testCreds, "bedrock-runtime.us-east-1.amazonaws.com", 443, true},
		{"static keys, own port", aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: testCreds.SecretAccessKey}, "127.0.0.1", 8080, false},
		{"a host name, own port", testCreds, "bedrock-proxy.internal", 8443, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := NewEndpoint("us-east-1", c.host, c.port, c.tls, Static(c.creds))
			path := InvokePath("us.anthropic.claude-sonnet-4-5-20250929-v1:0", true)
			if path != "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream" {
				t.Fatalf("path %s", path)
			}
			got, err := e.Sign(path, body, now)
			if err != nil {
				t.Fatal(err)
			}
			h := map[string]string{}
			for _, x := range got {
				h[x.Name] = x.Value
			}
			if h["x-amz-date"] != "20261204T210000Z" {
				t.Errorf("x-amz-date %q", h["x-amz-date"])
			}
			withToken := c.creds.SessionToken != ""
			if (h["x-amz-security-token"] != "") != withToken {
				t.Errorf("x-amz-security-token %q", h["x-amz-security-token"])
			}
			if want := sigV4(t, e.Host, path, "20261204T210000Z", body, withToken); h["authorization"] != want {
				t.Errorf("authorization\n got %s\nwant %s", h["authorization"], want)
			}
		})
	}
}

func TestSignWithoutCredentials(t *testing.T) {
	e := NewEndpoint("us-east-1", "h", 443, true, &Credentials{})
	if _, err := e.Sign("/model/x/invoke", nil, time.Now()); err == nil {
		t.Fatal("signed without credentials")
	}
}

func TestInvokeBody(t *testing.T) {
	in := []byte(`{"model":"claude","stream":true,"max_tokens":5,"system":"s","metadata":{"user_id":"u"},"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}`)
	body, stream, err := InvokeBody(in, []string{"context-management-2025-06-27", "interleaved-thinking-2025-05-14"})
	if err != nil || !stream {
		t.Fatalf("stream %v err %v", stream, err)
	}
	if gjson.GetBytes(body, "model").Exists() || gjson.GetBytes(body, "stream").Exists() {
		t.Errorf("model or stream left in %s", body)
	}
	for _, f := range []string{"max_tokens", "system", "metadata.user_id", "thinking.budget_tokens", "messages.0.content"} {
		if !gjson.GetBytes(body, f).Exists() {
			t.Errorf("%s dropped: %s", f, body)
		}
	}
	if got := gjson.GetBytes(body, "anthropic_beta").String(); got != `["context-management-2025-06-27","interleaved-thinking-2025-05-14"]` {
		t.Errorf("anthropic_beta %s", got)
	}
	if none, _, _ := InvokeBody(in, nil); gjson.GetBytes(none, "anthropic_beta").Exists() {
		t.Errorf("anthropic_beta without a beta: %s", none)
	}
	if gjson.GetBytes(body, "anthropic_version").String() != AnthropicVersion {
		t.Errorf("anthropic_version: %s", body)
	}
	if !bytes.Contains(in, []byte(`"model":"claude"`)) {
		t.Error("the input body changed")
	}
}

// TestInvokeBodyFields checks what InvokeBody keeps, drops and adds on
// bodies of every shape: an agent's conversation (model first, stream
// last), a version the client wrote, a beta list the client wrote, and a
// body that is not an object.
func TestInvokeBodyFields(t *testing.T) {
	agent := agentbody.MustGenerate(agentbody.Spec{API: agentbody.AnthropicMessages, Model: "claude", Size: 64 << 10, Stream: true})
	body, stream, err := InvokeBody(agent, []string{"b"})
	if err != nil || !stream || !gjson.ValidBytes(body) {
		t.Fatalf("stream %v err %v valid %v", stream, err, gjson.ValidBytes(body))
	}
	want := gjson.ParseBytes(agent).Map()
	delete(want, "model")
	delete(want, "stream")
	got := gjson.ParseBytes(body).Map()
	for k, v := range want {
		if got[k].Raw != v.Raw {
			t.Errorf("%s changed", k)
		}
	}
	if len(got) != len(want)+2 || got["anthropic_beta"].Raw != `["b"]` {
		t.Errorf("fields %d, want %d; anthropic_beta %s", len(got), len(want)+2, got["anthropic_beta"].Raw)
	}

	own := []byte(`{ "anthropic_version" : "x", "model":"m","anthropic_beta":["mine"], "stream": false, "max_tokens":5 }`)
	body, stream, err = InvokeBody(own, []string{"b"})
	if err != nil || stream {
		t.Fatalf("stream %v err %v", stream, err)
	}
	if want := `{"anthropic_beta":["mine"],"max_tokens":5,"anthropic_version":"` + AnthropicVersion + `"}`; string(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}

	var refusal *Refusal
	if _, _, err := InvokeBody([]byte(`[1]`), nil); !errors.As(err, &refusal) {
		t.Errorf("an array: %v", err)
	}
}

// frame encodes one event-stream message with the SDK's encoder.
func frame(t testing.TB, headers map[string]string, payload []byte) []byte {
	var m eventstream.Message
	for k, v := range headers {
		m.Headers.Set(k, eventstream.StringValue(v))
	}
	m.Payload = payload
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func chunk(t testing.TB, event string) []byte {
	p, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(event))})
	return frame(t, map[string]string{":event-type": "chunk", ":message-type": "event", ":content-type": "application/json"}, p)
}

var events = []string{
	`{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":7,"output_tokens":1}}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"héllo"}}`,
	`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}`,
	`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":7}}`,
}

func wantSSE() string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("event: " + gjson.Get(e, "type").String() + "\ndata: " + e + "\n\n")
	}
	return b.String()
}

// TestStreamAnyCut: however the frames are cut into chunks, each event
// comes out once its frame is whole, and nothing is left at the end.
func TestStreamAnyCut(t *testing.T) {
	var all []byte
	for _, e := range events {
		all = append(all, chunk(t, e)...)
	}
	for _, size := range []int{1, 3, 7, 64, len(all)} {
		s := NewStream()
		var out []byte
		for i := 0; i < len(all); i += size {
			out = append(out, s.Write(all[i:min(i+size, len(all))])...)
		}
		out = append(out, s.Close()...)
		if string(out) != wantSSE() {
			t.Errorf("chunks of %d:\n%s", size, out)
		}
	}
	// An event is sent as soon as its frame is whole.
	s := NewStream()
	first := chunk(t, events[0])
	if out := s.Write(first[:len(first)-1]); len(out) != 0 {
		t.Errorf("an incomplete frame gave %q", out)
	}
	if out := s.Write(first[len(first)-1:]); !strings.HasPrefix(string(out), "event: message_start\n") {
		t.Errorf("a complete frame gave %q", out)
	}
}

func TestStreamRefusesBadCRC(t *testing.T) {
	f := chunk(t, events[0])
	f[len(f)-6] ^= 0xff // in the payload: the message CRC no longer matches
	out := string(NewStream().Write(f))
	if !strings.HasPrefix(out, "event: error\n") || !strings.Contains(out, "broken event stream") {
		t.Errorf("a corrupted frame gave %q", out)
	}
}

func TestStreamEndsEarly(t *testing.T) {
	s := NewStream()
	s.Write(chunk(t, events[0]))
	if out := string(s.Close()); !strings.Contains(out, `"type":"api_error"`) || !strings.Contains(out, "ended before") {
		t.Errorf("a cut stream closed with %q", out)
	}
}

func TestStreamException(t *testing.T) {
	f := frame(t, map[string]string{":message-type": "exception", ":exception-type": "throttlingException", ":content-type": "application/json"},
		[]byte(`{"message":"Too many requests"}`))
	s := NewStream()
	out := string(append(s.Write(f), s.Close()...))
	want := "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Too many requests\"}}\n\n"
	if out != want {
		t.Errorf("got %q", out)
	}
}

func TestErrorToMessages(t *testing.T) {
	for _, c := range []struct {
		typ        string
		status     int
		body       string
		wantStatus int
		wantType   string
		wantMsg    string
	}{
		{"ThrottlingException", 429, `{"message":"Too many requests"}`, 429, "rate_limit_error", "Too many requests"},
		{"ModelNotReadyException", 429, `{"message":"not ready"}`, 503, "overloaded_error", "not ready"},
		{"ValidationException", 400, `{"message":"bad"}`, 400, "invalid_request_error", "bad"},
		{"AccessDeniedException", 403, `{"message":"no access"}`, 403, "permission_error", "no access"},
		{"AccessDeniedException", 403, `{"message":"User: arn:aws:sts::123456789012:assumed-role/GatewayRole/i-0abc is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-x because no identity-based policy allows the bedrock:InvokeModel action"}`,
			403, "permission_error", "User: (ARN not shown) is not authorized to perform: bedrock:InvokeModel on resource: (ARN not shown) because no identity-based policy allows the bedrock:InvokeModel action"},
		{"ModelTimeoutException", 408, `{"message":"slow"}`, 504, "api_error", "slow"},
		{"InvalidSignatureException", 403, `{"message":"The request signature we calculated does not match.\n\nThe Canonical String for this request should have been\n'POST\nx-amz-security-token:SECRET'"}`,
			502, "api_error", "AWS Bedrock refused the gateway's request (InvalidSignatureException): The request signature we calculated does not match."},
		{"", 500, `not json`, 500, "api_error", "Internal Server Error"},
	} {
		status, body := ErrorToMessages(c.typ, c.status, []byte(c.body))
		if status != c.wantStatus || gjson.GetBytes(body, "type").String() != "error" ||
			gjson.GetBytes(body, "error.type").String() != c.wantType || gjson.GetBytes(body, "error.message").String() != c.wantMsg {
			t.Errorf("%s %d: %d %s", c.typ, c.status, status, body)
		}
	}
	if ErrorType("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/") != "ThrottlingException" {
		t.Error("ErrorType")
	}
}

// scriptedProvider hands out the credentials it is given, one per call.
type scriptedProvider struct{ creds []aws.Credentials }

func (p *scriptedProvider) Retrieve(context.Context) (aws.Credentials, error) {
	c := p.creds[0]
	p.creds = p.creds[1:]
	return c, nil
}

// Expiring credentials are fetched again refreshBefore their expiry, and
// the fresh ones replace them; reading never fetches.
func TestCredentialsRefreshBeforeExpiry(t *testing.T) {
	soon := time.Now().Add(time.Hour)
	p := &scriptedProvider{creds: []aws.Credentials{
		{AccessKeyID: "A1", SecretAccessKey: "s1", SessionToken: "t1", CanExpire: true, Expires: soon},
		{AccessKeyID: "A2", SecretAccessKey: "s2", SessionToken: "t2", CanExpire: true, Expires: soon.Add(time.Hour)},
	}}
	c := &Credentials{provider: p}
	if _, err := c.Get(); err == nil {
		t.Fatal("credentials before any fetch")
	}
	wait := c.fetch()
	if d := time.Until(soon) - refreshBefore - wait; d < -time.Second || d > time.Second {
		t.Errorf("next fetch in %v, want %v before expiry", wait, refreshBefore)
	}
	if got, _ := c.Get(); got.AccessKeyID != "A1" {
		t.Errorf("got %s", got.AccessKeyID)
	}
	c.fetch()
	if got, _ := c.Get(); got.AccessKeyID != "A2" || got.SessionToken != "t2" {
		t.Errorf("after the refresh: %s", got.AccessKeyID)
	}
	// Behind the SDK's cache, whose Expires is its expiry window early, the
	// next fetch comes at that Expires and the credentials stay in use until
	// their real expiry.
	c.grace = refreshBefore
	early := time.Now().Add(time.Minute)
	p.creds = append(p.creds, aws.Credentials{AccessKeyID: "A3", SecretAccessKey: "s3", CanExpire: true, Expires: early})
	if wait := c.fetch(); wait > time.Minute || wait < 55*time.Second {
		t.Errorf("next fetch in %v, want at the cache's Expires", wait)
	}
	c.current.Store(&aws.Credentials{AccessKeyID: "A3", CanExpire: true, Expires: time.Now().Add(-time.Minute)})
	if got, err := c.Get(); err != nil || got.AccessKeyID != "A3" {
		t.Errorf("credentials within the window were refused: %v", err)
	}
	c.grace = 0
	// Expired credentials are never used.
	c.current.Store(&aws.Credentials{AccessKeyID: "old", CanExpire: true, Expires: time.Now().Add(-time.Second)})
	if _, err := c.Get(); err == nil {
		t.Error("expired credentials were handed out")
	}
}

// FuzzStream feeds arbitrary bytes, cut at an arbitrary point, as Bedrock's
// event stream: the converter never panics, never emits after a failure,
// and emits only whole SSE events.
func FuzzStream(f *testing.F) {
	var valid []byte
	for _, e := range events {
		valid = append(valid, chunk(f, e)...)
	}
	f.Add(valid, 7)
	f.Add(valid[:40], 3)
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 1)
	f.Add(converseFrame(f, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"x"}}`), 0)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		s := NewStream()
		if cut%2 == 1 {
			s = NewConverseStream("m") // odd cuts: as ConverseStream's events
		}
		if cut < 0 || cut > len(data) {
			cut = len(data) / 2
		}
		out := append(s.Write(data[:cut]), s.Write(data[cut:])...)
		out = append(out, s.Close()...)
		if len(out) > 0 && (!strings.HasPrefix(string(out), "event: ") || !strings.HasSuffix(string(out), "\n\n")) {
			t.Fatalf("not whole events: %q", out)
		}
		for _, ev := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
			lines := strings.Split(ev, "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "data: ") ||
				!json.Valid([]byte(strings.TrimPrefix(lines[1], "data: "))) {
				t.Fatalf("not an SSE event with JSON data: %q", ev)
			}
		}
	})
}
