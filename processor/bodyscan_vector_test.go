//go:build goexperiment.simd && amd64

package processor

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"switchyard/loadtest/agentbody"
)

// scanBoth scans body with the vector string scan and without it. On a
// CPU without AVX2 asking for vectors must give the portable scan, so the
// checks still run, on the scan such a CPU uses.
func scanBoth(t testing.TB, body []byte) (vector, scalar bodyScan) {
	t.Helper()
	vector, scalar = scanBodyWith(body, true), scanBodyWith(body, false)
	if vector.vector != vectorScan || scalar.vector {
		t.Fatalf("scanBodyWith: vector %v and %v, want %v (AVX2) and false", vector.vector, scalar.vector, vectorScan)
	}
	vector.vector = false // so that the two compare equal when they found the same
	return vector, scalar
}

// stringBytes are what a string scan must tell apart: quotes, backslashes,
// escape letters, hex digits, control characters, every UTF-8 form (and
// broken ones), plain ASCII.
var stringBytes = []string{`"`, `\`, `\\`, `\"`, `u`, `00e9`, `n`, `t`, `/`, `x`, "\x01", "\x1f", "\n",
	"é", "日", "😀", "\xff", "\xc3", "\xed\xa0\x80", "a", "abcdefgh", " ", "0123456789abcdef"}

// TestVectorScanAgreesWithScalar: on strings of every mix of those bytes,
// across 64-byte blocks and their ends, the vector scan finds what the
// scalar one does, and both judge the body as encoding/json does.
func TestVectorScanAgreesWithScalar(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		var s []byte
		for n := rng.IntN(200); len(s) < n; {
			s = append(s, stringBytes[rng.IntN(len(stringBytes))]...)
		}
		pad := rng.IntN(70)
		body := make([]byte, 0, len(s)+pad+40)
		body = append(body, `{"a":"`...)
		for range pad {
			body = append(body, 'p')
		}
		body = append(body, s...)
		body = append(body, `","model":"m"}`...)
		checkVectorScan(t, body)
	}
}

func checkVectorScan(t testing.TB, body []byte) {
	vector, scalar := scanBoth(t, body)
	if vector != scalar {
		t.Fatalf("scan of %q:\nvector %+v\nscalar %+v", body, vector, scalar)
	}
	if valid := json.Valid(body); (vector.verdict == scanValid) != valid && vector.verdict != scanDeep {
		t.Fatalf("scan of %q: verdict %v, encoding/json says valid %v", body, vector.verdict, valid)
	}
}

// FuzzVectorScan holds the vector string scan to the scalar one, inside a
// string of a body and as a whole body.
func FuzzVectorScan(f *testing.F) {
	for _, s := range stringBytes {
		f.Add([]byte(s + `abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz` + s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		checkVectorScan(t, s)
		body := append([]byte(`{"model":"m","a":"`), s...)
		checkVectorScan(t, append(body, `"}`...))
	})
}

// BenchmarkScanVector is the body scan on agent-shaped bodies with the
// vector string scan and without it, in one run.
func BenchmarkScanVector(b *testing.B) {
	for _, api := range []agentbody.API{agentbody.OpenAIChat, agentbody.AnthropicMessages} {
		for _, sz := range agentSizes {
			body := agentBody(b, api, sz.size)
			for _, vector := range []bool{true, false} {
				name := map[bool]string{true: "vector", false: "scalar"}[vector]
				b.Run(string(api)+"/"+sz.name+"/"+name, func(b *testing.B) {
					b.SetBytes(int64(len(body)))
					for b.Loop() {
						if s := scanBodyWith(body, vector); s.verdict != scanValid {
							b.Fatal("not valid")
						}
					}
				})
			}
		}
	}
}
