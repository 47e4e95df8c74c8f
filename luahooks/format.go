package luahooks

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// string.format is gopher-lua's: it hands the format and the arguments to
// Go's fmt.Sprintf. The guard lets through only what Lua 5.1 has, since Go
// has more: %#v of a table printed the Go struct behind it, every string in
// it included (200 strings of 1 MB made 1.4 GB), and so did %c or %d of a
// table. It counts each conversion at the most it can write.
const (
	formatFlags       = "-+ #0"
	formatConversions = "diucoxXeEfgGqs"
)

// checkFormat is string.format's guard (see guard): it refuses a
// conversion Lua 5.1 does not have, and a table, function, nil or boolean
// for a conversion other than %s, and bounds the growth.
func (v *vm) checkFormat(L *lua.LState) (int, int) {
	f := L.CheckString(1)
	top := L.GetTop()
	largest := len(f)
	for i := 2; i <= top; i++ {
		if s, ok := L.Get(i).(lua.LString); ok {
			largest = max(largest, len(s))
		}
	}
	total, arg := len(f), 2
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		if i+1 < len(f) && f[i+1] == '%' {
			i++
			continue
		}
		c, n := parseConversion(f[i+1:])
		if c.verb == 0 {
			L.RaiseError("format: invalid conversion %q: Lua's are %%d %%i %%u %%c %%o %%x %%X %%e %%E %%f %%g %%G %%q %%s and %%%%, "+
				"with the flags - + space # 0, a width and a precision", clip(f[i:min(len(f), i+2+n)], 16))
		}
		if arg > top {
			L.ArgError(arg, "no value")
		}
		a := L.Get(arg)
		if _, isStr := a.(lua.LString); !isStr && c.verb != 's' && a.Type() != lua.LTNumber {
			L.ArgError(arg, "number or string expected, got "+a.Type().String())
		}
		total += max(c.width, worstCase(c, a))
		arg++
		i += n
	}
	// Arguments left over are printed after the result: "%!(EXTRA ...)".
	for ; arg <= top; arg++ {
		total += worstCase(conversion{verb: 's'}, L.Get(arg))
	}
	return total - largest, largest
}

// conversion is one "%..." of a format after the '%'.
type conversion struct {
	width, prec int  // 0 when absent; capped just above maxGrowth
	verb        byte // 0: not one of Lua's
}

// parseConversion parses the conversion at the start of f and returns it
// with its length.
func parseConversion(f string) (conversion, int) {
	var c conversion
	i := 0
	for i < len(f) && strings.IndexByte(formatFlags, f[i]) >= 0 {
		i++
	}
	i += digits(f[i:], &c.width)
	if i < len(f) && f[i] == '.' {
		i++
		i += digits(f[i:], &c.prec)
	}
	if i < len(f) && strings.IndexByte(formatConversions, f[i]) >= 0 {
		c.verb = f[i]
		i++
	}
	return c, i
}

// digits reads the decimal number at the start of s into n, capped just
// above maxGrowth, and returns how many digits it read.
func digits(s string, n *int) int {
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		*n = min(*n*10+int(s[i]-'0'), maxGrowth+1)
	}
	return i
}

// worstCase bounds what conversion c writes for the argument a, before
// any padding to its width.
func worstCase(c conversion, a lua.LValue) int {
	// Around a value Go finds odd for the verb: "%!c(string=...)".
	const wrapping = 32
	switch a := a.(type) {
	case lua.LString:
		switch c.verb {
		case 'q':
			return 4*len(a) + 2 // "\x00" for each byte
		case 'x', 'X':
			return 5 * len(a) // "0x00 " for each byte, with "%# x"
		}
		return len(a) + wrapping
	case lua.LNumber:
		if c.verb == 'f' {
			return 310 + c.prec + wrapping // 1e308 has 309 digits
		}
		return c.prec + 2*wrapping
	}
	return wrapping // %s of a table: "table: 0x..."
}
