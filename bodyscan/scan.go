// Package bodyscan reads a request body once: it validates it (JSON, UTF-8,
// nesting) and finds the top-level members the gateway plans with, in
// place. extproc reads bodies with it (processor.readBody), and so does
// Envoy's body module (cmd/bodymodule), which summarizes a body for
// extproc (Summary).
package bodyscan

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Result is what one pass over a request body finds: whether it is valid
// JSON (RFC 8259, as encoding/json.Valid judges it), valid UTF-8 and nested
// no deeper than MaxNesting, and where the top-level fields the gateway
// reads are. It reads the body in place: no copy, no buffer, nothing
// allocated (an escaped key, "mod\u0065l", is unescaped to compare it).
//
// Of a field named more than once the last copy is kept, as a reader that
// walks the object and overwrites does; "model" is counted so that a body
// naming it twice can be refused, and so is any key the scan reads that
// the body names twice or in another case (Ambiguous).
type Result struct {
	Verdict Verdict
	BadUTF8 bool // a string holds bytes that are not UTF-8 (the JSON is otherwise judged)
	Object  bool // the top-level value is an object
	Models  int  // top-level "model" keys

	Model, Metadata, PromptCacheKey, Messages, Input Span
	// MessagesLast and InputLast are the last element of messages and
	// input when they are arrays, MessagesPrev and InputPrev the one
	// before it (the loop guard's fingerprint).
	MessagesLast, InputLast Span
	MessagesPrev, InputPrev Span
	Stream                  bool // top-level "stream" is true
	StreamNotBool           bool // top-level "stream" is neither a boolean nor null
	IncludeUsage            bool // the first "include_usage" of "stream_options" is true
	Background              bool // top-level "background" is true (the Responses API)

	// ambiguous is the first key the scan reads that the body names twice
	// or in another case; fieldOther: none.
	ambiguous topField

	mode scanMode
	blk  block // the last block read (blockStrings), in the piece being read
	more bool  // another piece follows the one being read (Stream)
	// utf8Broken: the AVX2 scan (vectorStrings) met bytes that are not
	// UTF-8, so the body is refused, and it no longer passes non-ASCII.
	utf8Broken bool
}

// Ambiguous names the first key the scan reads ("model", "stream",
// "stream_options.include_usage", ...) that the body names more than once,
// or also in another case; "" when there is none. A provider may read
// another copy than the gateway: most JSON readers keep a key's last copy,
// and Go's encoding/json also takes a key in any case ("Model",
// "\u017ftream"). So a body could have the gateway check one model, or
// count one stream's usage, and the provider run another.
func (r Result) Ambiguous() string { return keyNames[r.ambiguous] }

// Span is a value's bytes in the body, [Start, End); End 0: absent.
type Span struct{ Start, End int }

// OK reports whether the value is present.
func (s Span) OK() bool { return s.End > 0 }

// Verdict is what the scan judged the body to be.
type Verdict uint8

const (
	Valid  Verdict = iota // JSON, nesting no deeper than MaxNesting
	Syntax                // not JSON
	Deep                  // a valid prefix nests deeper than MaxNesting
)

// MaxNesting bounds how deep arrays and objects may nest.
const MaxNesting = 256

// topField is a top-level key the gateway reads.
type topField uint8

const (
	fieldOther topField = iota
	fieldModel
	fieldMetadata
	fieldPromptCacheKey
	fieldMessages
	fieldInput
	fieldStream
	fieldStreamOptions
	fieldBackground
	// fieldIncludeUsage is no top-level member: stream_options'
	// include_usage, for Ambiguous.
	fieldIncludeUsage
)

// keyNames are the fields' names.
var keyNames = [...]string{fieldModel: "model", fieldMetadata: "metadata", fieldPromptCacheKey: "prompt_cache_key",
	fieldMessages: "messages", fieldInput: "input", fieldStream: "stream", fieldStreamOptions: "stream_options",
	fieldBackground: "background", fieldIncludeUsage: "stream_options.include_usage"}

// foldNames are keyNames as bytes, for foldsTo.
var foldNames = func() (b [len(keyNames)][]byte) {
	for i, n := range keyNames {
		b[i] = []byte(n)
	}
	return b
}()

// foldsTo is the top-level field whose name k equals ignoring case as Go's
// encoding/json matches keys (bytes.EqualFold: "\u017f" is an "s"), or
// fieldOther. Most keys are told apart by their first byte, and an ASCII
// key by its length.
func foldsTo(k []byte) topField {
	if len(k) == 0 {
		return fieldOther
	}
	switch k[0] | 0x20 {
	case 'm', 's', 'p', 'i', 'b':
	default:
		if k[0] < utf8.RuneSelf {
			return fieldOther
		}
	}
	ascii := true
	for _, c := range k {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	for f := fieldModel; f <= fieldBackground; f++ {
		if (!ascii || len(k) == len(foldNames[f])) && bytes.EqualFold(k, foldNames[f]) {
			return f
		}
	}
	return fieldOther
}

func classify(k []byte) topField {
	switch string(k) {
	case "model":
		return fieldModel
	case "metadata":
		return fieldMetadata
	case "prompt_cache_key":
		return fieldPromptCacheKey
	case "messages":
		return fieldMessages
	case "input":
		return fieldInput
	case "stream":
		return fieldStream
	case "stream_options":
		return fieldStreamOptions
	case "background":
		return fieldBackground
	}
	return fieldOther
}

// keyName is a key's name: its bytes between the quotes, unescaped when it
// has escapes (raw includes the quotes).
func keyName(raw []byte, escaped bool) []byte {
	if !escaped {
		return raw[1 : len(raw)-1]
	}
	return []byte(gjson.ParseBytes(raw).Str)
}

// scanMode is how a scan reads strings.
type scanMode uint8

const (
	scalarStrings scanMode = iota // eight bytes at a time
	vectorStrings                 // with AVX2 vectors (skipVector)
	blockStrings                  // from 64-byte blocks' masks, with AVX-512 (strBlocks)
)

func skipSpace(b []byte, i int) int {
	// Every space is at most ' ', and most bodies have none between tokens.
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plain flags (high bit of each byte) the bytes of x a string scan must
// look at: '"', '\\', control characters and non-ASCII. The lowest flag is
// exact; flags above it may be spurious. For an ASCII byte, adding 0x60
// sets its high bit unless it is a control character, and adding 0x7f to
// its XOR with '"' (or '\\') unless it is that character; no sum carries
// into the next byte. Only a non-ASCII byte, flagged itself, can carry,
// and only upwards.
func plain(x uint64) uint64 {
	q := (x ^ (ones * '"')) + ones*0x7f
	e := (x ^ (ones * '\\')) + ones*0x7f
	c := x + ones*0x60
	return (x | ^(q & e & c)) & highs
}

// str scans a string whose opening quote is at b[i-1]; it returns the index
// after the closing quote and whether the string has escapes. Bytes that
// are not UTF-8 set s.BadUTF8 and do not end the scan, so that a body
// that is also not JSON is refused as such.
func (s *Result) str(b []byte, i int) (end int, escaped, ok bool) {
	n := len(b)
	for {
		if s.mode == blockStrings {
			var esc, done bool
			i, esc, done = s.strBlocks(b, i)
			if escaped = escaped || esc; done {
				return i, escaped, true
			}
		} else {
			i, escaped = s.skipPlain(b, i, escaped)
		}
		if i >= n {
			return i, escaped, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= n {
				return i, escaped, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if n-i < 6 || !hex4(b[i+2:i+6]) {
					return i, escaped, false
				}
				i += 6
			default:
				return i, escaped, false
			}
		case c < 0x20:
			return i, escaped, false
		case c < utf8.RuneSelf:
			i++
		default:
			if s.mode == scalarStrings {
				if j := passSequences(b, i); j > i {
					i = j
					continue
				}
			}
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				if s.more && !utf8.FullRune(b[i:]) {
					return i, escaped, false // cut by the piece's end
				}
				s.BadUTF8 = true
			}
			i += size
		}
	}
}

// skipPlain returns the index of the first byte from b[i] (inside a
// string, not inside an escape) that a string scan must judge, and whether
// it passed an escape (escaped is what it had passed before): eight bytes
// (where most keys end), then with vectors where the build and the CPU
// can (skipVector, which also passes UTF-8 until it meets bytes that are
// not), then eight at a time.
func (s *Result) skipPlain(b []byte, i int, escaped bool) (int, bool) {
	vector := s.mode == vectorStrings
	passUTF8 := vector && !s.utf8Broken
	if i+8 <= len(b) {
		if m := plain(binary.LittleEndian.Uint64(b[i:])); m == 0 {
			i += 8
		} else if p := i + bits.TrailingZeros64(m)>>3; !passUTF8 || b[p] < utf8.RuneSelf {
			return p, escaped
		}
		// Non-ASCII goes to the vectors, which check its UTF-8.
	}
	if vector {
		var stopped, broken bool
		i, escaped, stopped, broken = skipVector(b, i, escaped, passUTF8)
		s.utf8Broken = s.utf8Broken || broken
		if stopped {
			return i, escaped
		}
	}
	for i+8 <= len(b) {
		if m := plain(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3, escaped
		}
		i += 8
	}
	return i, escaped
}

// passSequences returns the index of the first byte from b[i] that is
// ASCII or does not start a whole, valid UTF-8 sequence: the scalar scan's
// way through text in other scripts, mostly two bytes a character
// (Cyrillic, Greek, Arabic, Hebrew) or three (Chinese, Japanese, Korean),
// which it would otherwise judge a character at a time.
func passSequences(b []byte, i int) int {
	for i < len(b) && b[i] >= utf8.RuneSelf {
		c := b[i]
		// The leads whose every continuation byte is allowed next.
		if 0xc2 <= c && c <= 0xdf && i+1 < len(b) && b[i+1]&0xc0 == 0x80 {
			i += 2
			continue
		}
		if 0xe1 <= c && c <= 0xef && c != 0xed && i+2 < len(b) && b[i+1]&0xc0 == 0x80 && b[i+2]&0xc0 == 0x80 {
			i += 3
			continue
		}
		// The rest, and a sequence cut by b's end or broken, which the
		// caller judges.
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return i
}

func hex4(h []byte) bool {
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
