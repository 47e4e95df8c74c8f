package luahooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Guards for memory a deadline cannot see: one Go call (string.rep,
// string.format, string.gsub, table.concat) may allocate a huge string before
// the VM checks its context again.
const (
	// maxGrowth is how much larger than its largest input the result of one
	// guarded string operation may be.
	maxGrowth = 1 << 20
	// callGrowthBudget is the total growth all guarded operations of one hook
	// call may produce.
	callGrowthBudget = 16 << 20
)

// State options: the call stack and the value stack ("registry") are bounded
// so that deep recursion and huge unpack() calls fail instead of eating memory.
var stateOptions = lua.Options{
	CallStackSize:    200,
	RegistrySize:     1024,
	RegistryMaxSize:  16 * 1024,
	RegistryGrowStep: 1024,
	SkipOpenLibs:     true,
}

// maxArrayIndex bounds the integer keys gopher-lua keeps in a table's array
// part. Below its bound it pads the array with nils up to the key in one Go
// call the deadline cannot stop: with its default (2^26), t[67108863] = true
// allocated 6 GB in 15 s, and a hook that indexes a table with a number
// from the request lets a client do that. Larger keys go to the hash part.
const maxArrayIndex = 1 << 16

// init sets gopher-lua's bound, a package variable every LState reads,
// before any state exists. luahooks is the only package that imports
// gopher-lua (internal/deptest).
func init() { lua.MaxArrayIndex = maxArrayIndex }

// removedGlobals are base functions scripts must not have.
var removedGlobals = []string{
	"load", "loadstring", "dofile", "loadfile", "require", "module",
	"collectgarbage", "setfenv", "getfenv", "newproxy", "_printregs",
	"_GOPHER_LUA_VERSION",
}

// vmScript is one script loaded into a vm.
type vmScript struct {
	env        *lua.LTable
	onRequest  *lua.LFunction
	onResponse *lua.LFunction
	// MCP tool hooks (tools.go).
	onToolCall, onToolResult *lua.LFunction
}

// vm is one sandboxed LState with every script of a Set loaded. A vm is used
// by one goroutine at a time; after any failed call it is discarded.
type vm struct {
	L       *lua.LState
	conv    *conv
	scripts []vmScript
	logger  *slog.Logger

	// Per-call state.
	script    string   // name of the script running now
	requestID string   // of the request being served
	req       *reqCall // current on_request call, nil otherwise
	res       *resCall // current on_response call, nil otherwise
	growth    int      // growth budget left in this call
	limitHit  bool     // a guard refused an operation in this call

	rejectMarker *lua.LUserData
	reqMT        *lua.LTable
	bodyMT       *lua.LTable
	resMT        *lua.LTable
	fn           map[string]lua.LValue // methods, by "req.name", "body.name", "res.name"
}

// newVM builds a sandboxed state and runs every script's top-level chunk in
// it with the given time budget.
func newVM(scripts []*script, logger *slog.Logger, loadTimeout time.Duration) (*vm, error) {
	L := lua.NewState(stateOptions)
	v := &vm{L: L, logger: logger, fn: make(map[string]lua.LValue)}
	if err := v.openSandbox(); err != nil {
		L.Close()
		return nil, err
	}
	v.conv = newConv(L)
	v.setupAPI()
	globals := L.G.Global
	globals.RawSetString("null", v.conv.null)
	v.scripts = make([]vmScript, len(scripts))
	for i, sc := range scripts {
		vs, err := v.load(sc, globals, loadTimeout)
		if err != nil {
			L.Close()
			return nil, err
		}
		v.scripts[i] = vs
	}
	return v, nil
}

func (v *vm) close() { v.L.Close() }

func (v *vm) openSandbox() error {
	L := v.L
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return fmt.Errorf("opening lua library %s: %w", lib.name, err)
		}
	}
	g := L.G.Global
	for _, name := range removedGlobals {
		g.RawSetString(name, lua.LNil)
	}
	g.RawSetString("print", L.NewFunction(v.luaPrint))
	g.RawSetString("log", L.NewFunction(v.luaLog))

	str := g.RawGetString("string").(*lua.LTable)
	str.RawSetString("dump", lua.LNil)
	v.installPatterns(str)
	v.guard(str, "rep", v.checkRep)
	v.guard(str, "format", v.checkFormat)
	tab := g.RawGetString("table").(*lua.LTable)
	v.guard(tab, "concat", v.checkConcat)

	// gopher-lua's string library is also the strings' metatable, so
	// getmetatable("").upper = f changed s:upper() for every script. The
	// metatable is now its own, hidden, and its __index is this library,
	// which no script sees: each gets its own copy (scriptGlobals).
	str.RawSetString("__index", lua.LNil)
	strMT := L.CreateTable(0, 2)
	strMT.RawSetString("__index", str)
	strMT.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(lua.LString(""), strMT)
	return nil
}

// guard replaces lib[name] with a function that first asks check for the
// worst-case growth of the call over its largest input and refuses the call
// when that is over maxGrowth or over what is left of the call's budget. The
// budget is charged with the actual growth. (gsub checks as it builds; see
// strGsub.)
func (v *vm) guard(lib *lua.LTable, name string, check func(L *lua.LState) (growth, largest int)) {
	orig := lib.RawGetString(name).(*lua.LFunction).GFunction
	lib.RawSetString(name, v.L.NewFunction(func(L *lua.LState) int {
		growth, largest := check(L)
		if growth > maxGrowth {
			v.limitHit = true
			L.RaiseError("%s: result could grow by %d bytes, over the limit of %d", name, growth, maxGrowth)
		}
		if growth > v.growth {
			v.limitHit = true
			L.RaiseError("%s: this hook call has used up its budget of %d bytes for building strings", name, callGrowthBudget)
		}
		n := orig(L)
		if n > 0 {
			if s, ok := L.Get(-n).(lua.LString); ok {
				v.growth -= max(len(s)-largest, 0)
			}
		}
		return n
	}))
}

func (v *vm) checkRep(L *lua.LState) (int, int) {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 1 || len(s) == 0 {
		return 0, len(s)
	}
	if n-1 > (maxGrowth+1)/len(s) {
		return maxGrowth + 1, len(s)
	}
	return len(s) * (n - 1), len(s)
}

func (v *vm) checkConcat(L *lua.LState) (int, int) {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	if j < i {
		return 0, 0
	}
	// The difference as unsigned: j-i overflows for indices such as
	// -2^62 and 2^62, and the loop below would run for ever.
	if uint64(j)-uint64(i) > maxGrowth {
		return maxGrowth + 1, 0
	}
	total, largest := 0, 0
	for k := i; k <= j; k++ {
		n := 24
		if s, ok := t.RawGetInt(k).(lua.LString); ok {
			n = len(s)
		}
		total += n + len(sep)
		largest = max(largest, n)
	}
	return total - largest, largest
}

// load runs a script's top-level chunk in its own environment: globals it
// defines (on_request, on_response, helpers) live in that environment, and
// its ctx table holds what it computes at load time.
func (v *vm) load(sc *script, globals *lua.LTable, timeout time.Duration) (vmScript, error) {
	L := v.L
	env := scriptGlobals(L, globals)
	fn := L.NewFunctionFromProto(sc.proto)
	fn.Env = env
	if _, err := v.call(context.Background(), timeout, sc.name, "load", fn); err != nil {
		return vmScript{}, err
	}
	vs := vmScript{env: env}
	for _, h := range []struct {
		name string
		dst  **lua.LFunction
	}{{"on_request", &vs.onRequest}, {"on_response", &vs.onResponse}, {"on_tool_call", &vs.onToolCall}, {"on_tool_result", &vs.onToolResult}} {
		switch f := env.RawGetString(h.name).(type) {
		case *lua.LNilType:
		case *lua.LFunction:
			*h.dst = f
		default:
			return vmScript{}, &HookError{Script: sc.name, Hook: "load", Reason: ReasonMalformed,
				Message: fmt.Sprintf("%s is a %s, want a function", h.name, f.Type())}
		}
	}
	return vs, nil
}

// scriptGlobals returns a script's own globals: a copy of the sandbox's,
// with its own copy of each library table, _G and ctx. Scripts used to
// look the sandbox's globals up through their environment's metatable,
// which getmetatable(_G) handed them, and to share the libraries: one
// script's string.upper = f, or getmetatable(_G).__index.x = 1, reached
// every script after it.
func scriptGlobals(L *lua.LState, globals *lua.LTable) *lua.LTable {
	env := L.CreateTable(0, 64)
	globals.ForEach(func(k, val lua.LValue) {
		if lib, ok := val.(*lua.LTable); ok && lib != globals {
			copied := L.CreateTable(0, 32)
			lib.ForEach(func(k, f lua.LValue) { copied.RawSet(k, f) })
			val = copied
		}
		env.RawSet(k, val)
	})
	env.RawSetString("_G", env)
	env.RawSetString("ctx", L.NewTable())
	return env
}

// call runs fn(args...) under a deadline and returns its first result.
func (v *vm) call(ctx context.Context, timeout time.Duration, scriptName, hook string, fn *lua.LFunction, args ...lua.LValue) (lua.LValue, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v.script = scriptName
	v.growth = callGrowthBudget
	v.limitHit = false
	L := v.L
	L.SetContext(cctx)
	err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, args...)
	L.RemoveContext()
	if err != nil {
		return nil, v.hookError(ctx, cctx, err, scriptName, hook, timeout)
	}
	ret := L.Get(-1)
	L.Pop(1)
	return ret, nil
}

// hookError turns a Lua error into a *HookError without its stack trace.
func (v *vm) hookError(parent, cctx context.Context, err error, scriptName, hook string, timeout time.Duration) error {
	if parent.Err() != nil {
		return fmt.Errorf("running %s of %s: %w", hook, scriptName, parent.Err())
	}
	msg := err.Error()
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Object != nil {
		msg = apiErr.Object.String()
	}
	he := &HookError{Script: scriptName, Hook: hook, Reason: ReasonRuntime}
	he.Line, he.Message = splitPosition(msg, scriptName)
	switch {
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		he.Reason = ReasonTimeout
		he.Message = fmt.Sprintf("ran past its time budget of %v", timeout)
	case v.limitHit,
		strings.Contains(msg, "registry overflow"),
		strings.Contains(msg, "stack overflow"),
		strings.Contains(msg, "callstack overflow"):
		he.Reason = ReasonLimit
	}
	return he
}

// splitPosition splits "name:12: message" into 12 and "message".
func splitPosition(msg, name string) (int, string) {
	rest, ok := strings.CutPrefix(msg, name+":")
	if !ok {
		return 0, msg
	}
	digits, after, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, msg
	}
	line, err := strconv.Atoi(digits)
	if err != nil {
		return 0, msg
	}
	return line, strings.TrimSpace(after)
}

func (v *vm) luaPrint(L *lua.LState) int {
	var b strings.Builder
	for i := 1; i <= L.GetTop(); i++ {
		if i > 1 {
			b.WriteByte('\t')
		}
		b.WriteString(L.ToStringMeta(L.Get(i)).String())
	}
	v.logger.Info("hook print", "script", v.script, "request_id", v.requestID, "message", b.String())
	return 0
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func (v *vm) luaLog(L *lua.LState) int {
	name := L.CheckString(1)
	level, ok := logLevels[name]
	if !ok {
		L.ArgError(1, "level must be debug, info, warn or error")
	}
	msg := L.CheckString(2)
	fields := L.OptTable(3, nil)
	if !v.logger.Enabled(context.Background(), level) {
		return 0
	}
	attrs := []slog.Attr{slog.String("script", v.script), slog.String("request_id", v.requestID)}
	if fields != nil {
		f, err := v.conv.toGo(fields, 0)
		if err != nil {
			L.ArgError(3, err.Error())
		}
		m, ok := f.(map[string]any)
		if !ok {
			L.ArgError(3, "fields must be a table with string keys")
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			attrs = append(attrs, slog.Any(k, m[k]))
		}
	}
	v.logger.LogAttrs(context.Background(), level, msg, attrs...)
	return 0
}
