package translate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"

	"switchyard/internal/sse"
)

// streamKind is one stream direction: how to make a translator and how to
// check that its output is a well-formed stream of the client's API.
type streamKind struct {
	dir   string
	new   func() Stream
	check func(out []byte) error
}

var streamKinds = []streamKind{
	{"messages_stream_to_chat", func() Stream { return newMessagesToChatStream(testEnv, clientModel) }, checkChatStream},
	{"chat_stream_to_messages", func() Stream { return newChatToMessagesStream(testEnv, clientModel) }, checkMessagesStream},
	{"gemini_stream_to_chat", func() Stream { return newGeminiToChatStream(testEnv, clientModel) }, checkChatStream},
	{"gemini_stream_to_messages", func() Stream { return newGeminiToMessagesStream(testEnv, clientModel) }, checkMessagesStream},
}

func events(out []byte) []sse.Event {
	var s sse.Scanner
	var evs []sse.Event
	emit := func(e sse.Event) { evs = append(evs, sse.Event{Name: e.Name, Data: bytes.Clone(e.Data)}) }
	s.Feed(out, emit)
	s.Flush(emit)
	return evs
}

// checkChatStream: every event's data is a JSON object but the last, which
// is the only "[DONE]".
func checkChatStream(out []byte) error {
	evs := events(out)
	if len(evs) == 0 || string(evs[len(evs)-1].Data) != "[DONE]" {
		return errors.New(`the stream does not end with "data: [DONE]"`)
	}
	for i, e := range evs[:len(evs)-1] {
		if e.Name != "" {
			return fmt.Errorf("event %d has a name, %q", i, e.Name)
		}
		if !gjson.ValidBytes(e.Data) || !gjson.ParseBytes(e.Data).IsObject() {
			return fmt.Errorf("event %d is not a JSON object: %q", i, e.Data)
		}
	}
	return nil
}

// checkMessagesStream checks Anthropic's event grammar: message_start first;
// content blocks opened one at a time with indices 0, 1, 2, ..., each
// delta and stop naming the open block; then message_delta and
// message_stop last — or an error event last, with no block left open.
func checkMessagesStream(out []byte) error {
	evs := events(out)
	if len(evs) == 0 {
		return errors.New("no events")
	}
	open, next := -1, 0
	for i, e := range evs {
		d := gjson.ParseBytes(e.Data)
		if !gjson.ValidBytes(e.Data) || !d.IsObject() {
			return fmt.Errorf("event %d is not a JSON object: %q", i, e.Data)
		}
		if typ := d.Get("type").String(); typ != e.Name {
			return fmt.Errorf("event %d is named %q but its type is %q", i, e.Name, typ)
		}
		last := i == len(evs)-1
		idx := int(d.Get("index").Int())
		switch {
		case (i == 0) != (e.Name == "message_start") && !(e.Name == "error" && last):
			return fmt.Errorf("event %d is %s; message_start must come first, once", i, e.Name)
		case e.Name == "content_block_start":
			if open >= 0 || idx != next {
				return fmt.Errorf("event %d starts block %d while block %d is open and %d is next", i, idx, open, next)
			}
			open = idx
		case e.Name == "content_block_delta" || e.Name == "content_block_stop":
			if open < 0 || idx != open {
				return fmt.Errorf("event %d: %s for block %d, but the open block is %d", i, e.Name, idx, open)
			}
			if e.Name == "content_block_stop" {
				open, next = -1, next+1
			}
		case e.Name == "message_delta":
			if open >= 0 || i != len(evs)-2 || evs[i+1].Name != "message_stop" {
				return fmt.Errorf("event %d: message_delta must follow the last block and precede message_stop", i)
			}
		case e.Name == "message_stop" || e.Name == "error":
			if !last || open >= 0 {
				return fmt.Errorf("event %d: %s must be last, with no block open", i, e.Name)
			}
		case e.Name != "message_start":
			return fmt.Errorf("event %d has an unknown type %q", i, e.Name)
		}
	}
	if end := evs[len(evs)-1].Name; end != "message_stop" && end != "error" {
		return fmt.Errorf("the stream ends with %s, not message_stop or error", end)
	}
	return nil
}

func streamInputs(t testing.TB, dir string) map[string][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.in.sse"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no stream inputs in testdata/%s (%v)", dir, err)
	}
	ins := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ins[filepath.Base(p)] = b
	}
	return ins
}

// Every split of an upstream stream — one cut anywhere, two cuts up to 4
// bytes apart (inside a UTF-8 character, between "\r" and "\n"), one byte
// at a time — gives the client the same bytes as the whole, and the whole
// is a well-formed stream of the client's API.
func TestStreamAnySplit(t *testing.T) {
	t.Parallel()
	for _, k := range streamKinds {
		for name, in := range streamInputs(t, k.dir) {
			t.Run(k.dir+"/"+name, func(t *testing.T) {
				t.Parallel()
				whole := runStream(k.new(), in)
				if err := k.check(whole); err != nil {
					t.Fatalf("%v\n%s", err, whole)
				}
				for i := 0; i <= len(in); i++ {
					for j := i; j <= min(i+4, len(in)); j++ {
						if got := runStream(k.new(), in[:i], in[i:j], in[j:]); !bytes.Equal(got, whole) {
							t.Fatalf("cut at %d,%d (-whole +split):\n%s", i, j, cmp.Diff(string(whole), string(got)))
						}
					}
				}
				bytewise := make([][]byte, len(in))
				for i := range in {
					bytewise[i] = in[i : i+1]
				}
				if got := runStream(k.new(), bytewise...); !bytes.Equal(got, whole) {
					t.Fatalf("one byte at a time (-whole +split):\n%s", cmp.Diff(string(whole), string(got)))
				}
			})
		}
	}
}

// CRLF line ends, as some servers send, translate like LF ones.
func TestStreamCRLF(t *testing.T) {
	t.Parallel()
	for _, k := range streamKinds {
		for name, in := range streamInputs(t, k.dir) {
			crlf := bytes.ReplaceAll(in, []byte("\n"), []byte("\r\n"))
			if diff := cmp.Diff(string(runStream(k.new(), in)), string(runStream(k.new(), crlf))); diff != "" {
				t.Errorf("%s/%s with CRLF (-LF +CRLF):\n%s", k.dir, name, diff)
			}
		}
	}
}

// An event is sent as soon as it is whole, not held until the end.
func TestStreamIsIncremental(t *testing.T) {
	t.Parallel()
	s := newMessagesToChatStream(testEnv, clientModel)
	got := s.Write([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"))
	if !bytes.Contains(got, []byte(`"content":"Hi"`)) {
		t.Errorf("messages->chat: the first text delta was not sent on the write that completed it:\n%s", got)
	}
	c := newChatToMessagesStream(testEnv, clientModel)
	got = c.Write([]byte(`data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi"}}]}` + "\n\n"))
	if !bytes.Contains(got, []byte(`"text_delta","text":"Hi"`)) {
		t.Errorf("chat->messages: the first text delta was not sent on the write that completed it:\n%s", got)
	}
	if rest := c.Write(nil); len(rest) != 0 {
		t.Errorf("an empty write returned %q", rest)
	}
}

// Interleaved tool call arguments cannot become Anthropic blocks, which
// are sent one after another; the client gets an error, not mixed input.
func TestChatStreamInterleavedToolCalls(t *testing.T) {
	t.Parallel()
	in := `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]}` + "\n\n" +
		`data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{"}}]}}]}` + "\n\n" +
		`data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]}` + "\n\n"
	out := runStream(newChatToMessagesStream(testEnv, clientModel), []byte(in))
	if err := checkMessagesStream(out); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	evs := events(out)
	if last := evs[len(evs)-1]; last.Name != "error" || !bytes.Contains(last.Data, []byte("interleaved")) {
		t.Errorf("last event = %s %s, want an error about interleaved tool calls", last.Name, last.Data)
	}
}
