package luahooks

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// TestPatterns checks the rebuilt pattern functions against Lua 5.1 results.
func TestPatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr, want string
	}{
		{"find plain", `tostring(string.find("a.b", ".", 1, true))`, "2"},
		{"find pattern", `table.concat({string.find("hello world", "o w")}, ",")`, "5,7"},
		{"find captures", `table.concat({string.find("key=val", "(%w+)=(%w+)")}, ",")`, "1,7,key,val"},
		{"find init", `table.concat({string.find("abcabc", "b", 3)}, ",")`, "5,5"},
		{"find negative init", `table.concat({string.find("abcabc", "b", -2)}, ",")`, "5,5"},
		{"find none", `tostring(string.find("abc", "z"))`, "nil"},
		{"find empty", `table.concat({string.find("abc", "")}, ",")`, "1,0"},
		{"find anchored", `tostring(string.find("xabc", "^abc"))`, "nil"},
		{"match whole", `string.match("  trim  ", "^%s*(.-)%s*$")`, "trim"},
		{"match no capture", `string.match("abc123", "%d+")`, "123"},
		{"match position", `tostring(string.match("abc", "()b"))`, "2"},
		{"match none", `tostring(string.match("abc", "%d"))`, "nil"},
		{"method match", `("v1.2"):match("v(%d+)")`, "1"},
		{"gmatch words", `(function() local t = {} for w in ("one two  three"):gmatch("%a+") do t[#t+1] = w end return table.concat(t, "|") end)()`, "one|two|three"},
		{"gmatch pairs", `(function() local t = {} for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do t[#t+1] = k .. v end return table.concat(t, "|") end)()`, "a1|b2"},
		{"gmatch empty matches", `(function() local n = 0 for _ in ("abc"):gmatch("x*") do n = n + 1 end return tostring(n) end)()`, "4"},
		{"gsub string", `(string.gsub("hello world", "o", "0"))`, "hell0 w0rld"},
		{"gsub count", `tostring(select(2, string.gsub("hello world", "o", "0")))`, "2"},
		{"gsub limit", `(string.gsub("aaa", "a", "b", 2))`, "bba"},
		{"gsub captures", `(string.gsub("hello world", "(%w+)", "<%1>"))`, "<hello> <world>"},
		{"gsub whole match", `(string.gsub("abc", "%w", "%0%0"))`, "aabbcc"},
		{"gsub percent", `(string.gsub("50", "%d+", "%1%%"))`, "50%"},
		{"gsub table", `(string.gsub("$name is $age", "%$(%w+)", {name = "ann", age = 3}))`, "ann is 3"},
		{"gsub table miss keeps", `(string.gsub("$x", "%$(%w+)", {}))`, "$x"},
		{"gsub function", `(string.gsub("a b", "%w", function(c) return c:upper() end))`, "A B"},
		{"gsub function false keeps", `(string.gsub("a b", "%w", function(c) return false end))`, "a b"},
		{"gsub empty pattern", `(string.gsub("ab", "", "-"))`, "-a-b-"},
		{"gsub email", `(string.gsub("mail bob@example.com now", "[%w%.%-_]+@[%w%.%-]+%.%a+", "[email]"))`, "mail [email] now"},
		{"gsub anchored", `(string.gsub("aaa", "^a", "b"))`, "baa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestSet(t, Options{}, "p.lua", "function on_request(req)\n  req:set_header('x-out', "+tt.expr+")\nend\n")
			got, err := onRequest(t, s, chatRequest())
			if err != nil {
				t.Fatal(err)
			}
			if got.SetHeaders["x-out"] != tt.want {
				t.Errorf("%s = %q, want %q", tt.expr, got.SetHeaders["x-out"], tt.want)
			}
		})
	}
}

// TestPatternsObeyDeadline: backtracking patterns and long matches are cut
// by the deadline even though they run inside one Go call.
func TestPatternsObeyDeadline(t *testing.T) {
	t.Parallel()
	for _, code := range []string{
		`string.find(string.rep("a", 5000), ".-.-.-b")`,
		`string.match(string.rep("a", 5000), ".-.-.-b")`,
		`string.gsub(string.rep("a", 5000), ".-.-.-b", "")`,
		`for w in string.rep("a", 5000):gmatch(".-.-.-b") do end`,
	} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			firstRequestFails(t, Options{Timeout: 50 * time.Millisecond}, code, ReasonTimeout, "")
		})
	}
}

// TestGsubSeesDeadlineAcrossMatches: a gsub whose every match is cheap
// stops once its deadline has passed. Each match used to count its steps
// afresh and check the context only every 4096 of them, so a gsub of many
// short matches never checked it: hooks/examples/redact_email.lua ran for
// over a second on a 2 MiB message. The context here has ended before the
// call; the VM does not check it when Go calls a Go function, only gsub can.
func TestGsubSeesDeadlineAcrossMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, subject, pattern string }{
		{"every byte", strings.Repeat("a", 1<<20), "."},
		{"email redaction", strings.Repeat("x@y.zz ", 1<<17), "[%w%.%%%+%-_]+@[%w%.%-]+%.%a%a+"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := newVM(nil, slog.New(slog.DiscardHandler), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer v.close()
			ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
			defer cancel()
			v.L.SetContext(ctx)
			gsub := v.L.GetField(v.L.GetGlobal("string"), "gsub")
			err = v.L.CallByParam(lua.P{Fn: gsub, NRet: 2, Protect: true},
				lua.LString(tc.subject), lua.LString(tc.pattern), lua.LString("%0"))
			if err == nil || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
				t.Fatalf("gsub after the deadline: err = %v, want %v", err, context.DeadlineExceeded)
			}
		})
	}
}

// TestPatternCaptureLimit: a pattern with more than 32 captures is a Lua
// error, as in Lua 5.1; four million nested ones crashed the process.
func TestPatternCaptureLimit(t *testing.T) {
	t.Parallel()
	firstRequestFails(t, Options{}, `local ok = pcall(string.find, "x", string.rep("(", 32) .. "x" .. string.rep(")", 32))
  assert(ok, "32 captures refused")
  string.find("x", string.rep("(", 33) .. "x" .. string.rep(")", 33))`, ReasonRuntime, "too many captures")
}
