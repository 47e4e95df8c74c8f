package bodyscan

import "bytes"

// Scan scans body once; see Result.
func Scan(body []byte) Result { return scanWith(body, blockStrings) }

// scanWith is Scan reading strings as mode says, or the nearest way the
// build and the CPU have.
func scanWith(body []byte, mode scanMode) Result {
	s := Stream{begun: true}
	s.mode = bestMode(mode)
	s.feed(body, false)
	return s.Result
}

func bestMode(mode scanMode) scanMode {
	if mode == blockStrings && !blockScan {
		mode = vectorStrings
	}
	if mode == vectorStrings && !vectorScan {
		mode = scalarStrings
	}
	return mode
}

// Stream scans a body written to it in pieces, as Envoy receives it: End
// gives what Scan gives for the pieces put together, without putting them
// together or keeping them (Spans are the body's offsets). Of a token that
// a piece's end cuts, a Stream keeps what it must to judge it: a literal's
// progress, a number's state, at most five bytes of an escape or a UTF-8
// sequence, and a key's bytes up to the length of the longest key it reads.
//
// The zero Stream is ready. A Stream holds no pointers, so it may live in
// memory that Go does not manage (Envoy's body module keeps one per
// request there).
type Stream struct {
	Result
	begun bool
	at    resume // where the next piece goes on
	base  int    // the body's offset of the piece being read

	depth int
	// objects has bit d set when the container at depth d is an object,
	// clear for an array.
	objects        [MaxNesting/64 + 1]uint64
	field          topField // the top-level member being read
	start1, start2 int      // where the depth-1 and depth-2 values being read start
	first1, first2 byte     // and their first bytes
	usage          bool     // the depth-2 value being read is stream_options.include_usage
	usageOK        bool     // this stream_options has had its include_usage
	seen           uint16   // the top-level fields named so far, a bit each

	escaped bool         // the key being read has an escape
	lit     uint8        // the literal being read (literals), litN bytes of it so far
	litN    uint8        //
	num     numState     // the number being read
	cut     [5]byte      // an escape or UTF-8 sequence the last piece's end cut
	cutN    uint8        //
	key     [maxKey]byte // the key being read, from its opening quote, when a piece's end cut it
	keyN    int          // its length so far (over maxKey: longer than any key that counts)
}

// maxKey is the longest key, with its quotes, that can name a member the
// scan reads: "prompt_cache_key" with every letter escaped as \uXXXX is 98.
const maxKey = 128

// resume is where a scan goes on when a piece's end stopped it.
type resume uint8

const (
	atValue       resume = iota // a value starts (after spaces)
	atOpen                      // after a container's '{' or '['
	atSep                       // after a value inside a container: ',' or its end
	atKey                       // a key starts (after spaces)
	atColon                     // after a key
	atEnd                       // after the top-level value: spaces only
	atValueString               // inside a value's string
	atKeyString                 // inside a key
	atLiteral                   // inside true, false or null
	atNumber                    // inside a number
	atDone                      // judged: Syntax or Deep
)

// Write scans the next piece of the body.
func (s *Stream) Write(piece []byte) { s.feed(piece, true) }

// End ends the body and returns what the scan found.
func (s *Stream) End() Result {
	s.feed(nil, false)
	return s.Result
}

// Len is how many bytes have been written, up to the piece in which the
// scan refused the body, if it has.
func (s *Stream) Len() int { return s.base }

// feed scans b, the body's next piece; more: another piece follows.
func (s *Stream) feed(b []byte, more bool) {
	if !s.begun {
		s.begun, s.mode = true, bestMode(blockStrings)
	}
	if s.at == atDone {
		return
	}
	s.more, s.blk = more, block{at: -1}
	n := len(b)
	var (
		i        int
		end      int
		c        byte
		esc, ok  bool
		keyStart int // where the key being read starts in b; -1: in s.key
		depth    = s.depth
		inObject = s.inObject(depth) // the container at depth is an object
	)
	switch s.at {
	case atValue:
		i = skipSpace(b, 0)
		goto value
	case atOpen:
		goto open
	case atSep:
		goto sep
	case atKey:
		i = skipSpace(b, 0)
		goto key
	case atColon:
		goto colon
	case atEnd:
		goto top
	case atLiteral:
		goto literal
	case atNumber:
		goto number
	}
	// Inside a string.
	keyStart = -1
	if s.cutN > 0 {
		if i, ok = s.finishCut(b); !ok {
			s.fail(Syntax)
			return
		}
		if s.cutN > 0 { // b ended inside the sequence too
			if s.at == atKeyString {
				s.keepKey(b)
			}
			goto out
		}
	}
	if s.at == atKeyString {
		goto keyString
	}
	goto valueString

value: // a value starts at b[i]
	if i >= n {
		s.at = atValue
		goto out
	}
	c = b[i]
	if depth <= 2 {
		s.valueStarts(depth, s.base+i, c)
	}
	switch c {
	case '{', '[':
		if depth++; depth > MaxNesting {
			s.fail(Deep)
			return
		}
		i++
		if inObject = c == '{'; inObject {
			s.objects[depth>>6] |= 1 << (depth & 63)
		} else {
			s.objects[depth>>6] &^= 1 << (depth & 63)
		}
		goto open
	case '"':
		if end, _, ok = s.strCached(i + 1); ok {
			i = end
			goto after
		}
		i++
		goto valueString
	case 't', 'f', 'n':
		s.lit, s.litN = literalOf(c), 0
		goto literal
	}
	s.num = numStart
	goto number

open: // a container's '{' or '[' ends before b[i]
	i = skipSpace(b, i)
	if i >= n {
		s.at = atOpen
		goto out
	}
	if c := b[i]; inObject && c == '}' || !inObject && c == ']' {
		i++
		depth--
		inObject = s.inObject(depth)
		goto after
	}
	if inObject {
		goto key
	}
	goto value

valueString: // b[i] is inside a value's string, not inside an escape
	if end, _, ok = s.str(b, i); !ok {
		if s.cutAt(b, end) {
			s.at = atValueString
			goto out
		}
		s.fail(Syntax)
		return
	}
	i = end
	goto after

literal: // b[i] goes on with the literal being read
	for word := literals[s.lit]; int(s.litN) < len(word); s.litN++ {
		if i >= n {
			if more {
				s.at = atLiteral
				goto out
			}
			s.fail(Syntax)
			return
		}
		if b[i] != word[s.litN] {
			s.fail(Syntax)
			return
		}
		i++
	}
	goto after

number: // b[i] goes on with the number being read
	if i, s.num = number(b, i, s.num); i >= n && more {
		s.at = atNumber
		goto out
	}
	if !s.num.complete() {
		s.fail(Syntax)
		return
	}

after: // a value inside depth containers ends before b[i]
	if depth <= 2 {
		if depth == 0 {
			goto top
		}
		s.valueEnds(depth, s.base+i)
	}

sep: // after a value inside a container
	if i = skipSpace(b, i); i >= n {
		s.at = atSep
		goto out
	}
	switch c := b[i]; {
	case c == ',':
		i = skipSpace(b, i+1)
		if inObject {
			goto key
		}
		goto value
	case inObject && c == '}', !inObject && c == ']':
		i++
		depth--
		inObject = s.inObject(depth)
		goto after
	}
	s.fail(Syntax)
	return

key: // an object's key starts at b[i]
	if i >= n {
		s.at = atKey
		goto out
	}
	if b[i] != '"' {
		s.fail(Syntax)
		return
	}
	keyStart = i
	if end, s.escaped, ok = s.strCached(i + 1); ok {
		i = end
		goto keyEnd
	}
	i++
	s.escaped = false

keyString: // b[i] is inside a key, not inside an escape
	end, esc, ok = s.str(b, i)
	s.escaped = s.escaped || esc
	if !ok {
		if s.cutAt(b, end) {
			s.keepKey(b[max(keyStart, 0):])
			s.at = atKeyString
			goto out
		}
		s.fail(Syntax)
		return
	}
	i = end

keyEnd: // a key ends before b[i], keyStart where it started
	switch {
	case keyStart < 0:
		s.keepKey(b[:i])
		s.readKey(depth, s.key[:min(s.keyN, maxKey)], s.keyN > maxKey)
		s.keyN = 0
	case depth <= 2: // deeper keys count for nothing
		s.readKey(depth, b[keyStart:i], false)
	}

colon: // after a key
	if i = skipSpace(b, i); i >= n {
		s.at = atColon
		goto out
	}
	if b[i] != ':' {
		s.fail(Syntax)
		return
	}
	i = skipSpace(b, i+1)
	goto value

top: // the top-level value has ended before b[i]
	if skipSpace(b, i) != n {
		s.fail(Syntax)
		return
	}
	s.at = atEnd

out: // b is read
	s.base += n
	s.depth = depth
	switch {
	case more:
	case s.at == atEnd:
		s.Verdict, s.at = Valid, atDone
	default:
		s.fail(Syntax)
	}
}

func (s *Stream) fail(v Verdict) { s.Verdict, s.at = v, atDone }

// valueStarts notes where a value at depth 0, 1 or 2 starts (at, the
// body's offset) and its first byte c.
func (s *Stream) valueStarts(depth, at int, c byte) {
	switch depth {
	case 0:
		s.Object = c == '{'
	case 1:
		s.start1, s.first1 = at, c
	case 2:
		s.start2, s.first2 = at, c
	}
}

// valueEnds notes a value at depth 1 or 2 that ends before the body's
// offset end.
func (s *Stream) valueEnds(depth, end int) {
	if !s.Object {
		return
	}
	if depth == 1 {
		s.record(Span{s.start1, end})
		return
	}
	array := !s.inObject(2)
	switch {
	case s.field == fieldMessages && array:
		s.MessagesPrev, s.MessagesLast = s.MessagesLast, Span{s.start2, end}
	case s.field == fieldInput && array:
		s.InputPrev, s.InputLast = s.InputLast, Span{s.start2, end}
	case s.usage:
		s.IncludeUsage, s.usage = s.first2 == 't', false
	}
}

// inObject reports whether the container at depth is an object.
func (s *Stream) inObject(depth int) bool { return s.objects[depth>>6]&(1<<(depth&63)) != 0 }

// cutAt reports whether a string scan that stopped at b[i] stopped for want
// of the next piece: at b's end, or at an escape or UTF-8 sequence that
// may go on in it, which it then keeps.
func (s *Stream) cutAt(b []byte, i int) bool {
	if !s.more || i+len(s.cut) < len(b) || i < len(b) && b[i] < 0x80 && b[i] != '\\' {
		return false
	}
	s.cutN = uint8(copy(s.cut[:], b[i:]))
	return true
}

// finishCut reads the sequence the last piece's end cut with b's first
// bytes. It returns where in b the string goes on, or, when b ended inside
// the sequence too (cutN > 0 then), len(b). false: the sequence is not
// JSON.
func (s *Stream) finishCut(b []byte) (int, bool) {
	var t [len(s.cut) + 8]byte
	cut := copy(t[:], s.cut[:s.cutN])
	k := copy(t[cut:], b)
	joined := t[:cut+k]
	more := s.more
	s.more = more || k < len(b) // joined's end is not b's
	end, esc, ok := s.str(joined, 0)
	past := ok || end >= cut // past the cut bytes: b goes on from there
	recut := !past && s.cutAt(joined, end)
	s.more, s.blk = more, block{at: -1}
	s.escaped = s.escaped || esc
	switch {
	case past:
		s.cutN = 0
		if ok { // a quote b holds ended the string: read it again in b
			end--
		}
		return end - cut, true
	case recut:
		return len(b), true
	}
	return 0, false
}

// keepKey appends p, the next bytes of a key that a piece's end cuts, to
// s.key; a key longer than maxKey keeps only its length.
func (s *Stream) keepKey(p []byte) {
	if s.keyN < maxKey {
		copy(s.key[s.keyN:], p)
	}
	s.keyN += len(p)
}

// readKey notes the key raw (with its quotes; long: longer than maxKey,
// not kept) of an object at depth where it matters: at the top level, and
// in stream_options.
func (s *Stream) readKey(depth int, raw []byte, long bool) {
	switch {
	case depth == 1 && s.Object:
		s.field = fieldOther
		if !long {
			name := keyName(raw, s.escaped)
			if s.field = classify(name); s.field == fieldOther {
				s.noteAmbiguous(foldsTo(name))
			} else if s.seen&(1<<s.field) != 0 {
				s.noteAmbiguous(s.field)
			}
			s.seen |= 1 << s.field
		}
		switch s.field {
		case fieldModel:
			s.Models++
		case fieldMessages:
			s.MessagesPrev, s.MessagesLast = Span{}, Span{}
		case fieldInput:
			s.InputPrev, s.InputLast = Span{}, Span{}
		case fieldStreamOptions:
			s.IncludeUsage, s.usageOK = false, false
		}
	case depth == 2 && s.field == fieldStreamOptions && !long:
		// The first include_usage decides, as a lookup by name finds it
		// (a second, or one in another case, makes the body ambiguous).
		switch name := keyName(raw, s.escaped); {
		case string(name) == "include_usage" && s.usageOK:
			s.noteAmbiguous(fieldIncludeUsage)
		case string(name) == "include_usage":
			s.usage, s.usageOK = true, true
		case bytes.EqualFold(name, []byte("include_usage")):
			s.noteAmbiguous(fieldIncludeUsage)
		}
	}
}

// noteAmbiguous keeps f as the body's first ambiguous key (fieldOther:
// none here).
func (s *Stream) noteAmbiguous(f topField) {
	if s.ambiguous == fieldOther {
		s.ambiguous = f
	}
}

// record keeps a top-level member's value.
func (s *Stream) record(v Span) {
	switch s.field {
	case fieldModel:
		s.Model = v
	case fieldMetadata:
		s.Metadata = v
	case fieldPromptCacheKey:
		s.PromptCacheKey = v
	case fieldMessages:
		s.Messages = v
	case fieldInput:
		s.Input = v
	case fieldStream:
		s.Stream = s.first1 == 't'
		s.StreamNotBool = s.first1 != 't' && s.first1 != 'f' && s.first1 != 'n'
	case fieldBackground:
		s.Background = s.first1 == 't'
	}
}

// literals are the words a JSON value may be.
var literals = [...]string{"true", "false", "null"}

func literalOf(c byte) uint8 {
	switch c {
	case 't':
		return 0
	case 'f':
		return 1
	}
	return 2
}

// numState is how far a number has been read.
type numState uint8

const (
	numStart   numState = iota // nothing yet
	numMinus                   // '-'
	numZero                    // an integer part "0"
	numInt                     // an integer part from 1 to 9
	numDot                     // '.'
	numFrac                    // a fraction's digits
	numE                       // 'e' or 'E'
	numExpSign                 // the exponent's sign
	numExp                     // the exponent's digits
	numEnded                   // ended (a byte that goes on no number came)
)

// complete reports whether a number read so far is one.
func (st numState) complete() bool {
	return st == numZero || st == numInt || st == numFrac || st == numExp
}

// number reads a number from b[i] on, in state st; it returns where it
// stopped (the number's end, or b's) and the state there.
func number(b []byte, i int, st numState) (int, numState) {
	for ; i < len(b); i++ {
		c := b[i]
		digit := c >= '0' && c <= '9'
		next := numEnded
		switch {
		case st == numStart && c == '-':
			next = numMinus
		case (st == numStart || st == numMinus) && c == '0':
			next = numZero
		case (st == numStart || st == numMinus) && digit, st == numInt && digit:
			next = numInt
		case (st == numZero || st == numInt) && c == '.':
			next = numDot
		case (st == numDot || st == numFrac) && digit:
			next = numFrac
		case (st == numZero || st == numInt || st == numFrac) && (c == 'e' || c == 'E'):
			next = numE
		case st == numE && (c == '+' || c == '-'):
			next = numExpSign
		case (st == numE || st == numExpSign || st == numExp) && digit:
			next = numExp
		}
		if next == numEnded {
			return i, st
		}
		st = next
	}
	return i, st
}
