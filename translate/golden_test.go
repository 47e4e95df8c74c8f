package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the .want files under testdata from the translator's output")

// testEnv fixes the clock and the ids made when the upstream sent none.
var testEnv = env{
	now:    func() int64 { return 1700000000 },
	random: func() string { return "GENERATED" },
}

const (
	upstreamModel = "upstream-model"
	clientModel   = "client-model"
)

// golden is one direction: a folder of testdata/<dir>/<case>.in.<ext> files
// and the translation each must give, in <case>.want.<ext>.
type golden struct {
	dir, ext  string
	translate func(in []byte) ([]byte, error)
}

// refusal is what a .want.json holds when the translator returns an error.
type refusal struct {
	Refused struct {
		Status  int    `json:"status,omitempty"`
		Message string `json:"message"`
	} `json:"refused"`
}

func refusalJSON(err error) []byte {
	var r refusal
	r.Refused.Message = err.Error()
	if e, ok := errors.AsType[*Error](err); ok {
		r.Refused.Status, r.Refused.Message = e.Status, e.Message
	}
	return mustMarshal(r)
}

// errorCase is an error_to_* input and output: an HTTP status and a body.
type errorCase struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

func errorDirection(f func(int, []byte) (int, []byte)) func([]byte) ([]byte, error) {
	return func(in []byte) ([]byte, error) {
		var c errorCase
		if err := json.Unmarshal(in, &c); err != nil {
			return nil, err
		}
		body := []byte(c.Body)
		var s string
		if json.Unmarshal(c.Body, &s) == nil { // a body that is not JSON, written as a string
			body = []byte(s)
		}
		status, out := f(c.Status, body)
		return mustMarshal(errorCase{Status: status, Body: out}), nil
	}
}

func streamDirection(newStream func() Stream) func([]byte) ([]byte, error) {
	return func(in []byte) ([]byte, error) { return runStream(newStream(), in), nil }
}

func runStream(s Stream, chunks ...[]byte) []byte {
	var out []byte
	for _, c := range chunks {
		out = append(out, s.Write(c)...)
	}
	return append(out, s.Close()...)
}

var goldens = []golden{
	{"chat_to_messages", "json", func(in []byte) ([]byte, error) { return ChatToMessages(in, upstreamModel) }},
	{"messages_to_chat", "json", func(in []byte) ([]byte, error) { return MessagesToChat(in, upstreamModel) }},
	{"messages_response_to_chat", "json", func(in []byte) ([]byte, error) { return messagesResponseToChat(testEnv, in, clientModel) }},
	{"chat_response_to_messages", "json", func(in []byte) ([]byte, error) { return chatResponseToMessages(testEnv, in, clientModel) }},
	{"error_to_chat", "json", errorDirection(ErrorToChat)},
	{"error_to_messages", "json", errorDirection(ErrorToMessages)},
	{"messages_stream_to_chat", "sse", streamDirection(func() Stream { return newMessagesToChatStream(testEnv, clientModel) })},
	{"chat_stream_to_messages", "sse", streamDirection(func() Stream { return newChatToMessagesStream(testEnv, clientModel) })},
	{"chat_to_gemini", "json", ChatToGemini},
	{"messages_to_gemini", "json", MessagesToGemini},
	{"gemini_response_to_chat", "json", func(in []byte) ([]byte, error) { return geminiResponseToChat(testEnv, in, clientModel) }},
	{"gemini_response_to_messages", "json", func(in []byte) ([]byte, error) { return geminiResponseToMessages(testEnv, in, clientModel) }},
	{"gemini_error_to_chat", "json", errorDirection(GeminiErrorToChat)},
	{"gemini_error_to_messages", "json", errorDirection(GeminiErrorToMessages)},
	{"gemini_stream_to_chat", "sse", streamDirection(func() Stream { return newGeminiToChatStream(testEnv, clientModel) })},
	{"gemini_stream_to_messages", "sse", streamDirection(func() Stream { return newGeminiToMessagesStream(testEnv, clientModel) })},
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, g := range goldens {
		ins, err := filepath.Glob(filepath.Join("testdata", g.dir, "*.in."+g.ext))
		if err != nil || len(ins) == 0 {
			t.Fatalf("no golden inputs in testdata/%s (%v)", g.dir, err)
		}
		for _, inPath := range ins {
			name := strings.TrimSuffix(filepath.Base(inPath), ".in."+g.ext)
			t.Run(g.dir+"/"+name, func(t *testing.T) {
				t.Parallel()
				in, err := os.ReadFile(inPath)
				if err != nil {
					t.Fatal(err)
				}
				got, err := g.translate(in)
				if err != nil {
					got = refusalJSON(err)
				}
				if g.ext == "json" {
					got = indentJSON(t, got)
				}
				wantPath := strings.TrimSuffix(inPath, ".in."+g.ext) + ".want." + g.ext
				if *update {
					if err := os.WriteFile(wantPath, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(wantPath)
				if err != nil {
					t.Fatalf("%v (run go test ./translate -run TestGolden -update to write it)", err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", wantPath, diff)
				}
			})
		}
	}
}

func indentJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b)
	}
	out.WriteByte('\n')
	return out.Bytes()
}
