package translate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchyard/loadtest/agentbody"
)

// The stream translators run once per upstream chunk on the response path.
// Each golden stream is fed in 64-byte chunks, as a slow upstream sends it.
func BenchmarkStreams(b *testing.B) {
	for _, k := range streamKinds {
		in, err := os.ReadFile(filepath.Join("testdata", k.dir, "tool_calls_parallel.in.sse"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(k.dir, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				s := k.new()
				for rest := in; len(rest) > 0; {
					n := min(64, len(rest))
					s.Write(rest[:n])
					rest = rest[n:]
				}
				s.Close()
			}
		})
	}
}

func BenchmarkRequests(b *testing.B) {
	small := func(dir string) []byte {
		in, err := os.ReadFile(filepath.Join("testdata", dir, "tool_results.in.json"))
		if err != nil {
			b.Fatal(err)
		}
		return in
	}
	agent := func(api agentbody.API) []byte {
		return agentbody.MustGenerate(agentbody.Spec{API: api, Model: "m", Size: 256 << 10})
	}
	for _, c := range []struct {
		name string
		in   []byte
		f    func([]byte, string) ([]byte, error)
	}{
		{"chat_to_messages/small", small("chat_to_messages"), ChatToMessages},
		{"messages_to_chat/small", small("messages_to_chat"), MessagesToChat},
		// An agent's conversation, with its tool calls and results.
		{"chat_to_messages/256KiB", agent(agentbody.OpenAIChat), ChatToMessages},
		{"messages_to_chat/256KiB", agent(agentbody.AnthropicMessages), MessagesToChat},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if _, err := c.f(c.in, upstreamModel); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGemini is the Gemini translation's CPU per request: the request
// (chat and Messages, a small body and a 256 KiB one), the JSON answer and a
// streamed answer fed in 64-byte chunks, for each client API.
func BenchmarkGemini(b *testing.B) {
	small, err := os.ReadFile(filepath.Join("testdata", "chat_to_gemini", "tool_loop.in.json"))
	if err != nil {
		b.Fatal(err)
	}
	msgs, err := os.ReadFile(filepath.Join("testdata", "messages_to_gemini", "claude_code.in.json"))
	if err != nil {
		b.Fatal(err)
	}
	answer, err := os.ReadFile(filepath.Join("testdata", "gemini_response_to_chat", "function_calls.in.json"))
	if err != nil {
		b.Fatal(err)
	}
	stream, err := os.ReadFile(filepath.Join("testdata", "gemini_stream_to_chat", "tool_calls_parallel.in.sse"))
	if err != nil {
		b.Fatal(err)
	}
	requests := []struct {
		name string
		body []byte
		f    func([]byte) ([]byte, error)
	}{
		{"chat_request/small", small, ChatToGemini},
		{"chat_request/256KiB", bigChat(256 << 10), ChatToGemini},
		{"messages_request/small", msgs, MessagesToGemini},
		// The baseline: the same 256 KiB body translated for Anthropic.
		{"chat_to_messages/256KiB", bigChat(256 << 10), func(in []byte) ([]byte, error) { return ChatToMessages(in, upstreamModel) }},
	}
	for _, r := range requests {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(r.body)))
			for b.Loop() {
				if _, err := r.f(r.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("chat_answer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := GeminiResponseToChat(answer, clientModel); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("messages_answer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := GeminiResponseToMessages(answer, clientModel); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, f := range map[string]func(string) Stream{"chat_stream": NewGeminiToChatStream, "messages_stream": NewGeminiToMessagesStream} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			for b.Loop() {
				s := f(clientModel)
				for rest := stream; len(rest) > 0; {
					n := min(64, len(rest))
					s.Write(rest[:n])
					rest = rest[n:]
				}
				s.Close()
			}
		})
	}
}

// bigChat is a chat request of about n bytes: a conversation of 1 KiB turns.
func bigChat(n int) []byte {
	turn := strings.Repeat("lorem ipsum ", 85)
	var b strings.Builder
	b.WriteString(`{"model":"g","max_tokens":100,"messages":[{"role":"system","content":"Be brief."}`)
	for i := 0; b.Len() < n; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		fmt.Fprintf(&b, `,{"role":%q,"content":%q}`, role, turn)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}
