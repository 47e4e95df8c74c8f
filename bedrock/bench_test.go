package bedrock

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"switchyard/loadtest/agentbody"
)

// BenchmarkInvoke is what a Bedrock request adds on the request path: the
// InvokeModel body, its path and the SigV4 signature (hashing the body).
//
//	go test -tags=vtprotobuf -run '^$' -bench 'Invoke|StreamChunk' -benchmem ./bedrock
func BenchmarkInvoke(b *testing.B) {
	e := NewEndpoint("us-east-1", "bedrock-runtime.us-east-1.amazonaws.com", 443, true, Static(testCreds))
	messages := func(size int) []byte {
		text := strings.Repeat("x", size-150)
		return []byte(`{"model":"claude-bedrock","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"` + text + `"}]}`)
	}
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"small", messages(200)},
		{"256KB", messages(256 << 10)},
		{"agent256KiB", agentbody.MustGenerate(agentbody.Spec{API: agentbody.AnthropicMessages, Model: "claude-bedrock", Size: 256 << 10, Stream: true})},
	} {
		body := c.body
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				out, stream, err := InvokeBody(body, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Sign(InvokePath("us.anthropic.claude-sonnet-4-5-20250929-v1:0", stream), out, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamChunk is the event-stream conversion of one streamed text
// delta (one frame, as Bedrock sends them).
func BenchmarkStreamChunk(b *testing.B) {
	f := chunk(b, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello, world"}}`)
	s := NewStream()
	b.ReportAllocs()
	for b.Loop() {
		if out := s.Write(f); !bytes.HasPrefix(out, []byte("event: content_block_delta")) {
			b.Fatalf("%q", out)
		}
	}
}

// BenchmarkConverse is a Messages request made a Converse request (a
// Bedrock model of another maker): a small one, and an agent's 256 KiB
// conversation of tool calls and results.
func BenchmarkConverse(b *testing.B) {
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"small", []byte(`{"model":"m","max_tokens":1024,"system":"Be brief.","messages":[{"role":"user","content":"Hello"}]}`)},
		{"256KiB", agentbody.MustGenerate(agentbody.Spec{API: agentbody.AnthropicMessages, Model: "m", Size: 256 << 10})},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, _, err := ConverseBody(c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
