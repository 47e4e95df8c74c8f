package processor

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"switchyard/routing"
)

// FuzzExtractModel checks extractModel against encoding/json: it never
// panics; a model it returns is the string encoding/json finds under the
// exact top-level key "model"; and rewriting that body yields valid JSON
// whose only model is the new one.
func FuzzExtractModel(f *testing.F) {
	for _, s := range []string{
		chatBody,
		`{"model":"fast","stream":true}`,
		`{"model":"a","model":"b"}`,
		`{"mod\u0065l":"gpt-4o"}`,
		`{"Model":"gpt-4o"}`,
		`{"x":{"model":"y"},"model":"z"}`,
		`{"model":"caf\u00e9 \"quoted\""}`,
		` {"model" : "gpt-4o" } `,
		`[{"model":"gpt-4o"}]`,
		`{"model":12}`,
		"",
	} {
		f.Add([]byte(s))
	}
	const newModel = `new "model"/é`
	f.Fuzz(func(t *testing.T, body []byte) {
		model, aerr := extractModel(body)
		if aerr != nil {
			if aerr.status != 400 || aerr.kind != routing.KindInvalidRequest || aerr.message == "" {
				t.Fatalf("extractModel(%q) error = %+v, want a 400 invalid request", body, aerr)
			}
			return
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatalf("extractModel(%q) = %q, but encoding/json rejects the body: %v", body, model, err)
		}
		var want string
		if err := json.Unmarshal(top["model"], &want); err != nil {
			t.Fatalf("extractModel(%q) = %q, but encoding/json finds no string model: %v", body, model, err)
		}
		if !utf8.Valid(body) {
			t.Fatalf("extractModel accepted a body that is not valid UTF-8: %q", body)
		}
		if model != want {
			t.Fatalf("extractModel(%q) = %q, encoding/json finds %q", body, model, want)
		}

		out, err := rewriteModel(body, newModel)
		if err != nil {
			t.Fatalf("rewriteModel(%q): %v", body, err)
		}
		if !json.Valid(out) {
			t.Fatalf("rewriteModel(%q) = %q, not valid JSON", body, out)
		}
		var after map[string]json.RawMessage
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("decoding rewritten body %q: %v", out, err)
		}
		var got string
		if err := json.Unmarshal(after["model"], &got); err != nil || got != newModel {
			t.Fatalf("rewritten body %q has model %q (%v), want %q", out, got, err, newModel)
		}
		if len(after) != len(top) {
			t.Fatalf("rewritten body %q has %d keys, the original %q had %d", out, len(after), body, len(top))
		}
		// The gateway's own reading agrees, so no second "model" appeared.
		if m, aerr := extractModel(out); aerr != nil || m != newModel {
			t.Fatalf("extractModel(rewritten %q) = %q, %+v; want %q", out, m, aerr, newModel)
		}
	})
}

// headerCase is the oracle's view of a request's headers: the last value of
// each header the processor reads, as it does.
type headerCase struct {
	path, method, authorization, xAPIKey, apiKey, contentLength, contentEncoding string
}

// expectedStatus is what a full-duplex exchange with a valid body must
// answer for these headers: 0 for routed, else the immediate status.
func (h headerCase) expectedStatus() (status int, anthropic bool) {
	p := h.path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	methods := map[string]string{
		"/v1/chat/completions": "POST", "/v1/completions": "POST", "/v1/embeddings": "POST", "/v1/responses": "POST",
		"/v1/messages": "POST", "/v1/messages/count_tokens": "POST", "/v1/models": "GET",
	}
	anthropic = strings.HasPrefix(p, "/v1/messages")
	m, ok := methods[p]
	if !ok {
		return 404, anthropic
	}
	if h.method != m {
		return 405, anthropic
	}
	key := h.apiKey
	if h.xAPIKey != "" {
		key = h.xAPIKey
	}
	if a := h.authorization; a != "" {
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			a = a[7:]
		}
		key = strings.TrimSpace(a)
	}
	if key != keyTeamA && key != keyTeamB {
		return 401, anthropic
	}
	if p == "/v1/models" {
		return 200, false
	}
	if h.contentEncoding != "" && !strings.EqualFold(h.contentEncoding, "identity") {
		return 415, anthropic
	}
	if n, err := strconv.ParseInt(h.contentLength, 10, 64); err == nil && n > testMaxBody {
		return 413, anthropic
	}
	if anthropic && key == keyTeamA { // team-a may call gpt-4* and fast only
		return 403, anthropic
	}
	return 0, anthropic
}

// FuzzHeaders sends random paths, methods and two random headers (which may
// repeat or override the defaults) through a full-duplex exchange with a
// valid body, and checks the kind of every answer against an oracle.
func FuzzHeaders(f *testing.F) {
	f.Add("/v1/chat/completions", "POST", "x-request-id", "abc", "content-type", "application/json")
	f.Add("/v1/messages?beta=true", "POST", "x-api-key", keyTeamA, "authorization", "")
	f.Add("/v1/models", "GET", "authorization", "bearer  "+keyTeamA+" ", "api-key", "x")
	f.Add("/v1/chat/completions", "POST", "content-length", "1025", "content-encoding", "IDENTITY")
	f.Add("/v1/embeddings", "POST", "content-encoding", "gzip", ":path", "/v1/messages")
	f.Add("/v1/../v1/models", "DELETE", ":method", "GET", "Authorization", "Bearer x")
	f.Add("", "", "", "", "\x00", "\xff")
	srv := newTestServer(f, nil)
	f.Fuzz(func(t *testing.T, path, method, k1, v1, k2, v2 string) {
		kv := []string{":path", path, ":method", method, "authorization", "Bearer " + keyTeamB, k1, v1, k2, v2}
		h := headerCase{}
		for i := 0; i < len(kv); i += 2 {
			v := kv[i+1]
			switch kv[i] {
			case ":path":
				h.path = v
			case ":method":
				h.method = v
			case "authorization":
				h.authorization = v
			case "x-api-key":
				h.xAPIKey = v
			case "api-key":
				h.apiKey = v
			case "content-length":
				h.contentLength = v
			case "content-encoding":
				h.contentEncoding = v
			}
		}
		wantStatus, anthropic := h.expectedStatus()
		body := `{"model":"gpt-4o"}`
		if anthropic {
			body = `{"model":"claude-haiku"}`
		}
		st := newFakeStream(t.Context(), headersMsg(fullDuplex, false, kv...), bodyMsg(body[:5], false), bodyMsg(body[5:], true))
		if err := srv.Process(st); err != nil {
			t.Fatalf("Process: %v", err)
		}
		got := st.sent
		if wantStatus == 0 {
			if len(got) != 2 || got[0].GetRequestHeaders() == nil || got[1].GetRequestBody() == nil {
				t.Fatalf("headers %q: got %v, want a headers and a body answer", kv, got)
			}
			hm := got[0].GetRequestHeaders().GetResponse().GetHeaderMutation()
			if !got[0].GetRequestHeaders().GetResponse().GetClearRouteCache() || len(hm.GetSetHeaders()) == 0 ||
				hm.GetSetHeaders()[0].GetHeader().GetKey() != routing.ClusterHeader {
				t.Fatalf("headers %q: headers answer %v lacks the routing header or the route cache clear", kv, got[0])
			}
			if sb := got[1].GetRequestBody().GetResponse().GetBodyMutation().GetStreamedResponse(); string(sb.GetBody()) != body || !sb.GetEndOfStream() {
				t.Fatalf("headers %q: streamed body %v, want %q ending the stream", kv, sb, body)
			}
			return
		}
		if len(got) != 1 || got[0].GetImmediateResponse() == nil {
			t.Fatalf("headers %q: got %v, want one immediate %d", kv, got, wantStatus)
		}
		imm := got[0].GetImmediateResponse()
		if int(imm.GetStatus().GetCode()) != wantStatus {
			t.Fatalf("headers %q: status %d, want %d (body %s)", kv, imm.GetStatus().GetCode(), wantStatus, imm.GetBody())
		}
		var shape map[string]json.RawMessage
		if err := json.Unmarshal(imm.GetBody(), &shape); err != nil {
			t.Fatalf("headers %q: body %q is not JSON: %v", kv, imm.GetBody(), err)
		}
		if _, isAnthropic := shape["type"]; wantStatus != 200 && isAnthropic != anthropic {
			t.Fatalf("headers %q: error body %s, anthropic shape %v", kv, imm.GetBody(), anthropic)
		}
		for _, s := range []string{secretOpenAI, secretAnthropic, secretAzure} {
			if strings.Contains(string(imm.GetBody()), s) {
				t.Fatalf("headers %q: body %s leaks a secret", kv, imm.GetBody())
			}
		}
	})
}
