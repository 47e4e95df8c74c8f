package usage

import (
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"switchyard/loadtest/mockllm"
)

// The mock's answers, every API, streamed and not, read in small chunks:
// the Answer names the model the mock says answered and why it stopped.
func TestAnswerOnMockAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{Latency: -1, ChunkInterval: -1, StreamChunks: 3}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, path, body string
		stream           bool
	}{
		{"chat", "/v1/chat/completions", `{"model":"m1","messages":[{"role":"user","content":"hi"}]}`, false},
		{"chat stream", "/v1/chat/completions", `{"model":"m1","stream":true,"stream_options":{"include_usage":true}}`, true},
		{"responses", "/v1/responses", `{"model":"m1","input":"hi"}`, false},
		{"responses stream", "/v1/responses", `{"model":"m1","input":"hi","stream":true}`, true},
		{"messages", "/v1/messages", `{"model":"m1","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"messages stream", "/v1/messages", `{"model":"m1","max_tokens":9,"stream":true,"messages":[]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := srv.Client().Post(srv.URL+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			r := NewReader(tt.stream)
			a := &Answer{KeepBody: true}
			r.ReadAnswer(a)
			for len(body) > 0 {
				n := min(5, len(body))
				r.Write(body[:n])
				body = body[n:]
			}
			r.Close()
			if a.Model != "m1" || len(a.FinishReasons) == 0 {
				t.Errorf("answer %+v: want model m1 and a finish reason", a)
			}
			if (a.Body != nil) == tt.stream {
				t.Errorf("body kept: %v, want only for a JSON answer", a.Body != nil)
			}
		})
	}
}

// readAnswer reads body in the pieces cuts make, asking for the answer.
func readAnswer(stream bool, body []byte, cuts ...int) (Tokens, Answer) {
	r := NewReader(stream)
	a := Answer{}
	r.ReadAnswer(&a)
	prev := 0
	for _, c := range append(cuts, len(body)) {
		r.Write(body[prev:c])
		prev = c
	}
	return r.Close(), a
}

// FuzzAnswer: where the body is cut changes nothing the Answer says, and
// asking for it changes no token count.
func FuzzAnswer(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.body), c.stream, uint16(len(c.body)/2), uint16(len(c.body)/3))
	}
	f.Fuzz(func(t *testing.T, body []byte, stream bool, cut1, cut2 uint16) {
		i, j := int(cut1)%(len(body)+1), int(cut2)%(len(body)+1)
		if i > j {
			i, j = j, i
		}
		wholeTokens, whole := readAnswer(stream, body)
		tokens, got := readAnswer(stream, body, i, j)
		if !reflect.DeepEqual(got, whole) {
			t.Fatalf("cuts at %d,%d: %+v, whole body: %+v", i, j, got, whole)
		}
		if plain, _ := read(stream, string(body)); tokens != plain || wholeTokens != plain {
			t.Fatalf("tokens %+v with the answer read, %+v without", tokens, plain)
		}
	})
}
