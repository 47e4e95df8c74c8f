package bodyscan

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"

	"switchyard/loadtest/agentbody"
)

// agentBody is an agent-shaped body of size bytes in the shape of api.
func agentBody(api agentbody.API, size int) []byte { return agentBodyIn(api, "en", size) }

// agentBodyIn is an agent body whose prose is in lang (agentbody.Langs).
func agentBodyIn(api agentbody.API, lang string, size int) []byte {
	return agentbody.MustGenerate(agentbody.Spec{API: api, Model: "gpt-4o", Size: size, Lang: lang})
}

// TestPlainLowestFlagExact: in any word, plain's lowest flag is on the first
// byte a string scan must look at ('"', '\\', a control character or
// non-ASCII), whatever the bytes around it.
func TestPlainLowestFlagExact(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var w [8]byte
		for i := range w {
			if rng.IntN(4) == 0 {
				w[i] = byte(rng.IntN(256))
			} else {
				w[i] = byte(0x20 + rng.IntN(0x60))
			}
		}
		want := 8
		for i, c := range w {
			if special(c) {
				want = i
				break
			}
		}
		m := plain(binary.LittleEndian.Uint64(w[:]))
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != want {
			t.Fatalf("plain(%q): first flag at byte %d, want %d", w, got, want)
		}
	}
}
