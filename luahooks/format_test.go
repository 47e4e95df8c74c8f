package luahooks

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// TestFormatLuaConversionsOnly: string.format takes Lua 5.1's conversions
// and refuses Go's others, which gopher-lua used to pass on to
// fmt.Sprintf: %#v of a table printed every string in it.
func TestFormatLuaConversionsOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, expr, want string }{
		{"numbers", `string.format("%d|%5.2f|%-4i|%x|%X|%o|%e|%g|%+d|% d|%05d|%#x", 42, 3.14159, 7, 255, 255, 8, 1.5, 0.25, 3, 3, 42, 255)`,
			"42| 3.14|7   |ff|FF|10|1.500000e+00|0.25|+3| 3|00042|0xff"},
		{"strings", `string.format("%s|%10s|%-3s|%.2s|%q|%%", "a", "right", "l", "cut", 'say "hi"')`,
			`a|     right|l  |cu|"say \"hi\""|%`},
		{"a table for %s", `(string.format("%s", {}):gsub("0x%x+", "ADDR"))`, "table: ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestSet(t, Options{}, "f.lua", "function on_request(req)\n  req:set_header('x-out', "+tc.expr+")\nend\n")
			got, err := onRequest(t, s, chatRequest())
			if err != nil {
				t.Fatal(err)
			}
			if got.SetHeaders["x-out"] != tc.want {
				t.Errorf("%s = %q, want %q", tc.expr, got.SetHeaders["x-out"], tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, code, want string }{
		{"Go's %v", `string.format("%v", 1)`, `invalid conversion "%v"`},
		{"Go's %#v of a table", `local t = {string.rep("x", 1000)}; string.format("%#v", t)`, `invalid conversion "%#v"`},
		{"Go's %T", `string.format("%T", 1)`, `invalid conversion "%T"`},
		{"Go's %p", `string.format("%p", {})`, `invalid conversion "%p"`},
		{"Go's %b", `string.format("%b", 5)`, `invalid conversion "%b"`},
		{"Go's %U", `string.format("%U", 5)`, `invalid conversion "%U"`},
		{"Go's argument index", `string.format("%[1]d", 5)`, `invalid conversion "%["`},
		{"Go's width from an argument", `string.format("%*d", 5, 1)`, `invalid conversion "%*"`},
		{"a trailing percent", `string.format("100%", 5)`, `invalid conversion "%"`},
		{"a table for %c", `string.format("%c", {string.rep("x", 1000)})`, "number or string expected, got table"},
		{"a table for %d", `string.format("%d", {})`, "number or string expected, got table"},
		{"nil for %d", `string.format("%d", nil)`, "number or string expected, got nil"},
		{"a missing argument", `string.format("%s %s", "a")`, "no value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			firstRequestFails(t, Options{}, tc.code, ReasonRuntime, tc.want)
		})
	}
}

// TestFormatExpandingConversions: conversions that write more than they
// read are counted at their worst. %q of 1e6 NULs returned 4 MB and
// "% x" 3 MB, past the 1 MiB a string operation may grow.
func TestFormatExpandingConversions(t *testing.T) {
	t.Parallel()
	for _, code := range []string{
		`string.format("%q", string.rep("\0", 1000000))`,
		`string.format("% x", string.rep("\255", 1000000))`,
		`string.format("%+q", string.rep("\240\159\152\128", 200000))`,
	} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			firstRequestFails(t, Options{}, "local r = "+code, ReasonLimit, "")
		})
	}
}

// TestFormatWorstCaseBounds: for every conversion, flag and argument of
// the kinds that write the most, what gopher-lua's string.format writes
// grows its input by no more than the guard counted.
func TestFormatWorstCaseBounds(t *testing.T) {
	t.Parallel()
	v, err := newVM(nil, slog.New(slog.DiscardHandler), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	plain := lua.NewState()
	defer plain.Close()
	format := plain.GetField(plain.GetGlobal("string"), "format")
	args := []lua.LValue{
		lua.LString(strings.Repeat("\x00", 64)), lua.LString(strings.Repeat("\xff", 64)),
		lua.LString(strings.Repeat("\u2028", 64)), lua.LString(strings.Repeat("\U0001F600", 64)),
		lua.LString("plain"), lua.LString("-12.5"), lua.LString(""),
		lua.LNumber(1e308), lua.LNumber(-1e308), lua.LNumber(-1), lua.LNumber(0.1),
		lua.LNumber(1 << 63), lua.LNumber(5e-324), plain.NewTable(),
	}
	for _, flags := range []string{"", "-", "+", " ", "#", "0", "# ", "+ #0-"} {
		for _, size := range []string{"", "3", ".3", "20.10"} {
			for _, verb := range formatConversions {
				f := "%" + flags + size + string(verb)
				for _, a := range args {
					if _, ok := a.(*lua.LTable); ok && verb != 's' {
						continue // refused
					}
					var counted int
					check := v.L.NewFunction(func(L *lua.LState) int {
						growth, largest := v.checkFormat(L)
						counted = growth + largest
						return 0
					})
					if err := v.L.CallByParam(lua.P{Fn: check, Protect: true}, lua.LString(f), a); err != nil {
						t.Fatalf("check of %s: %v", f, err)
					}
					if err := plain.CallByParam(lua.P{Fn: format, NRet: 1, Protect: true}, lua.LString(f), a); err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					out := plain.Get(-1).String()
					plain.Pop(1)
					if len(out) > counted {
						t.Errorf("format(%q, %.20q) wrote %d bytes, counted %d", f, a.String(), len(out), counted)
					}
				}
			}
		}
	}
}
