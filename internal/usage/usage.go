// Package usage reads the token usage a provider reports in a response
// body, exactly as reported, while the body streams past in chunks cut
// anywhere. It knows the OpenAI Chat Completions, legacy Completions,
// Embeddings and Responses APIs and the Anthropic Messages API, JSON and
// streamed, and tells them apart by the shape of the usage object, so one
// Reader serves every route. It knows nothing of Envoy or of where the
// chunks come from.
//
// Where the usage is:
//
//	API                 JSON body   stream (text/event-stream)
//	OpenAI chat         usage       the last chunk's usage (only with stream_options.include_usage;
//	                                earlier chunks carry "usage":null)
//	OpenAI completions  usage       as chat
//	OpenAI embeddings   usage       (not streamed)
//	OpenAI Responses    usage       response.usage of response.completed (or .incomplete, .failed)
//	Anthropic Messages  usage       message.usage of message_start, then usage of message_delta
//
// In a stream, every event whose usage is an object updates the numbers it
// names and keeps the others: Anthropic's message_delta output_tokens is a
// running total, so the last one is the answer, and input or cache counts it
// repeats replace those of message_start.
//
// # One normalisation
//
// The categories of Tokens are disjoint, so that Input + CacheRead +
// CacheCreation + Output is every token billed and a sum over a label never
// counts a token twice:
//
//   - Input is the input tokens neither read from nor written to a prompt
//     cache. That is Anthropic's input_tokens as reported. OpenAI's
//     prompt_tokens (Responses: input_tokens) includes its cached_tokens and
//     cache_write_tokens, so those are taken out of Input (never below 0) and
//     counted as CacheRead and CacheCreation.
//   - CacheRead is OpenAI cached_tokens or Anthropic cache_read_input_tokens;
//     CacheCreation is OpenAI cache_write_tokens or Anthropic
//     cache_creation_input_tokens.
//   - CacheCreation1h is the part of CacheCreation that Anthropic wrote to
//     its 1-hour cache (cache_creation.ephemeral_1h_input_tokens; Bedrock and
//     Vertex report Claude's usage alike), which costs more than a 5-minute
//     write: a breakdown, never added to a total, and never more than
//     CacheCreation.
//   - Output is output tokens as reported, reasoning included (both
//     providers count it there).
//   - Reasoning is the part of Output spent reasoning (OpenAI
//     reasoning_tokens, Anthropic output_tokens_details.thinking_tokens): a
//     breakdown, never added to a total.
//
// Beside the tokens, a Reader reads the service tier an OpenAI answer says
// it was served at (ServiceTier), which its price depends on.
//
// Numbers that are absent, null, negative or not numbers count as not
// reported, and so does a body or event that is not valid JSON (a stream or
// body cut short): gjson would otherwise read a half-received object.
package usage

import (
	"bytes"

	"github.com/tidwall/gjson"

	"switchyard/internal/sse"
)

// Tokens is the usage of one response, normalised as the package doc says.
type Tokens struct {
	Input         int64 // input tokens neither read from nor written to a cache
	Output        int64 // output tokens, reasoning included
	CacheRead     int64 // input tokens read from a prompt cache
	CacheCreation int64 // input tokens written to a prompt cache
	// CacheCreation1h is the part of CacheCreation written to a 1-hour
	// cache, the rest having gone to a 5-minute one.
	CacheCreation1h int64
	Reasoning       int64 // the part of Output spent reasoning
}

// Add returns the sum of t and u, field by field.
func (t Tokens) Add(u Tokens) Tokens {
	return Tokens{
		Input:           t.Input + u.Input,
		Output:          t.Output + u.Output,
		CacheRead:       t.CacheRead + u.CacheRead,
		CacheCreation:   t.CacheCreation + u.CacheCreation,
		CacheCreation1h: t.CacheCreation1h + u.CacheCreation1h,
		Reasoning:       t.Reasoning + u.Reasoning,
	}
}

// IsZero reports whether no tokens were reported.
func (t Tokens) IsZero() bool { return t == Tokens{} }

// Total is every token billed: Input + CacheRead + CacheCreation + Output.
// Reasoning and CacheCreation1h are parts of those and not added again.
func (t Tokens) Total() int64 { return t.Input + t.CacheRead + t.CacheCreation + t.Output }

// MaxJSONBody bounds the JSON body a Reader keeps until Close. Of a longer
// body (an answer with logprobs, many embeddings) only the last tailBytes
// are kept, where every API puts its usage, and Truncated is set: its
// usage and service tier are read from there (tailUsage, tailTier), the
// answer not at all.
const MaxJSONBody = 4 << 20

const tailBytes = 64 << 10

// Reader reads the usage of one response body, fed in chunks with Write.
// A streamed body (text/event-stream) is read event by event as it arrives
// and keeps only the unfinished line; a JSON body is kept, up to
// MaxJSONBody, and read at Close. A Reader is not safe for concurrent use.
type Reader struct {
	stream    bool
	closed    bool
	truncated bool
	sc        sse.Scanner
	emit      func(sse.Event) // r.event, bound once
	body      []byte          // JSON body so far
	got       reported
	answer    *Answer // nil unless ReadAnswer asked
	events    int     // stream events read
	tier      string  // ServiceTier
}

// reported holds the numbers under the provider's names; see Tokens for
// what they become.
type reported struct {
	input         int64 // prompt_tokens / input_tokens
	inputRead     int64 // OpenAI cached_tokens, counted in input
	inputWrite    int64 // OpenAI cache_write_tokens, counted in input
	cacheRead     int64 // Anthropic cache_read_input_tokens, not in input
	cacheCreation int64 // Anthropic cache_creation_input_tokens, not in input
	// cacheCreation1h is Anthropic's cache_creation.ephemeral_1h_input_tokens,
	// counted in cacheCreation.
	cacheCreation1h int64
	output          int64
	reasoning       int64
}

// NewReader returns a Reader for a body that is a server-sent event stream
// when stream is true (Content-Type text/event-stream), else one JSON
// document.
func NewReader(stream bool) *Reader {
	r := &Reader{stream: stream}
	r.emit = r.event
	return r
}

// Write feeds the next chunk of the body. It never fails and does not keep
// chunk after it returns. Writes after Close are ignored.
func (r *Reader) Write(chunk []byte) {
	if r.closed {
		return
	}
	if r.stream {
		r.sc.Feed(chunk, r.emit)
		return
	}
	if !r.truncated && len(r.body)+len(chunk) > MaxJSONBody {
		r.truncated = true
		r.body = append(make([]byte, 0, 2*tailBytes), r.body[len(r.body)-min(len(r.body), tailBytes):]...)
	}
	r.body = append(r.body, chunk...)
	if n := len(r.body) - tailBytes; r.truncated && n > 0 {
		r.body = r.body[:copy(r.body, r.body[n:])]
	}
}

// Close ends the body and returns its usage. Calling it again returns the
// same Tokens.
func (r *Reader) Close() Tokens {
	if r.closed {
		return r.Tokens()
	}
	r.closed = true
	if r.stream {
		r.sc.Flush(r.emit)
		return r.Tokens()
	}
	switch {
	case r.truncated:
		u, at := tailUsage(r.body)
		if u.IsObject() {
			r.got.merge(u)
		}
		r.tier = tailTier(r.body, u, at)
		r.body = nil
		return r.Tokens()
	case gjson.ValidBytes(r.body):
		if u := gjson.GetBytes(r.body, "usage"); u.IsObject() {
			r.got.merge(u)
		}
		if bytes.Contains(r.body, tierKey) {
			if t := gjson.GetBytes(r.body, "service_tier"); t.Type == gjson.String {
				r.tier = t.Str
			}
		}
	}
	if a := r.answer; a != nil {
		a.read(r.body)
		if a.KeepBody {
			a.Body = r.body
		}
	}
	r.body = nil
	return r.Tokens()
}

// Tokens returns the usage reported so far: in a stream, what the events
// read until now said; in a JSON body, nothing before Close.
func (r *Reader) Tokens() Tokens {
	g := r.got
	in := g.input - g.inputRead - g.inputWrite
	if in < 0 {
		in = 0
	}
	return Tokens{
		Input:           in,
		Output:          g.output,
		CacheRead:       g.inputRead + g.cacheRead,
		CacheCreation:   g.inputWrite + g.cacheCreation,
		CacheCreation1h: min(g.cacheCreation1h, g.cacheCreation),
		Reasoning:       g.reasoning,
	}
}

// Truncated reports that part of the body went unread (a JSON body past
// MaxJSONBody, an event stream line past the scanner's bound), so Tokens
// may miss what the provider reported.
func (r *Reader) Truncated() bool { return r.truncated || r.sc.Overflowed }

// tailUsage is the usage object of a JSON body of which tail is the end:
// the last key "usage" in it whose value is a whole object; and where in
// tail that object is.
func tailUsage(tail []byte) (u gjson.Result, at int) {
	_, at, u = tailKey(tail, `"usage"`, '{', len(tail))
	return u, at
}

// tailTier is the service tier a JSON body of which tail is the end
// reports: the last key "service_tier" with a whole string value outside
// the usage object at usageAt (Anthropic's usage names its own tier, which
// is not OpenAI's).
func tailTier(tail []byte, usage gjson.Result, usageAt int) string {
	for end := len(tail); ; {
		i, at, v := tailKey(tail, `"service_tier"`, '"', end)
		if v.Type != gjson.String {
			return ""
		}
		if usage.IsObject() && at > usageAt && at < usageAt+len(usage.Raw) {
			end = i
			continue
		}
		return v.Str
	}
}

// tailKey finds in tail[:end] the last key (quoted) whose value begins
// with open: the key's index, the value's, and the value when tail holds
// all of it and it is valid (else an empty Result). In JSON a quote inside
// a string is escaped, so an unescaped key followed by a colon is a key,
// whatever the answer's text says.
func tailKey(tail []byte, key string, open byte, end int) (int, int, gjson.Result) {
	for {
		i := bytes.LastIndex(tail[:end], []byte(key))
		if i < 0 {
			return -1, -1, gjson.Result{}
		}
		end = i
		if escaped(tail, i) {
			continue
		}
		rest := bytes.TrimLeft(tail[i+len(key):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		if len(rest) == 0 || rest[0] != open {
			continue
		}
		return i, len(tail) - len(rest), wholeValue(rest)
	}
}

// escaped reports whether the quote at b[i] follows an odd number of
// backslashes.
func escaped(b []byte, i int) bool {
	n := 0
	for i > 0 && b[i-1] == '\\' {
		n, i = n+1, i-1
	}
	return n%2 == 1
}

// wholeValue is the JSON object or string at the start of b, when b holds
// all of it and it is valid; else an empty Result. (gjson frames an
// array's first element, not a value followed by more bytes.)
func wholeValue(b []byte) gjson.Result {
	v := gjson.GetBytes(append([]byte{'['}, b...), "0")
	if !v.IsObject() && v.Type != gjson.String || !gjson.Valid(v.Raw) {
		return gjson.Result{}
	}
	return v
}

// usagePaths are where a stream event carries its usage object: a chat
// chunk or message_delta, message_start, a Responses API response.* event.
var usagePaths = [...]string{"usage", "message.usage", "response.usage"}

// tierPaths are where an OpenAI stream event names its service tier: a
// chat or completions chunk, a Responses API response.* event.
// (Anthropic's usage.service_tier is its own, and not read.)
var tierPaths = [...]string{"service_tier", "response.service_tier"}

var tierKey = []byte(`"service_tier"`)

// ServiceTier is the service tier an OpenAI answer (chat, completions,
// Responses) says it was served at: its service_tier, "" when it names
// none. A stream's is the one its usage comes with, or until then the
// first it names (a Responses stream may say "auto" before the tier it
// ran at). It is what the answer is priced at (pricing.Price.At).
func (r *Reader) ServiceTier() string { return r.tier }

// Events is how many events of a stream were read so far: about one a
// token in OpenAI's chat and Responses streams, what an estimate of an
// unfinished stream's output can go by.
func (r *Reader) Events() int { return r.events }

func (r *Reader) event(e sse.Event) {
	if r.answer != nil {
		r.answer.read(e.Data)
	}
	r.events++
	usage := hasUsageObject(e.Data)
	tier := (usage || r.tier == "") && bytes.Contains(e.Data, tierKey)
	if !usage && !tier || !gjson.ValidBytes(e.Data) {
		return
	}
	if tier {
		for _, p := range tierPaths {
			if t := gjson.GetBytes(e.Data, p); t.Type == gjson.String {
				r.tier = t.Str
				break
			}
		}
	}
	if !usage {
		return
	}
	for _, p := range usagePaths {
		if u := gjson.GetBytes(e.Data, p); u.IsObject() {
			r.got.merge(u)
			return
		}
	}
}

var usageKey = []byte(`"usage"`)

// hasUsageObject is the cheap test run on every event: does `"usage":`
// followed by an object occur? Text deltas and the `"usage":null` of
// OpenAI chunks fail it without being parsed. (Inside a JSON string the
// quotes would be escaped, so a match is a key.)
func hasUsageObject(data []byte) bool {
	for {
		i := bytes.Index(data, usageKey)
		if i < 0 {
			return false
		}
		data = skipSpace(data[i+len(usageKey):])
		if len(data) > 0 && data[0] == ':' {
			if d := skipSpace(data[1:]); len(d) > 0 && d[0] == '{' {
				return true
			}
		}
	}
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// merge takes the numbers u names, replacing earlier ones; a field u does
// not name keeps its value.
func (g *reported) merge(u gjson.Result) {
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens":
			setNumber(&g.input, v)
		case "completion_tokens", "output_tokens":
			setNumber(&g.output, v)
		case "cache_read_input_tokens":
			setNumber(&g.cacheRead, v)
		case "cache_creation_input_tokens":
			setNumber(&g.cacheCreation, v)
		case "cache_creation":
			setNumber(&g.cacheCreation1h, v.Get("ephemeral_1h_input_tokens"))
		case "prompt_tokens_details", "input_tokens_details":
			v.ForEach(func(k, v gjson.Result) bool {
				switch k.Str {
				case "cached_tokens":
					setNumber(&g.inputRead, v)
				case "cache_write_tokens":
					setNumber(&g.inputWrite, v)
				}
				return true
			})
		case "completion_tokens_details", "output_tokens_details":
			v.ForEach(func(k, v gjson.Result) bool {
				if k.Str == "reasoning_tokens" || k.Str == "thinking_tokens" {
					setNumber(&g.reasoning, v)
				}
				return true
			})
		}
		return true
	})
}

// setNumber stores v in dst when it is a non-negative number.
func setNumber(dst *int64, v gjson.Result) {
	if v.Type != gjson.Number {
		return
	}
	if n := v.Int(); n >= 0 {
		*dst = n
	}
}
