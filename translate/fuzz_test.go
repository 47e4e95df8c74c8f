package translate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tidwall/gjson"
)

func addSeeds(f *testing.F, pattern string, extra ...any) {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds match testdata/%s (%v)", pattern, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]any{b}, extra...)...)
	}
}

func fuzzStream(f *testing.F, k streamKind) {
	addSeeds(f, k.dir+"/*.in.sse", uint16(17))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := runStream(k.new(), in)
		if err := k.check(whole); err != nil {
			t.Fatalf("%v\n%s", err, whole)
		}
		i := int(cut) % (len(in) + 1)
		if split := runStream(k.new(), in[:i], in[i:]); !bytes.Equal(split, whole) {
			t.Fatalf("cut at %d gives other output:\nwhole: %q\nsplit: %q", i, whole, split)
		}
	})
}

func FuzzMessagesToChatStream(f *testing.F)   { fuzzStream(f, streamKinds[0]) }
func FuzzChatToMessagesStream(f *testing.F)   { fuzzStream(f, streamKinds[1]) }
func FuzzGeminiToChatStream(f *testing.F)     { fuzzStream(f, streamKinds[2]) }
func FuzzGeminiToMessagesStream(f *testing.F) { fuzzStream(f, streamKinds[3]) }

// fuzzGeminiRequest: any body gives a JSON object or a 400 *Error.
func fuzzGeminiRequest(f *testing.F, pattern string, there func([]byte) ([]byte, error)) {
	fuzzRequest(f, pattern, func(b []byte, _ string) ([]byte, error) { return there(b) },
		func([]byte, string) ([]byte, error) { return nil, nil })
}

func FuzzChatToGemini(f *testing.F) { fuzzGeminiRequest(f, "chat_to_gemini/*.in.json", ChatToGemini) }
func FuzzMessagesToGemini(f *testing.F) {
	fuzzGeminiRequest(f, "messages_to_gemini/*.in.json", MessagesToGemini)
}

// fuzzRequest: any JSON body gives valid JSON or a 400 *Error, never a
// panic; a translated request translates back without a panic either.
// Bodies that are not JSON never reach a translator (package doc).
func fuzzRequest(f *testing.F, pattern string, there, back func([]byte, string) ([]byte, error)) {
	addSeeds(f, pattern)
	f.Fuzz(func(t *testing.T, body []byte) {
		if !gjson.ValidBytes(body) {
			return // the caller's to refuse (package doc)
		}
		out, err := there(body, upstreamModel)
		if err != nil {
			if e, ok := errors.AsType[*Error](err); !ok || e.Status != 400 || e.Message == "" {
				t.Fatalf("error %v is not a 400 *Error with a message", err)
			}
			return
		}
		if !gjson.ValidBytes(out) || !gjson.ParseBytes(out).IsObject() {
			t.Fatalf("output is not a JSON object: %q", out)
		}
		_, _ = back(out, upstreamModel)
	})
}

func FuzzChatToMessages(f *testing.F) {
	fuzzRequest(f, "chat_to_messages/*.in.json", ChatToMessages, MessagesToChat)
}

func FuzzMessagesToChat(f *testing.F) {
	fuzzRequest(f, "messages_to_chat/*.in.json", MessagesToChat, ChatToMessages)
}

// FuzzResponses: any 2xx or error body translates to valid JSON or an
// error, never a panic.
func FuzzResponses(f *testing.F) {
	addSeeds(f, "*_response_to_*/*.in.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, tr := range []func([]byte, string) ([]byte, error){MessagesResponseToChat, ChatResponseToMessages, GeminiResponseToChat, GeminiResponseToMessages} {
			if out, err := tr(body, clientModel); err == nil && !gjson.ValidBytes(out) {
				t.Fatalf("output is not JSON: %q", out)
			}
		}
		for _, tr := range []func(int, []byte) (int, []byte){ErrorToChat, ErrorToMessages, GeminiErrorToChat, GeminiErrorToMessages} {
			if _, out := tr(500, body); !gjson.ValidBytes(out) {
				t.Fatalf("error body is not JSON: %q", out)
			}
		}
	})
}
