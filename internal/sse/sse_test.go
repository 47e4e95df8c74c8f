package sse

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type got struct {
	Name, Data string
}

func scanAll(chunks ...[]byte) []got {
	var s Scanner
	var out []got
	emit := func(e Event) { out = append(out, got{e.Name, string(e.Data)}) }
	for _, c := range chunks {
		s.Feed(c, emit)
	}
	s.Flush(emit)
	return out
}

func TestScannerEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []got
	}{
		{"openai chunks", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []got{{"", `{"a":1}`}, {"", "[DONE]"}}},
		{"named events", "event: message_start\ndata: {}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n", []got{{"message_start", "{}"}, {"ping", `{"type": "ping"}`}}},
		{"crlf and cr", "data: a\r\n\r\ndata: b\r\rdata:c\n\n", []got{{"", "a"}, {"", "b"}, {"", "c"}}},
		{"multi-line data", "data: a\ndata: b\n\n", []got{{"", "a\nb"}}},
		{"comments and ids", ": keep-alive\nid: 7\nretry: 10\ndata: x\n\n", []got{{"", "x"}}},
		{"no final blank line", "data: last", []got{{"", "last"}}},
		{"blank lines only", "\n\n\r\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, scanAll([]byte(tt.in))); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// Every split of a stream, one or two cuts anywhere (inside "\r\n", inside a
// UTF-8 character), gives the same events as the whole.
func TestScannerAnySplit(t *testing.T) {
	t.Parallel()
	in := []byte("event: content_block_delta\r\ndata: {\"text\":\"héllo 世界\"}\r\n\r\ndata: b\r\rdata: [DONE]\n\n")
	want := scanAll(in)
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			if diff := cmp.Diff(want, scanAll(in[:i], in[i:j], in[j:])); diff != "" {
				t.Fatalf("cut at %d,%d (-want +got):\n%s", i, j, diff)
			}
		}
	}
}

func TestAppendRoundTrips(t *testing.T) {
	t.Parallel()
	var b []byte
	b = Append(b, "message_delta", []byte(`{"x":1}`))
	b = Append(b, "", []byte("two\nlines"))
	if want := "event: message_delta\ndata: {\"x\":1}\n\ndata: two\ndata: lines\n\n"; string(b) != want {
		t.Fatalf("Append = %q, want %q", b, want)
	}
	if diff := cmp.Diff([]got{{"message_delta", `{"x":1}`}, {"", "two\nlines"}}, scanAll(b)); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestScannerDropsOverlongLine(t *testing.T) {
	t.Parallel()
	var s Scanner
	var out []got
	emit := func(e Event) { out = append(out, got{e.Name, string(e.Data)}) }
	s.Feed([]byte("data: "), emit)
	s.Feed(bytes.Repeat([]byte("x"), maxPending), emit)
	s.Feed([]byte("\n\ndata: ok\n\n"), emit)
	if !s.Overflowed {
		t.Error("Overflowed = false after a line past the limit")
	}
	if diff := cmp.Diff([]got{{"", "ok"}}, out); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func FuzzScanner(f *testing.F) {
	f.Add([]byte("event: a\ndata: b\r\n\r\ndata: c"), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		whole := scanAll(in)
		i := int(cut) % (len(in) + 1)
		if diff := cmp.Diff(whole, scanAll(in[:i], in[i:])); diff != "" {
			t.Fatalf("split at %d changes events (-whole +split):\n%s", i, diff)
		}
		var out []byte
		for _, e := range whole {
			out = Append(out, e.Name, []byte(e.Data))
		}
		if diff := cmp.Diff(whole, scanAll(out)); diff != "" {
			t.Fatalf("written events read back differently (-want +got):\n%s", diff)
		}
	})
}
