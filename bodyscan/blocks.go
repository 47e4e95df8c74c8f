//go:build goexperiment.simd && amd64

package bodyscan

import (
	"math/bits"
	"simd/archsimd"
)

// blockScan: strings are read from 64-byte blocks' masks (the build has
// GOEXPERIMENT=simd and the CPU has AVX2, AVX-512 and AVX-512 VBMI).
var blockScan = vectorScan && archsimd.X86.AVX512() && archsimd.X86.AVX512VBMI()

// blockBytes are the bytes a block is compared with, loaded from memory
// rather than broadcast for each block.
var blockBytes = struct {
	quote, backslash, space [64]uint8
	// escapes has 0xff for the characters a backslash escapes on its
	// own, indexed by ASCII code.
	escapes [128]uint8
}{quote: fill('"'), backslash: fill('\\'), space: fill(0x20), escapes: oneCharTable()}

func fill(c uint8) (v [64]uint8) {
	for i := range v {
		v[i] = c
	}
	return v
}

func oneCharTable() (t [128]uint8) {
	for c := range t {
		if simpleEscape[c] {
			t[c] = 0xff
		}
	}
	return t
}

// block is what a string scan needs of the 64 bytes of a body at offset
// at, as bit masks (bit j: the byte at+j).
type block struct {
	at int // -1: none yet
	// quote marks the quotes no backslash escapes: a string's end.
	quote uint64
	// backslash marks every backslash (a key with one is unescaped).
	backslash uint64
	// stop marks the bytes the scalar scan must judge: control
	// characters, non-ASCII but the UTF-8 the block holds whole
	// (utf8Passable), and the backslash of an escape that is not one of
	// the one-character escapes, whose character is a stop itself or is
	// in the next block.
	stop uint64
	// carry: the next block's first byte is escaped.
	carry uint64
}

// load reads the block of b that holds b[i], for a string read from b[i]
// (inside it, not inside an escape; the bytes past b's end read as zeros,
// control characters, so a string never ends there). Escapes carry over
// from the block before when it was the last one read: a string that goes
// on past a block's end reads the next block right after it, from its
// first byte. Otherwise no escape runs into b[i]: the backslashes before
// it are not counted (a string starts after its opening quote, or goes on
// in a new piece of a Stream after an escape).
func (k *block) load(b []byte, i int) {
	at := i &^ 63
	var v archsimd.Uint8x64
	if at+64 <= len(b) {
		v = archsimd.LoadUint8x64Slice(b[at:])
	} else {
		v = archsimd.LoadUint8x64SlicePart(b[at:])
	}
	var carry uint64
	if at == k.at+64 {
		carry = k.carry
	}
	c := &blockBytes
	quote := v.Equal(archsimd.LoadUint8x64(&c.quote)).ToBits()
	e := v.Equal(archsimd.LoadUint8x64(&c.backslash)).ToBits() & (^uint64(0) << (i & 63))
	// Signed, non-ASCII bytes are below 0x20 too.
	stop := v.AsInt8x64().Less(archsimd.LoadUint8x64(&c.space).AsInt8x64()).ToBits()
	k.at, k.backslash, k.carry = at, e, 0
	if e|carry != 0 {
		var esc uint64
		esc, k.carry = escapedBy(e, carry)
		quote &^= esc
		// An escaped control or non-ASCII byte, a stop itself, is
		// judged at its backslash.
		stop |= (esc&(^oneCharEscapes(v)|stop))>>1 | k.carry<<63
	}
	if stop != 0 {
		if high := v.AsInt8x64().Less(archsimd.Int8x64{}).ToBits(); high != 0 {
			stop &^= utf8Passable(v, high)
		}
	}
	k.quote, k.stop = quote, stop
}

// oneCharEscapes marks the bytes of v a backslash escapes on its own
// (looked up by their low seven bits: a non-ASCII byte may be marked).
func oneCharEscapes(v archsimd.Uint8x64) uint64 {
	t := &blockBytes.escapes
	lo := archsimd.LoadUint8x64((*[64]uint8)(t[:64]))
	hi := archsimd.LoadUint8x64((*[64]uint8)(t[64:]))
	return lo.ConcatPermute(hi, v).NotEqual(archsimd.Uint8x64{}).ToBits()
}

// strBlocks reads a string from b[i] (inside it, not inside an escape)
// with the blocks' masks. done: the string ends at end (after its closing
// quote); otherwise end is the first byte the scalar scan must judge, not
// inside an escape, or len(b). escaped: a backslash came before end.
func (s *Result) strBlocks(b []byte, i int) (end int, escaped, done bool) {
	k := &s.blk
	for {
		at := i &^ 63
		if at != k.at {
			k.load(b, i)
		}
		from := ^uint64(0) << (i & 63)
		q, st := k.quote&from, k.stop&from
		if q != 0 && (st == 0 || q&-q < st&-st) {
			p := bits.TrailingZeros64(q)
			return at + p + 1, escaped || k.backslash&from&(1<<p-1) != 0, true
		}
		if st != 0 {
			p := bits.TrailingZeros64(st)
			return at + p, escaped || k.backslash&from&(1<<p-1) != 0, false
		}
		escaped = escaped || k.backslash&from != 0
		if i = at + 64; i >= len(b) {
			return len(b), escaped, false
		}
	}
}

// strCached ends a string from b[i] (inside it, not inside an escape)
// when the last block read holds its closing quote and no stop before
// it; ok false: the caller reads it with str.
func (s *Result) strCached(i int) (end int, escaped, ok bool) {
	k := &s.blk
	from := ^uint64(0) << (i & 63)
	before := k.quote&from&-(k.quote&from) - 1 // the bits below the closing quote
	if i&^63 != k.at || before == ^uint64(0) || k.stop&from&before != 0 {
		return 0, false, false
	}
	return k.at + bits.OnesCount64(before) + 1, k.backslash&from&before != 0, true
}
