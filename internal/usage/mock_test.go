package usage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"switchyard/loadtest/mockllm"
)

// The mock provider's answers, every API, streamed and not, tool calls
// included, read in small chunks: Tokens are what the mock reported. The
// mock reports 1+len(body)/4 input tokens.
func TestReaderOnMockAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1, ChunkInterval: -1, StreamChunks: 7}))
	t.Cleanup(srv.Close)
	const tools = `"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"s":{"type":"string"}},"required":["s"]}}}]`
	const atools = `"tools":[{"name":"f","input_schema":{"properties":{"s":{"type":"string"}},"required":["s"]}}]`
	tests := []struct {
		name, path, body string
		stream           bool
		output           int64 // 0: only check that some output was reported
	}{
		{"chat", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, false, 10},
		{"chat stream", "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, true, 7},
		{"chat stream, tool call", "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},` + tools + `,"messages":[{"role":"user","content":"call:f"}]}`, true, 0},
		{"completions stream", "/v1/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, true, 7},
		{"embeddings", "/v1/embeddings", `{"model":"e","input":"x"}`, false, -1},
		{"responses", "/v1/responses", `{"model":"m","input":"hi"}`, false, 10},
		{"responses stream", "/v1/responses", `{"model":"m","input":"hi","stream":true}`, true, 7},
		{"messages", "/v1/messages", `{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`, false, 10},
		{"messages stream", "/v1/messages", `{"model":"c","max_tokens":9,"stream":true,"messages":[]}`, true, 7},
		{"messages stream, tool call", "/v1/messages", `{"model":"c","max_tokens":9,"stream":true,` + atools + `,"messages":[{"role":"user","content":"call:f"}]}`, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := srv.Client().Post(srv.URL+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, %v: %s", resp.StatusCode, err, body)
			}
			if got := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"); got != tt.stream {
				t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			r := NewReader(tt.stream)
			for len(body) > 0 {
				n := min(5, len(body))
				r.Write(body[:n])
				body = body[n:]
			}
			got := r.Close()
			want := Tokens{Input: int64(1 + len(tt.body)/4), Output: tt.output}
			switch tt.output {
			case 0:
				if got.Output <= 0 {
					t.Errorf("no output tokens: %+v", got)
				}
				want.Output = got.Output
			case -1:
				want.Output = 0
			}
			if got != want {
				t.Errorf("Tokens %+v, want %+v", got, want)
			}
		})
	}
}
