package processor

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"

	"switchyard/bodyscan"
	"switchyard/routing"
)

// readBodyFourPass is readBody as it was before the one-pass scan: nesting,
// gjson.ValidBytes, utf8.Valid, then gjson's ForEach. The tests hold the
// scan to its verdicts and fields, and the benchmarks measure against it.
func readBodyFourPass(body []byte) (bodyFields, *apiError) {
	var f bodyFields
	if len(body) == 0 {
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is required")
	}
	if bodyscan.NestsDeeperThan(body, maxNesting) {
		return f, tooDeep()
	}
	if !gjson.ValidBytes(body) {
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is not valid JSON")
	}
	if !utf8.Valid(body) {
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body is not valid UTF-8")
	}
	doc := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !doc.IsObject() {
		return f, newAPIError(routing.KindInvalidRequest, "invalid_json", "request body must be a JSON object")
	}
	var model gjson.Result
	count := 0
	streamNotBoolean := false
	ambiguous := "" // the first key read named twice or in another case
	seen := map[string]bool{}
	note := func(name string) {
		if ambiguous == "" {
			ambiguous = name
		}
	}
	read := []string{"model", "metadata", "prompt_cache_key", "messages", "input", "stream", "stream_options", "background"}
	doc.ForEach(func(k, v gjson.Result) bool {
		for _, name := range read {
			switch {
			case k.Str == name && seen[name]:
				note(name)
			case k.Str == name:
				seen[name] = true
			case strings.EqualFold(k.Str, name):
				note(name)
			}
		}
		if k.Str == "stream_options" {
			usage := 0
			v.ForEach(func(k, _ gjson.Result) bool {
				if strings.EqualFold(k.Str, "include_usage") {
					if usage++; usage > 1 || k.Str != "include_usage" {
						note("stream_options.include_usage")
					}
				}
				return true
			})
		}
		switch k.Str {
		case "model":
			count++
			model = v
		case "metadata":
			f.metadata = v
		case "prompt_cache_key":
			f.promptCacheKey = v
		case "messages":
			f.messages = v
		case "input":
			f.input = v
		case "stream":
			f.stream = v.Type == gjson.True
			streamNotBoolean = v.Type != gjson.True && v.Type != gjson.False && v.Type != gjson.Null
		case "stream_options":
			f.includeUsage = v.Get("include_usage").Type == gjson.True
		case "background":
			f.background = v.Type == gjson.True
		}
		return true
	})
	lastTwo := func(conv gjson.Result) (prev, last string) {
		if conv.IsArray() {
			conv.ForEach(func(_, v gjson.Result) bool { prev, last = last, v.Raw; return true })
		}
		return prev, last
	}
	f.messagesPrev, f.messagesLast = lastTwo(f.messages)
	f.inputPrev, f.inputLast = lastTwo(f.input)
	if ambiguous != "" && count <= 1 {
		return f, ambiguousKey(ambiguous)
	}
	switch {
	case count == 0:
		return f, newAPIError(routing.KindInvalidRequest, "missing_model", `request body has no "model" field`)
	case count > 1:
		return f, newAPIError(routing.KindInvalidRequest, "duplicate_model", `request body names "model" more than once`)
	case model.Type != gjson.String:
		return f, newAPIError(routing.KindInvalidRequest, "invalid_model", `"model" must be a string`)
	case model.Str == "":
		return f, newAPIError(routing.KindInvalidRequest, "invalid_model", `"model" must not be empty`)
	case len(model.Str) > maxModelLen:
		return f, newAPIError(routing.KindInvalidRequest, "invalid_model", `"model" is longer than `+strconv.Itoa(maxModelLen)+` bytes`)
	case streamNotBoolean:
		return f, streamNotBool()
	}
	f.model = model.Str
	return f, nil
}

// fieldsView is what tests compare of bodyFields.
type fieldsView struct {
	Model, Metadata, PromptCacheKey, Messages, Input string
	MessagesLast, InputLast                          string
	MessagesPrev, InputPrev                          string
	Stream, IncludeUsage, Background                 bool
	Err                                              string
}

func viewOf(f bodyFields, err *apiError) fieldsView {
	if err != nil {
		return fieldsView{Err: strconv.Itoa(err.status) + " " + err.code + ": " + err.message}
	}
	return fieldsView{Model: f.model, Metadata: f.metadata.Raw, PromptCacheKey: f.promptCacheKey.Raw,
		Messages: f.messages.Raw, Input: f.input.Raw, MessagesLast: f.messagesLast, InputLast: f.inputLast,
		MessagesPrev: f.messagesPrev, InputPrev: f.inputPrev,
		Stream: f.stream, IncludeUsage: f.includeUsage, Background: f.background}
}

// bodyScanSeeds cover every branch of the scan.
var bodyScanSeeds = []string{
	chatBody,
	`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"user","content":"there"}],"stream":true,"stream_options":{"include_usage":true}}`,
	`{"model":"m","input":[1,"two",{"three":3}],"prompt_cache_key":"k","metadata":{"user_id":"u"}}`,
	`{"model":"m","input":"just text","messages":[]}`,
	`{"stream_options":{"include_usage":false,"include_usage":true},"model":"m"}`,
	`{"stream_options":{"include_usage":true},"stream_options":{},"model":"m"}`,
	`{"stream_options":{"x":{"include_usage":true}},"model":"m","stream":false,"stream":true}`,
	`{"mod\u0065l":"m","stre\u0061m":true}`,
	`{"model":"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t","n":-0.5e+10,"z":0,"e":1E-2,"a":[true,false,null]}`,
	" \t\r\n{ \"model\" : \"m\" , \"messages\" : [ 1 , 2 ] } \n",
	`{"model":"a","model":"b"}`,
	`{"model":12}`, `{"model":""}`, `{"model":"` + strings.Repeat("x", 300) + `"}`, `{}`, `[]`, `"model"`, `1`,
	`{"model":"m"`, `{"model":"m",}`, `{"model" "m"}`, `{model:"m"}`, `{"model":"m"}x`, `{"a":01,"model":"m"}`,
	`{"a":1.,"model":"m"}`, `{"a":-,"model":"m"}`, `{"a":1e,"model":"m"}`, `{"a":tru,"model":"m"}`, `{"a":"\x","model":"m"}`,
	`{"a":"\u12g4","model":"m"}`, "{\"a\":\"\x01\",\"model\":\"m\"}", "{\"a\":\"\xff\",\"model\":\"m\"}",
	"{\"a\":\"\xed\xa0\x80\",\"model\":\"m\"}", "{\"a\":\"\xe6\x97\xa5\xe6\x9c\xac\",\"model\":\"m\"}",
	"{\"a\":\"\xff\",\"model\":\"m\",}", "\xff", `{"a":[` + strings.Repeat("[", 300) + `"model"`,
	strings.Repeat("[", 256) + strings.Repeat("]", 256), strings.Repeat("[", 257) + strings.Repeat("]", 257),
	`{"model":"m","a":"` + strings.Repeat("[", 300) + `"}`, "",
	// Keys the gateway reads, in another case or twice.
	`{"model":"m","Model":"n"}`, `{"MODEL":"n"}`, `{"model":"m","\u017ftream":true}`, "{\"model\":\"m\",\"\xc5\xbftream\":true}",
	`{"model":"m","Stream_Options":{}}`, `{"model":"m","stream_options":{"include_usage":true,"Include_Usage":false}}`,
	`{"model":"m","messages":[],"messages":[]}`, `{"model":"m","metadata":{},"metadata":{}}`,
	`{"model":"m","input":"x","background":true}`, `{"model":"m","background":false}`, `{"model":"m","background":1}`,
	`{"model":"m","background":true,"Background":false}`, `{"background":true,"background":false,"model":"m"}`,
	`{"model":"m","models":1,"modeL2":1,"streaming":true,"Temperature":1,"temperature":1,"temperature":2}`,
}

func TestScanBodyAgreesWithFourPasses(t *testing.T) {
	t.Parallel()
	for i, s := range bodyScanSeeds {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			want := viewOf(readBodyFourPass([]byte(s)))
			got := viewOf(readBody([]byte(s)))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("readBody(%q) (-four passes +one scan):\n%s", s, diff)
			}
		})
	}
}

// FuzzScanBody holds the one-pass scan to encoding/json and utf8.Valid: it
// accepts exactly the bodies that are valid JSON in UTF-8 and nest no
// deeper than maxNesting; on every body it agrees with the four-pass
// reading it replaced (verdict, message and fields), except where gjson's
// validator and encoding/json's disagree.
func FuzzScanBody(f *testing.F) {
	for _, s := range bodyScanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := bodyscan.Scan(body)
		valid := json.Valid(body)
		deep := bodyscan.NestsDeeperThan(body, maxNesting)
		switch {
		case s.Verdict == bodyscan.Deep && !deep:
			t.Fatalf("scan of %q: too deep, but it nests no deeper than %d", body, maxNesting)
		case s.Verdict == bodyscan.Valid && !valid:
			t.Fatalf("scan of %q: valid, encoding/json says not", body)
		case s.Verdict == bodyscan.Syntax && valid && !deep:
			t.Fatalf("scan of %q: not JSON, encoding/json says valid", body)
		case s.Verdict == bodyscan.Valid && s.BadUTF8 == utf8.Valid(body):
			t.Fatalf("scan of %q: bad UTF-8 %v, utf8.Valid %v", body, s.BadUTF8, utf8.Valid(body))
		}
		got := viewOf(readBody(body))
		if gjson.ValidBytes(body) != valid {
			return // the old validator's own verdict; encoding/json's is the one above
		}
		if want := viewOf(readBodyFourPass(body)); !cmp.Equal(want, got) {
			t.Fatalf("readBody(%q) (-four passes +one scan):\n%s", body, cmp.Diff(want, got))
		}
	})
}

func TestReadBodyAllocs(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("word ", 2000) + `"}],"stream":true}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = readBody(body) }); n > 1 {
		t.Errorf("readBody allocates %v times per body, want at most 1 (the model)", n)
	}
}
