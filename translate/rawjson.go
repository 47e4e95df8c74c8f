package translate

import (
	"bytes"
	"slices"
	"strconv"
	"unsafe"

	"github.com/tidwall/gjson"

	"switchyard/internal/jsonstr"
)

// A request body has been found to be JSON and UTF-8 before it reaches a
// translator (package doc), so reading it needs no more than each value's
// extent, and its strings can go on as the client escaped them: an
// agent's conversation is nearly all text, and decoding every string to
// encode it again was most of a translation's time. The functions here
// read raw values: a value's bytes as they stand in the body.

// skipSpace is the index of the first byte of b at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// stringEnd is the index after the closing quote of the string whose
// opening quote is b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		backslashes := 0
		for k := i - 1; b[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return i + 1
		}
	}
	return len(b)
}

// valueEnd is the index after the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
		i++
	}
	return i
}

// kind is the first byte of raw, which says what it is: '{', '[', '"',
// 't', 'f', 'n', or a number's first character; 0 for nothing.
func kind(raw []byte) byte {
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// ends is where the arrays, objects and long strings of one body end,
// found in one pass: a reader that goes down the body level by level finds
// each value's end here rather than reading the value again at each level
// (an agent's text would be read five times on its way down).
type ends struct {
	body       []byte
	start, end []int32 // by start
	next       int     // in start: where find looks first
}

// longString is the shortest string ends keeps.
const longString = 32

// endsOf indexes body.
func endsOf(body []byte) *ends {
	e := &ends{body: body}
	var open []int // in e.start: the arrays and objects not closed yet
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			j := stringEnd(body, i)
			if j-i >= longString {
				e.start, e.end = append(e.start, int32(i)), append(e.end, int32(j))
			}
			i = j - 1
		case '{', '[':
			open = append(open, len(e.start))
			e.start, e.end = append(e.start, int32(i)), append(e.end, 0)
		case '}', ']':
			if n := len(open); n > 0 {
				e.end[open[n-1]], open = int32(i+1), open[:n-1]
			}
		}
	}
	return e
}

// valueEnd is the index after the value that starts at raw[i], raw being
// a piece of e's body (otherwise, or with a nil e, raw is read).
func (e *ends) valueEnd(raw []byte, i int) int {
	if e == nil || i >= len(raw) || raw[i] != '"' && raw[i] != '{' && raw[i] != '[' {
		return valueEnd(raw, i)
	}
	at := cap(e.body) - cap(raw) // raw's offset in the body, if raw is a piece of it
	if at < 0 || at+i >= len(e.body) || &e.body[at+i] != &raw[i] {
		return valueEnd(raw, i)
	}
	if end, ok := e.find(int32(at + i)); ok {
		return int(end) - at
	}
	return valueEnd(raw, i)
}

// find is the end of the value indexed at pos. A reader goes on in the
// body's order, mostly: the entry after the last one found is tried first.
func (e *ends) find(pos int32) (int32, bool) {
	k := e.next
	for n := 0; k < len(e.start) && e.start[k] < pos && n < 4; n++ {
		k++
	}
	if k >= len(e.start) || e.start[k] < pos || k > 0 && e.start[k-1] >= pos {
		k, _ = slices.BinarySearch(e.start, pos)
	}
	e.next = k
	if k < len(e.start) && e.start[k] == pos && e.end[k] > 0 {
		e.next = k + 1
		return e.end[k], true
	}
	return 0, false
}

// members calls f with the name and raw value of each member of the object
// raw, in order, until f refuses one. raw must be an object (kind '{').
func (e *ends) members(raw []byte, f func(name string, v []byte) *Error) *Error {
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] == '"' {
		k := stringEnd(raw, i)
		name := text(raw[i:k])
		i = skipSpace(raw, skipSpace(raw, k)+1) // past the colon
		end := e.valueEnd(raw, i)
		if end <= i {
			return nil // not JSON: the caller's to refuse (package doc)
		}
		if err := f(name, raw[i:end]); err != nil {
			return err
		}
		if i = skipSpace(raw, end); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return nil
}

// take sets *into[i] to the raw value of the member names[i] of the object
// raw (the last of a name given twice); what raw does not hold, or all of
// it when raw is not an object, is left as it is.
func (e *ends) take(raw []byte, names []string, into ...*[]byte) {
	if kind(raw) != '{' {
		return
	}
	e.members(raw, func(name string, v []byte) *Error {
		if i := slices.Index(names, name); i >= 0 {
			*into[i] = v
		}
		return nil
	})
}

// takeFields is take with null taken as the member left out.
func (e *ends) takeFields(raw []byte, names []string, into ...*[]byte) {
	e.take(raw, names, into...)
	for _, p := range into {
		if kind(*p) == 'n' {
			*p = nil
		}
	}
}

// elements calls f with each element of the array raw, in order, until f
// refuses one. raw must be an array (kind '[').
func (e *ends) elements(raw []byte, f func(i int, v []byte) *Error) *Error {
	i := skipSpace(raw, 1)
	for n := 0; i < len(raw) && raw[i] != ']'; n++ {
		end := e.valueEnd(raw, i)
		if end <= i {
			return nil // not JSON: the caller's to refuse (package doc)
		}
		if err := f(n, raw[i:end]); err != nil {
			return err
		}
		if i = skipSpace(raw, end); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return nil
}

// text is the string raw decoded; "" for anything else (null included).
// A string without escapes is read in place, which the body outlives.
func text(raw []byte) string {
	if kind(raw) != '"' || len(raw) < 2 {
		return ""
	}
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') < 0 {
		return inPlace(in)
	}
	return gjson.Parse(inPlace(raw)).String()
}

// inPlace is b as a string that shares its bytes: b must not change while
// the string is in use (a request body does not, while it is translated).
func inPlace(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// isNumber reports whether raw is a number.
func isNumber(raw []byte) bool { c := kind(raw); return c == '-' || '0' <= c && c <= '9' }

// isInteger reports whether raw is a whole number an int64 holds.
func isInteger(raw []byte) bool {
	_, err := strconv.ParseInt(inPlace(raw), 10, 64)
	return err == nil
}

// stringOrNull reports whether raw is a string or null, what a field the
// translators read as text may be.
func stringOrNull(raw []byte) bool { return kind(raw) == '"' || kind(raw) == 'n' || kind(raw) == 0 }

// appendInner appends the string raw as it would stand between quotes:
// as the client escaped it, except that a string escaping half of a
// surrogate pair is decoded and encoded again, so that a lone half becomes
// U+FFFD as it did for every JSON library, and two strings put together
// cannot make a pair neither held.
func appendInner(dst, raw []byte) []byte {
	if kind(raw) != '"' || len(raw) < 2 {
		return dst
	}
	in := raw[1 : len(raw)-1]
	if !escapesSurrogate(in) {
		return append(dst, in...)
	}
	return jsonstr.AppendEscaped(dst, gjson.Parse(inPlace(raw)).String())
}

// escapesSurrogate reports whether in, a string's escaped bytes, may hold
// \uD800 to \uDFFF: whether it holds \ud or \uD (an escaped backslash
// before "ud" too, which only costs a decoding).
func escapesSurrogate(in []byte) bool {
	for {
		j := bytes.Index(in, []byte(`\u`))
		if j < 0 || j+2 >= len(in) {
			return false
		}
		if in[j+2]|0x20 == 'd' {
			return true
		}
		in = in[j+2:]
	}
}

// member appends the member name with the raw value v, unless v is nil.
func member(out []byte, name string, v []byte) []byte {
	if v == nil {
		return out
	}
	return append(append(append(append(out, ',', '"'), name...), '"', ':'), v...)
}

// appendText appends the string raw as a JSON string (appendInner).
func appendText(dst, raw []byte) []byte {
	return append(appendInner(append(dst, '"'), raw), '"')
}

// appendJoined appends texts (raw strings) as one string, sep (escaped)
// between them.
func appendJoined(dst []byte, texts [][]byte, sep string) []byte {
	dst = append(dst, '"')
	for i, t := range texts {
		if i > 0 {
			dst = append(dst, sep...)
		}
		dst = appendInner(dst, t)
	}
	return append(dst, '"')
}

// appendStrings appends the array of strings raw (appendText each).
func appendStrings(dst, raw []byte) []byte {
	dst = append(dst, '[')
	(*ends)(nil).elements(raw, func(i int, v []byte) *Error {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendText(dst, v)
		return nil
	})
	return append(dst, ']')
}

// appendValueAsString appends the JSON value raw, without its spaces, as
// a JSON string: an Anthropic tool call's input as OpenAI's arguments.
// Nothing gives "{}".
func appendValueAsString(dst, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, `"{}"`...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case ' ', '\n', '\r', '\t':
			i++
		case '"':
			end := stringEnd(raw, i)
			dst = appendQuoted(dst, raw[i:end])
			i = end
		default:
			dst = append(dst, c)
			i++
		}
	}
	return append(dst, '"')
}

// appendQuoted appends s with a backslash before each quote and backslash.
func appendQuoted(dst, s []byte) []byte {
	for {
		k := bytes.IndexAny(s, `"\`)
		if k < 0 {
			return append(dst, s...)
		}
		dst = append(append(dst, s[:k]...), '\\', s[k])
		s = s[k+1:]
	}
}
