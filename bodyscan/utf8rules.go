//go:build goexperiment.simd && amd64

package bodyscan

// utf8Pass applies the UTF-8 rules (RFC 3629) to a 64-byte window that
// starts where a sequence may start, given what each of its bytes is as
// bit masks (bit j: byte j), which the AVX2 scan computes with a compare
// each (skipVector; the block scan checks a block's UTF-8 with tables,
// utf8Passable):
//
//   - high, lead2, lead3, lead4: at least 0x80, 0xC0, 0xE0, 0xF0;
//   - lead2OK: at least 0xC2 (0xC0 and 0xC1 lead only overlong forms);
//   - noLead: at least 0xF5 (it would lead code points over U+10FFFF);
//   - e0, ed, f0, f4: the leads whose next byte has a narrower range than
//     0x80..0xBF: E0 (A0..BF), ED (80..9F), F0 (90..BF), F4 (80..8F);
//   - below90, belowA0: less than 0x90, 0xA0.
//
// It marks the non-ASCII bytes a string scan may pass without judging
// them: all of them when every sequence in the window is UTF-8, but a lead
// at the window's end that needs more bytes than the window has. ok false:
// a sequence is not UTF-8, and the scalar scan judges each byte. Bytes
// outside strings count as well: an ASCII byte splits no sequence, and a
// non-ASCII one there is not JSON, which the scan finds at it.
//
// The masks come as arguments, not in a struct: Go clears and copies a
// struct with SSE instructions, which between AVX2 instructions cost a
// transition of the vector registers each on this machine (about 25 ns).
func utf8Pass(high, lead2, lead3, lead4, lead2OK, noLead, e0, ed, f0, f4, below90, belowA0 uint64) (pass uint64, ok bool) {
	cont := high &^ lead2
	// Each lead needs continuations right after it: one, two or three.
	needed := lead2<<1 | lead3<<2 | lead4<<3
	errs := cont ^ needed | lead2&^lead2OK | noLead |
		e0<<1&belowA0 | ed<<1&cont&^belowA0 | f0<<1&below90 | f4<<1&cont&^below90
	if errs != 0 {
		return 0, false
	}
	return high &^ cutAtEnd(lead2, lead3, lead4), true
}

// cutAtEnd marks the sequence a 64-byte window's end cuts, from its lead
// on (none: 0), given the leads of two, three and four bytes (lead2 holds
// all of them, lead3 those of three and four).
func cutAtEnd(lead2, lead3, lead4 uint64) uint64 {
	switch {
	case lead4>>61&1 != 0:
		return 7 << 61
	case lead3>>62&1 != 0:
		return 3 << 62
	case lead2>>63 != 0:
		return 1 << 63
	}
	return 0
}
