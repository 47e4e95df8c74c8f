package luahooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSandboxForbidden(t *testing.T) {
	t.Parallel()
	absent := []string{
		"os", "io", "debug", "package", "channel", "coroutine",
		"load", "loadstring", "dofile", "loadfile", "require", "module",
		"collectgarbage", "setfenv", "getfenv", "newproxy", "_printregs",
		"string.dump",
	}
	for _, name := range absent {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Checked both at load time and inside the hook.
			code := "assert(" + name + " == nil, '" + name + " is present')\nfunction on_request(req)\n  assert(" + name + " == nil, '" + name + " is present')\nend\n"
			if _, err := buildTestSet(Options{}, "s.lua", code); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
	present := []string{"string.format", "string.gsub", "table.concat", "table.insert", "math.floor", "pairs", "ipairs", "pcall", "tostring", "tonumber", "setmetatable", "print", "log", "null"}
	for _, name := range present {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code := "function on_request(req)\n  assert(" + name + " ~= nil, '" + name + " is absent')\nend\n"
			if _, err := buildTestSet(Options{}, "s.lua", code); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
}

func TestSandboxScriptsAreIsolated(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{},
		"a.lua", `secret = "a"; _G.shared = "a"; function on_request(req) end`,
		"b.lua", `function on_request(req) req:set_header("x-b", tostring(secret) .. "/" .. tostring(shared)) end`)
	got, err := onRequest(t, s, chatRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got.SetHeaders["x-b"] != "nil/nil" {
		t.Errorf("b.lua saw a.lua's globals: %q", got.SetHeaders["x-b"])
	}
}

// TestSandboxLibrariesAreIsolated: what one script does to the globals it
// can reach, the libraries and the strings' metatable reaches no other
// script, on this request or later ones. Scripts used to look globals up
// through a metatable getmetatable(_G) handed them, and to share string,
// table and math, which was also the strings' metatable.
func TestSandboxLibrariesAreIsolated(t *testing.T) {
	t.Parallel()
	s := newTestSet(t, Options{PoolSize: 1},
		"a.lua", `
local function try(f) pcall(f) end
local function pwned() return "PWNED" end
function on_request(req)
  try(function() getmetatable(_G).__index.shared = "a" end)
  try(function() getmetatable("").__index.lower = pwned end)
  try(function() getmetatable("").lower = pwned end)
  try(function() string.__index.lower = pwned end)
  string.upper = pwned
  table.concat = pwned
  math.floor = pwned
  _G.tostring = pwned
end`,
		"b.lua", `
function on_request(req)
  req:set_header("x-b", table.concat({tostring(shared), string.upper("a"), ("b"):upper(),
    ("C"):lower(), tostring(math.floor(1.5)), tostring(getmetatable(""))}, "/"))
end`)
	for i := range 2 { // the same state serves both requests
		got, err := onRequest(t, s, chatRequest())
		if err != nil {
			t.Fatal(err)
		}
		if want := "nil/A/B/c/1/false"; got.SetHeaders["x-b"] != want {
			t.Errorf("request %d: b.lua saw %q, want %q", i+1, got.SetHeaders["x-b"], want)
		}
	}
}

// TestBudget checks that every way to burn time or memory is cut.
func TestBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, code, reason string
	}{
		{"infinite loop", `while true do end`, ReasonTimeout},
		{"infinite loop under pcall", `while true do pcall(function() while true do end end) end`, ReasonTimeout},
		{"giant table", `local t = {} for i = 1, 1e9 do t[i] = i end`, ReasonTimeout},
		{"huge string.rep", `local s = string.rep("x", 1e10)`, ReasonLimit},
		{"huge method rep", `local s = ("abc"):rep(1e9)`, ReasonLimit},
		{"rep budget", `local t = {} for i = 1, 100 do t[i] = string.rep("x", 900000) end`, ReasonLimit},
		{"gsub amplification", `local s = string.rep("x", 1000); s = s:gsub("x", string.rep("y", 2000))`, ReasonLimit},
		{"format width", `local s = string.format(string.rep("%99999d", 20), 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20)`, ReasonLimit},
		{"format repeats", `local s = string.rep("x", 500000); s = string.format("%s%s%s%s", s, s, s, s)`, ReasonLimit},
		{"concat amplification", `local s = string.rep("x", 500000); local t = {} for i = 1, 10 do t[i] = s end; s = table.concat(t)`, ReasonLimit},
		{"huge unpack", `local t = {unpack({}, 1, 1e7)}`, ReasonLimit},
		{"deep recursion", `local function f(n) return 1 + f(n + 1) end f(1)`, ReasonLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			timeout := 50 * time.Millisecond
			if tt.reason != ReasonTimeout {
				timeout = 5 * time.Second // the guard, not the clock, must stop these
			}
			s := newTestSet(t, Options{Timeout: timeout},
				"b.lua", "function on_request(req)\n  if req.request_id ~= 'req-1' then return end\n  "+tt.code+"\nend\n")
			_, err := onRequest(t, s, chatRequest())
			var he *HookError
			if !errors.As(err, &he) {
				t.Fatalf("err = %v, want a HookError", err)
			}
			if he.Reason != tt.reason {
				t.Errorf("reason = %s (%v), want %s", he.Reason, he, tt.reason)
			}
		})
	}
	// The guards must not refuse ordinary work on large existing strings.
	t.Run("big body edits allowed", func(t *testing.T) {
		t.Parallel()
		s := newTestSet(t, Options{}, "ok.lua", `
function on_request(req)
  local raw = req.body:raw()
  local s = raw:gsub("pad", "PADDING")
  s = string.format('{"wrapped":%s}', s)
  s = table.concat({raw, "x"}, ",")
  req:set_header("x-len", tostring(#s))
end`)
		req := chatRequest()
		req.Body = []byte(`{"model":"m","pad":"` + strings.Repeat("x", 3<<20) + `"}`)
		got, err := onRequest(t, s, req)
		if err != nil {
			t.Fatalf("OnRequest: %v", err)
		}
		if got.SetHeaders["x-len"] == "" {
			t.Error("hook did not finish")
		}
	})
}
