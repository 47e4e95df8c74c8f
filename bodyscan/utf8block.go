//go:build goexperiment.simd && amd64

package bodyscan

import (
	"math/bits"
	"simd/archsimd"
)

// A block's UTF-8 is checked with the method of Keiser and Lemire
// ("Validating UTF-8 in less than one instruction per byte", 2021): every
// error shows in a pair of neighbouring bytes, or in a continuation byte
// two or three bytes after a lead that needs it. Each of three 16-entry
// tables, looked up by the first byte's high nibble, its low nibble and
// the second byte's high nibble, flags the errors the pair may make; a
// flag all three raise is an error. The flags:
const (
	tooShort     = 1 << 0 // a lead not followed by a continuation
	tooLong      = 1 << 1 // a continuation after ASCII
	overlong3    = 1 << 2 // E0 then 80..9F
	tooLarge     = 1 << 3 // F4 then 90..BF, or F5..FF then 90..BF
	surrogate    = 1 << 4 // ED then A0..BF
	overlong2    = 1 << 5 // C0 or C1 then a continuation
	tooLarge1000 = 1 << 6 // F5..FF then 80..8F
	overlong4    = 1 << 6 // F0 then 80..8F
	// twoConts, a continuation after a continuation, is an error unless a
	// lead two or three bytes before needs it.
	twoConts = 1 << 7
	// eitherNibble: flags the first byte's high nibble decides alone.
	eitherNibble = tooShort | tooLong | twoConts
)

// utf8Bytes are the tables and indices of the check, each 16-entry table
// four times over, so that a lookup by any byte's low six bits reads its
// low nibble's entry.
var utf8Bytes = struct {
	firstHigh, firstLow, secondHigh [64]uint8
	// previous picks, from a zero block and the block, each byte's
	// predecessor (a zero before the first).
	previous [64]uint8
	// low7 keeps the flags but twoConts; lead2, lead3 and lead4 are the
	// least bytes that lead sequences of two, three and four bytes.
	low7, lead2, lead3, lead4 [64]uint8
	// four shifts each 16 bits right by four. The count is a vector: Go
	// moves a count in a register with an SSE instruction, which between
	// AVX-512 instructions costs a transition of the vector registers (the
	// shift ran fifty times slower on this machine).
	four [32]uint16
}{
	firstHigh: repeat16([16]uint8{
		tooLong, tooLong, tooLong, tooLong, tooLong, tooLong, tooLong, tooLong, // ASCII
		twoConts, twoConts, twoConts, twoConts, // continuations
		tooShort | overlong2, tooShort, // leads of two bytes
		tooShort | overlong3 | surrogate,               // of three
		tooShort | tooLarge | tooLarge1000 | overlong4, // of four, or none
	}),
	firstLow: repeat16([16]uint8{
		eitherNibble | overlong3 | overlong2 | overlong4,
		eitherNibble | overlong2,
		eitherNibble, eitherNibble,
		eitherNibble | tooLarge,
		eitherNibble | tooLarge | tooLarge1000, eitherNibble | tooLarge | tooLarge1000, eitherNibble | tooLarge | tooLarge1000,
		eitherNibble | tooLarge | tooLarge1000, eitherNibble | tooLarge | tooLarge1000, eitherNibble | tooLarge | tooLarge1000,
		eitherNibble | tooLarge | tooLarge1000, eitherNibble | tooLarge | tooLarge1000,
		eitherNibble | tooLarge | tooLarge1000 | surrogate,
		eitherNibble | tooLarge | tooLarge1000, eitherNibble | tooLarge | tooLarge1000,
	}),
	secondHigh: repeat16([16]uint8{
		tooShort, tooShort, tooShort, tooShort, tooShort, tooShort, tooShort, tooShort, // ASCII
		tooLong | overlong2 | twoConts | overlong3 | tooLarge1000 | overlong4, // 80..8F
		tooLong | overlong2 | twoConts | overlong3 | tooLarge,                 // 90..9F
		tooLong | overlong2 | twoConts | surrogate | tooLarge,                 // A0..AF
		tooLong | overlong2 | twoConts | surrogate | tooLarge,                 // B0..BF
		tooShort, tooShort, tooShort, tooShort, // leads
	}),
	previous: previousIndices(),
	low7:     fill(0x7f),
	lead2:    fill(0xc0),
	lead3:    fill(0xe0),
	lead4:    fill(0xf0),
	four:     [32]uint16{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4},
}

func repeat16(t [16]uint8) (v [64]uint8) {
	for i := range v {
		v[i] = t[i%16]
	}
	return v
}

func previousIndices() (v [64]uint8) {
	for i := range v {
		v[i] = uint8(64 + i - 1)
	}
	return v
}

// utf8Passable marks the non-ASCII bytes of v (high) that a string scan
// may pass without judging them: those of the sequences that lie whole in
// the block, when every one of them is UTF-8. A sequence the block's start
// or end cuts stays for the scalar scan to judge with the bytes around it
// (up to three continuations first; a lead last that needs more bytes than
// the block has), and so does every non-ASCII byte of a block with an
// error. Bytes outside strings count as well: ASCII ones split no sequence,
// and a non-ASCII one there is not JSON, which the scan finds at it.
func utf8Passable(v archsimd.Uint8x64, high uint64) uint64 {
	c := &utf8Bytes
	four := archsimd.LoadUint16x32(&c.four)
	highNibble := func(v archsimd.Uint8x64) archsimd.Uint8x64 { return v.AsUint16x32().ShiftRight(four).AsUint8x64() }
	prev := archsimd.Uint8x64{}.ConcatPermute(v, archsimd.LoadUint8x64(&c.previous))
	flags := archsimd.LoadUint8x64(&c.firstHigh).Permute(highNibble(prev)).
		And(archsimd.LoadUint8x64(&c.firstLow).Permute(prev)).
		And(archsimd.LoadUint8x64(&c.secondHigh).Permute(highNibble(v)))
	twoConts := flags.AsInt8x64().Less(archsimd.Int8x64{}).ToBits()
	other := flags.And(archsimd.LoadUint8x64(&c.low7)).NotEqual(archsimd.Uint8x64{}).ToBits()
	lead2 := v.GreaterEqual(archsimd.LoadUint8x64(&c.lead2)).ToBits()
	lead3 := v.GreaterEqual(archsimd.LoadUint8x64(&c.lead3)).ToBits()
	lead4 := v.GreaterEqual(archsimd.LoadUint8x64(&c.lead4)).ToBits()
	// A lead of three bytes needs a continuation two bytes on, one of four
	// two and three bytes on.
	needed := lead3<<2 | lead4<<3
	errs := other | (twoConts ^ needed)
	// The continuations first in the block (of a sequence begun before it).
	first := uint64(1)<<min(bits.TrailingZeros64(^(high&^lead2)), 3) - 1
	if errs&^first != 0 {
		return 0
	}
	return high &^ first &^ cutAtEnd(lead2, lead3, lead4)
}
