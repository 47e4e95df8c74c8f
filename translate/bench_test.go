package translate

import (
	"os"
	"path/filepath"
	"testing"
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
	for _, c := range []struct {
		dir string
		f   func([]byte, string) ([]byte, error)
	}{{"chat_to_messages", ChatToMessages}, {"messages_to_chat", MessagesToChat}} {
		in, err := os.ReadFile(filepath.Join("testdata", c.dir, "tool_results.in.json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.dir, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.f(in, upstreamModel); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
