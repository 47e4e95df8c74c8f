package main

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"switchyard/bodyscan"
	"switchyard/loadtest/agentbody"
)

// cut cuts b into pieces at random, some of them empty.
func cut(rng *rand.Rand, b []byte, mean int) [][]byte {
	var pieces [][]byte
	for len(b) > 0 {
		n := min(rng.IntN(2*mean+1), len(b))
		pieces = append(pieces, b[:n])
		b = b[n:]
	}
	return pieces
}

// TestSummaryOfPieces: a body whose first pieces were scanned as they
// came and whose rest is scanned at its end gets the whole body's summary,
// however Envoy's buffer slices the bytes already scanned and the rest.
func TestSummaryOfPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	body := agentbody.MustGenerate(agentbody.Spec{API: agentbody.OpenAIChat, Model: "gpt-4o", Size: 64 << 10})
	body = bytes.Replace(body, []byte(`{`), []byte(`{"metadata":{"user_id":"u-1"},"prompt_cache_key":"k-2",`), 1)
	want, ok := bodyscan.Summary(nil, body)
	if !ok || !strings.Contains(string(want), `"u-1"`) || !strings.Contains(string(want), `"k-2"`) {
		t.Fatalf("whole body's summary %s, %v", want, ok)
	}
	for range 200 {
		split := rng.IntN(len(body) + 1) // the bytes scanned before the body's end
		var s bodyscan.Stream
		for _, p := range cut(rng, body[:split], 4000) {
			s.Write(p)
		}
		buffered := cut(rng, body[:split], 16000) // Envoy's slices of them
		pieces := append(buffered, cut(rng, body[split:], 16000)...)
		got, ok := summaryOf(nil, &s, pieces, len(buffered))
		if !ok || string(got) != string(want) {
			t.Fatalf("scanned %d bytes before the end: %s, %v; want %s", split, got, ok, want)
		}
	}
}

// TestSummaryOfOtherBytes: when what was scanned before the body's end is
// not what Envoy buffered (a piece handed over twice), there is no
// summary, though skipping what was scanned would leave valid JSON.
func TestSummaryOfOtherBytes(t *testing.T) {
	var s bodyscan.Stream
	s.Write([]byte(`{"a":[1,`))
	s.Write([]byte(`1,`)) // a piece Envoy then hands over again, in its buffer
	pieces := [][]byte{[]byte(`{"a":[1,`), []byte(`1,2],"model":"m"}`)}
	if got, ok := summaryOf(nil, &s, pieces, 1); ok {
		t.Fatalf("summary %s of a scan that read other bytes than Envoy's buffer", got)
	}
}

// TestAppendSpan: a value's bytes are gathered from every piece it spans.
func TestAppendSpan(t *testing.T) {
	pieces := [][]byte{[]byte(`{"model":"gp`), nil, []byte(`t-`), []byte(`4o","x":1}`)}
	if got := string(appendSpan(nil, pieces, bodyscan.Span{Start: 9, End: 17})); got != `"gpt-4o"` {
		t.Fatalf("appendSpan: %s", got)
	}
}
