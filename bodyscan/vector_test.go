//go:build goexperiment.simd && amd64

package bodyscan

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"switchyard/loadtest/agentbody"
)

// scanModes scans body reading strings in each way (the ways this CPU
// lacks give the portable scan, so the checks still run on the scan such
// a CPU uses), each result's mode and block cleared so that they compare
// equal when they found the same.
func scanModes(t testing.TB, body []byte) (scans [3]Result) {
	t.Helper()
	want := [3]scanMode{scalarStrings, vectorStrings, blockStrings}
	if !vectorScan {
		want[1], want[2] = scalarStrings, scalarStrings
	} else if !blockScan {
		want[2] = vectorStrings
	}
	for m := range scans {
		s := scanWith(body, scanMode(m))
		if s.mode != want[m] {
			t.Fatalf("scanWith(%d): mode %d, want %d", m, s.mode, want[m])
		}
		s.mode, s.blk, s.utf8Broken = 0, block{}, false
		scans[m] = s
	}
	return scans
}

// stringBytes are what a string scan must tell apart: quotes, backslashes,
// escape letters, hex digits, control characters, every UTF-8 form (and
// broken ones), plain ASCII.
var stringBytes = []string{`"`, `\`, `\\`, `\"`, `u`, `00e9`, `n`, `t`, `/`, `x`, "\x01", "\x1f", "\n",
	"é", "日", "😀", "\xff", "\xc3", "\xed\xa0\x80", "a", "abcdefgh", " ", "0123456789abcdef",
	"\x80", "\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf0\x9f\x98"}

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

// TestEscapesAcrossBlockEnds: a run of backslashes of every length up to
// five, or of 63 to 70 (across one or two block ends), ending at every byte
// around a block's end and followed by each kind of character, is read
// alike in every mode (the block scan carries the run's escape into the
// next block).
func TestEscapesAcrossBlockEnds(t *testing.T) {
	t.Parallel()
	followers := []string{`"`, `u00e9`, `uZZ`, `x`, `n`, `\`, "é", "€", "\x01", "\xff"}
	for end := 56; end < 136; end++ {
		for _, run := range []int{1, 2, 3, 4, 5, 63, 64, 65, 66, 67, 68, 69, 70} {
			if run > end-6 {
				continue
			}
			for _, f := range followers {
				body := []byte(`{"a":"`)
				for len(body) < end-run {
					body = append(body, 'p')
				}
				for range run {
					body = append(body, '\\')
				}
				body = append(body, f...)
				checkVectorScan(t, append(body, `tail","model":"m"}`...))
			}
		}
	}
}

// TestEscapedKeyInEveryPlace: a key spelled with an escape is unescaped
// before it is compared wherever it sits against the blocks, so that a
// second "model" cannot hide in one.
func TestEscapedKeyInEveryPlace(t *testing.T) {
	t.Parallel()
	for pad := range 80 {
		body := []byte(`{"p":"` + strings.Repeat("p", pad) + `","mod\u0065l":"a","model":"b"}`)
		checkVectorScan(t, body)
		if s := Scan(body); s.Models != 2 {
			t.Fatalf("scan of %q: %d models, want 2", body, s.Models)
		}
	}
}

// TestStringsToTheBodysEnd: a body cut inside a string, or right after
// its opening quote, on every length around a block's end, is refused in
// every mode (the block past the end reads as zeros, never as a quote).
func TestStringsToTheBodysEnd(t *testing.T) {
	t.Parallel()
	for n := 6; n < 140; n++ {
		for _, tail := range []string{``, `x`, `\`, `\"`, "é"} {
			body := []byte(`{"a":` + strings.Repeat(" ", n-6) + `"` + tail)
			checkVectorScan(t, body)
			if s := Scan(body); s.Verdict != Syntax {
				t.Fatalf("scan of %q: verdict %v, want not JSON", body, s.Verdict)
			}
		}
	}
}

// utf8Forms are the kinds of UTF-8 sequence, each with the bytes around
// it: whole ones at the ends of each length's range, and each way one can
// be broken (cut short, overlong, a surrogate, too large, a continuation
// too many or alone, a byte no UTF-8 has).
var utf8Forms = []string{"\u0080", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff", "é", "日", "😀",
	"\xc3", "\xe6\x97", "\xf0\x9f\x98", "\xc3a", "\xe6\x97a", "\xf0\x9f\x98a", "\xe6é",
	"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",
	"\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf",
	"é\x80", "日\x80", "😀\x80", "\x80", "\xbf\xbf", "\x80\x80\x80\x80", "\xfe", "\xff"}

// TestUTF8AcrossBlockEnds: a sequence of each form, alone or after
// another, starting at every byte around a block's end (and so cut by it
// at every byte), in a string or outside one, is read alike in every mode
// and whole or in pieces, and a string holding it is judged UTF-8 or not
// as unicode/utf8 judges it.
func TestUTF8AcrossBlockEnds(t *testing.T) {
	t.Parallel()
	for at := 56; at < 136; at++ {
		for i, form := range utf8Forms {
			for _, seq := range []string{form, utf8Forms[(i+1)%len(utf8Forms)] + form, form + "日本語テキスト"} {
				s := strings.Repeat("p", at-6) + seq
				body := []byte(`{"a":"` + s + `","model":"m"}`)
				checkVectorScan(t, body)
				if got := Scan(body); got.BadUTF8 == utf8.ValidString(s) || got.Verdict != Valid {
					t.Fatalf("scan of %q: %+v, want valid JSON, UTF-8 %v", body, got, utf8.ValidString(s))
				}
				checkStream(t, body, []int{at, at + 1, at + 2})
				checkVectorScan(t, []byte(`{"a":"`+strings.Repeat("p", at-8)+`",`+seq+`:1}`))
			}
		}
	}
}

func checkVectorScan(t testing.TB, body []byte) {
	scans := scanModes(t, body)
	for _, s := range scans[1:] {
		if s != scans[0] {
			t.Fatalf("scan of %q:\nvectors %+v\nscalar %+v", body, s, scans[0])
		}
	}
	if s, valid := scans[0], json.Valid(body); (s.Verdict == Valid) != valid && s.Verdict != Deep {
		t.Fatalf("scan of %q: verdict %v, encoding/json says valid %v", body, s.Verdict, valid)
	}
}

// FuzzVectorScan holds the vector and block string scans to the scalar
// one, inside a string of a body and as a whole body.
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

// BenchmarkScanVector is the body scan on agent-shaped bodies, their
// prose in each language, with the vector string scan and without it, in
// one run.
func BenchmarkScanVector(b *testing.B) {
	for _, api := range []agentbody.API{agentbody.OpenAIChat, agentbody.AnthropicMessages} {
		for _, lang := range agentbody.Langs {
			for _, sz := range agentbody.Sizes {
				benchModes(b, string(api)+"/"+lang+"/"+sz.Name, agentBodyIn(api, lang, sz.Size))
			}
		}
	}
}

func benchModes(b *testing.B, name string, body []byte) {
	for m, mode := range []string{"scalar", "vector", "blocks"} {
		b.Run(name+"/"+mode, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if s := scanWith(body, scanMode(m)); s.Verdict != Valid {
					b.Fatal("not valid")
				}
			}
		})
	}
}
