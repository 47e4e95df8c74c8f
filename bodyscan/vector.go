//go:build goexperiment.simd && amd64

package bodyscan

import (
	"math/bits"
	"simd/archsimd"
)

// vectorScan: strings are skipped 64 bytes at a time with AVX2 (the build
// has GOEXPERIMENT=simd, as the Makefile sets, and the CPU has AVX2).
var vectorScan = archsimd.X86.AVX2()

// evenBits are the even positions of a 64-bit mask.
const evenBits = 0x5555555555555555

// simpleEscape holds the characters a backslash escapes on its own: every
// JSON escape but \u, which has four hex digits to check.
var simpleEscape = [256]bool{'"': true, '\\': true, '/': true, 'b': true, 'f': true, 'n': true, 'r': true, 't': true}

// skipVector skips, from b[i] (inside a string, not inside an escape, where
// a UTF-8 sequence may start), the bytes a string scan need not stop at:
// ASCII other than '"', '\\' and control characters, escapes of one
// character and, with passUTF8, the UTF-8 of 64 bytes that hold no broken
// sequence, 64 bytes at a time. It returns the index of the first byte the
// scalar scan must judge (a closing quote, a control character, other
// non-ASCII, a \u or invalid escape, a run of backslashes reaching the
// block's end), whether it passed a backslash, false when fewer than 64
// bytes were left to read, and whether it met bytes that are not UTF-8
// (the body is then refused: the scan need not pass UTF-8 in it again).
//
// Within a block, the characters escaped are found as a JSON scanner with
// SIMD does: a run of backslashes escapes the character after it when the
// run's length is odd.
func skipVector(b []byte, i int, escaped, passUTF8 bool) (int, bool, bool, bool) {
	quote := archsimd.BroadcastUint8x32('"')
	backslash := archsimd.BroadcastUint8x32('\\')
	space := archsimd.BroadcastInt8x32(0x20)
	// Most strings end within 32 bytes: one look finds where, unless a
	// backslash comes first.
	if i+32 <= len(b) {
		v := archsimd.LoadUint8x32Slice(b[i:])
		stop := v.Equal(quote).Or(v.Equal(backslash)).Or(v.AsInt8x32().Less(space)).ToBits()
		if stop == 0 {
			i += 32
		} else if p := i + bits.TrailingZeros32(stop); b[p] != '\\' && (b[p] < 0x80 || !passUTF8) {
			return p, escaped, true, false
		}
	}
	for i+64 <= len(b) {
		lo := archsimd.LoadUint8x32Slice(b[i:])
		hi := archsimd.LoadUint8x32Slice(b[i+32:])
		q := uint64(lo.Equal(quote).ToBits()) | uint64(hi.Equal(quote).ToBits())<<32
		e := uint64(lo.Equal(backslash).ToBits()) | uint64(hi.Equal(backslash).ToBits())<<32
		// Signed, non-ASCII bytes are below 0x20 too.
		stop := q | uint64(lo.AsInt8x32().Less(space).ToBits()) | uint64(hi.AsInt8x32().Less(space).ToBits())<<32
		broken := false
		if passUTF8 && stop != 0 {
			if high := ^greater(lo.AsInt8x32(), hi.AsInt8x32(), -1); high != 0 {
				pass, ok := utf8Passable32(lo, hi, high)
				stop &^= pass
				broken = !ok
			}
		}
		if e != 0 {
			stop = escapeStops(b[i:i+64], q, e, stop)
			escaped = escaped || e&(stop&-stop-1) != 0
		}
		if stop != 0 {
			return i + bits.TrailingZeros64(stop), escaped, true, broken
		}
		i += 64
	}
	return i, escaped, false, false
}

// escapeStops refines a block's stops (quotes, control characters and
// non-ASCII) by its backslashes e: an escaped quote does not end the
// string, an escape of more than one character (or none) is left to the
// scalar scan at its backslash, and so is a run of backslashes reaching the
// block's end, whose escaped character is in the next block.
func escapeStops(block []byte, q, e, stop uint64) uint64 {
	if e>>63 != 0 {
		start := 64 - bits.LeadingZeros64(^e)
		stop |= 1 << start
		e &^= ^uint64(0) << start
	}
	esc, _ := escapedBy(e, 0)
	stop &^= q & esc
	// The escapes up to the first stop are judged (that stop may be an
	// escaped character).
	for m := esc & (stop ^ (stop - 1)); m != 0; m &= m - 1 {
		if p := bits.TrailingZeros64(m); !simpleEscape[block[p]] {
			return stop | 1<<(p-1)
		}
	}
	return stop
}

// escapedBy marks the characters the backslashes e escape, carry the
// first (escaped by the block before), and returns whether the next
// block's first is: in a run of backslashes every second one escapes the
// character after it, counted from the run's start.
func escapedBy(e, carry uint64) (escaped, next uint64) {
	e &^= carry
	follows := e<<1 | carry
	oddStarts := e &^ evenBits &^ follows
	sum, next := bits.Add64(oddStarts, e, 0)
	return (evenBits ^ sum<<1) & follows, next
}

// greater marks the bytes of the window lo, hi (as signed bytes) greater
// than bound.
func greater(lo, hi archsimd.Int8x32, bound int8) uint64 {
	b := archsimd.BroadcastInt8x32(bound)
	return uint64(lo.Greater(b).ToBits()) | uint64(hi.Greater(b).ToBits())<<32
}

// equal marks the bytes of the window lo, hi equal to c.
func equal(lo, hi archsimd.Uint8x32, c uint8) uint64 {
	b := archsimd.BroadcastUint8x32(c)
	return uint64(lo.Equal(b).ToBits()) | uint64(hi.Equal(b).ToBits())<<32
}

// utf8Passable32 marks the non-ASCII bytes of the window lo, hi (high)
// that a string scan may pass (utf8Pass), with AVX2's signed compares: a
// byte from 0x80 on is negative, 0xC0 is -64.
func utf8Passable32(lo, hi archsimd.Uint8x32, high uint64) (uint64, bool) {
	sl, sh := lo.AsInt8x32(), hi.AsInt8x32()
	return utf8Pass(high,
		high&greater(sl, sh, -65), high&greater(sl, sh, -33), high&greater(sl, sh, -17), // lead2, lead3, lead4
		high&greater(sl, sh, -63), high&greater(sl, sh, -12), // lead2OK, noLead
		equal(lo, hi, 0xe0), equal(lo, hi, 0xed), equal(lo, hi, 0xf0), equal(lo, hi, 0xf4),
		^high|^greater(sl, sh, -113), ^high|^greater(sl, sh, -97)) // below90, belowA0
}
