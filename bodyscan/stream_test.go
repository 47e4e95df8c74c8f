package bodyscan

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"switchyard/loadtest/agentbody"
)

// streamed scans body written in the pieces that cuts (ascending offsets)
// make of it, reading strings as mode says (or the nearest way the build
// and the CPU have).
func streamed(body []byte, cuts []int, mode scanMode) Result {
	s := Stream{begun: true}
	s.mode = bestMode(mode)
	from := 0
	for _, c := range cuts {
		s.Write(body[from:c])
		from = c
	}
	s.Write(body[from:])
	if s.Len() != len(body) && s.Verdict == Valid {
		panic("a stream that has not failed lost count of the bytes written")
	}
	return s.End()
}

// found is what a scan found, without how it read.
func found(r Result) Result {
	r.mode, r.blk, r.more, r.utf8Broken = 0, block{}, false, false
	return r
}

// checkStream holds the scan of body in the pieces cuts make to the scan
// of the whole body, reading strings in each way, and that to
// encoding/json's judgement.
func checkStream(t testing.TB, body []byte, cuts []int) {
	t.Helper()
	want := found(Scan(body))
	for _, mode := range []scanMode{scalarStrings, vectorStrings, blockStrings} {
		if got := found(streamed(body, cuts, mode)); got != want {
			t.Fatalf("%q cut at %v, mode %d:\nstreamed %+v\nwhole    %+v", body, cuts, mode, got, want)
		}
	}
	if valid := json.Valid(body); (want.Verdict == Valid) != valid && want.Verdict != Deep {
		t.Fatalf("scan of %q: verdict %v, encoding/json says valid %v", body, want.Verdict, valid)
	}
}

// streamBodies are bodies with every kind of token the scan reads, and
// tokens cut short, to cut anywhere.
var streamBodies = []string{
	`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
	` { "mod\u0065l" : "a\"b\\c\u00e9" , "metadata" : { "user_id" : "u-1" } , "prompt_cache_key" : "k" } `,
	`{"model":"m","input":[1,-2.5e+10,0,true,false,null,{"a":[]},[],{}],"stream":false}`,
	`{"model":"m","stream_options":{"include_usage":false,"include_usage":true},"stream":tru}`,
	`{"model":"日本語😀","a":"\ud83d\ude00 é \/ \b\f\n\r\t","m\u006Fdel":"x"}`,
	`{"model":"m","a":"bad \xff \xc3 \xed\xa0\x80 utf8","b":1}`,
	`{"model":"m","n":-0.5E-7,"n2":01}`,
	`{"model":"m","a":"\u12G4"}`,
	`{"model":"m","a":"\x01"}`,
	`[1,2,{"model":"m"}]`,
	`"just a string"`,
	`123`,
	`{"model":"m"} x`,
	`{"model":"m","a":"unterminated`,
	`{"model":"m","a":"cut in an escape \u00`,
	`{"model":"m","a":"cut in a rune ` + "\xe6\x97",
	`{"model":"m","a":`,
	`{"model":"m","n":1.`,
	`{"model":"m","n":-`,
	`{"model":"m","t":nul`,
	`{"model"`,
	`{"model":"m",}`,
	`{"` + strings.Repeat(`\u0061`, 30) + `":1,"model":"m","` + strings.Repeat("k", 200) + `":2}`,
	`{"\u0070\u0072\u006f\u006d\u0070\u0074\u005f\u0063\u0061\u0063\u0068\u0065\u005f\u006b\u0065\u0079":"p","model":"m"}`,
	strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting),
	strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1),
	`{"model":"m","a":"` + strings.Repeat(`\\`, 70) + `\"` + strings.Repeat("p", 130) + `"}`,
	`{"model":"m","Model":"n"}`,
	`{"model":"m","\u017ftream":true,"ſtream_options":{}}`,
	`{"stream_options":{"include_usage":true,"include_usage":false},"model":"m"}`,
	`{"stream_options":{"Include_Usage":true},"model":"m"}`,
}

// TestAmbiguous: a key the scan reads, named twice or in another case as
// Go's encoding/json would take it, is the body's first ambiguous key;
// other keys may repeat and differ in case.
func TestAmbiguous(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"model":"m","model":"n"}`:                                                           "model",
		`{"Model":"n","model":"m"}`:                                                           "model",
		`{"model":"m","MODEL":"n"}`:                                                           "model",
		`{"model":"m","mod\u0045l":"n"}`:                                                      "model",
		`{"model":"m","\u017ftream":true}`:                                                    "stream",
		`{"model":"m","ſtream":true,"Metadata":{}}`:                                           "stream",
		`{"model":"m","stream_options":{},"stream_options":{}}`:                               "stream_options",
		`{"model":"m","stream_options":{"include_usage":true,"include_usage":false}}`:         "stream_options.include_usage",
		`{"model":"m","stream_options":{"include_usagE":true}}`:                               "stream_options.include_usage",
		`{"model":"m","PROMPT_CACHE_KEY":"k","Input":1,"Messages":[]}`:                        "prompt_cache_key",
		`{"model":"m","messages":[],"input":"x","metadata":{"model":1,"Model":2}}`:            "",
		`{"model":"m","models":1,"modeL2":1,"temperature":1,"Temperature":2,"temperature":3}`: "",
		`{"model":"m","stream_options":{"x":1,"x":2,"include_usage":true}}`:                   "",
	} {
		if got := Scan([]byte(body)).Ambiguous(); got != want {
			t.Errorf("Scan(%s).Ambiguous() = %q, want %q", body, got, want)
		}
		if _, ok := Summary(nil, []byte(body)); ok != (want == "") {
			t.Errorf("Summary(%s): ok %v, want %v", body, ok, want == "")
		}
	}
}

// TestStreamCutAnywhere: each body cut in two at every byte, in three at
// every pair of bytes, and into single bytes, is scanned as it is whole.
func TestStreamCutAnywhere(t *testing.T) {
	t.Parallel()
	for _, body := range streamBodies {
		b := []byte(body)
		every := make([]int, len(b))
		for i := range b {
			checkStream(t, b, []int{i})
			every[i] = i
			if len(b) > 200 {
				continue
			}
			for j := i; j <= len(b); j++ {
				checkStream(t, b, []int{i, j})
			}
		}
		checkStream(t, b, every)
	}
}

// TestStreamAgentBodies: agent-shaped bodies cut as Envoy cuts them (16 KB
// pieces) and at random, into pieces from none to hundreds of bytes, are
// scanned as they are whole.
func TestStreamAgentBodies(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, api := range []agentbody.API{agentbody.OpenAIChat, agentbody.AnthropicMessages} {
		for _, size := range []int{1 << 10, 32 << 10, 256 << 10} {
			body := agentBody(api, size)
			var cuts []int
			for c := 16 << 10; c < len(body); c += 16 << 10 {
				cuts = append(cuts, c)
			}
			checkStream(t, body, cuts)
			if s := Scan(body); s.Verdict != Valid || !s.Model.OK() {
				t.Fatalf("%s %d: %+v", api, size, s)
			}
			for range 20 {
				checkStream(t, body, randomCuts(rng, len(body), 1+rng.IntN(400)))
			}
		}
	}
}

// randomCuts cuts n bytes into pieces of mean bytes on average (at least
// one), some of them empty.
func randomCuts(rng *rand.Rand, n, mean int) []int {
	mean = max(mean, 1)
	var cuts []int
	for c := rng.IntN(mean + 1); c < n; c += rng.IntN(2*mean + 1) {
		cuts = append(cuts, c)
	}
	return cuts
}

// FuzzStream holds a streamed scan, cut where the fuzzer says, to the
// scan of the whole body.
func FuzzStream(f *testing.F) {
	for i, body := range streamBodies {
		f.Add([]byte(body), uint64(i), uint8(1+i%7))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64, mean uint8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		checkStream(t, body, randomCuts(rng, len(body), int(mean)))
		checkStream(t, append([]byte(`{"model":"m","a":"`), append(body, `"}`...)...), randomCuts(rng, len(body)+20, int(mean)))
	})
}

// BenchmarkStream is the scan of agent-shaped bodies written in 16 KB
// pieces, as Envoy hands them over, against the whole body's.
func BenchmarkStream(b *testing.B) {
	for _, sz := range agentbody.Sizes {
		body := agentBody(agentbody.OpenAIChat, sz.Size)
		b.Run(sz.Name+"/whole", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				Scan(body)
			}
		})
		b.Run(sz.Name+"/pieces", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var s Stream
				for p := body; len(p) > 0; p = p[min(len(p), 16<<10):] {
					s.Write(p[:min(len(p), 16<<10)])
				}
				s.End()
			}
		})
	}
}

// TestStreamHoldsNoPointers: Envoy's body module keeps a Stream in memory
// Go does not manage, which must hold no Go pointers.
func TestStreamHoldsNoPointers(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				walk(ty.Field(i).Type, path+"."+ty.Field(i).Name)
			}
		case reflect.Array:
			walk(ty.Elem(), path+"[]")
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		default:
			t.Errorf("Stream%s is a %s", path, ty.Kind())
		}
	}
	walk(reflect.TypeFor[Stream](), "")
}

// TestSummaryOneLine: a summary holds no line break, whatever the body's
// whitespace, so that a check carries it in a header; it still reads as
// the body's members, a string's escaped line breaks kept.
func TestSummaryOneLine(t *testing.T) {
	body := "{\r\n  \"metadata\": {\n    \"user_id\": \"u-1\\n2\",\r\n    \"tags\": [1,\n 2]\n  },\n  \"messages\": [],\n  \"model\": \"gpt-4o\"\n}"
	s, ok := Summary(nil, []byte(body))
	if !ok {
		t.Fatalf("Summary(%q) refused", body)
	}
	if want := `{"model":"gpt-4o","metadata":{    "user_id": "u-1\n2",    "tags": [1, 2]  }}`; string(s) != want {
		t.Errorf("Summary = %s, want %s", s, want)
	}
	// A DEL, which JSON strings may hold raw, no header may.
	s, ok = Summary(nil, []byte("{\"model\":\"m\x7f\",\"metadata\":{\"user_id\":\"u\x7f1\"}}"))
	if want := `{"model":"m\u007f","metadata":{"user_id":"u\u007f1"}}`; !ok || string(s) != want {
		t.Errorf("Summary = %s, %v, want %s", s, ok, want)
	}
}

// A "stream" that is not a boolean (or null) is marked, and a body holding
// one gets no summary: extproc must see it to refuse it, since a lenient
// provider streams for "true" or 1 and the gateway would count no usage.
func TestStreamNotBool(t *testing.T) {
	for value, notBool := range map[string]bool{
		`true`: false, `false`: false, `null`: false,
		`"true"`: true, `1`: true, `{}`: true, `[true]`: true,
	} {
		body := []byte(`{"model":"m","stream":` + value + `}`)
		if got := Scan(body).StreamNotBool; got != notBool {
			t.Errorf("stream %s: StreamNotBool %v, want %v", value, got, notBool)
		}
		if _, ok := Summary(nil, body); ok == notBool {
			t.Errorf("stream %s: Summary ok %v, want %v", value, ok, !notBool)
		}
	}
}
