package luahooks

import (
	"context"
	"strconv"
	"strings"
	"unsafe"

	lua "github.com/yuin/gopher-lua"

	"switchyard/luahooks/internal/pattern"
)

// The pattern functions of the string library, rebuilt on a copy of
// gopher-lua's matcher that honours the hook's deadline. gopher-lua's own
// versions run inside one Go call the deadline cannot interrupt: a
// backtracking pattern can run for hours, gsub copies the whole string once
// per match (quadratic), and gmatch finds every match up front.

func (v *vm) installPatterns(str *lua.LTable) {
	L := v.L
	str.RawSetString("find", L.NewFunction(v.strFind))
	str.RawSetString("match", L.NewFunction(v.strMatch))
	str.RawSetString("gmatch", L.NewFunction(v.strGmatch))
	str.RawSetString("gfind", str.RawGetString("gmatch"))
	str.RawSetString("gsub", L.NewFunction(v.strGsub))
}

func patternCtx(L *lua.LState) context.Context {
	if ctx := L.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func findMatches(L *lua.LState, pat, s string, offset, limit int) []*pattern.MatchData {
	c, err := pattern.Compile(pat)
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	return findCompiled(L, newSteps(L), c, s, offset, limit)
}

// newSteps counts the matching steps of one call against its deadline.
func newSteps(L *lua.LState) *pattern.Steps { return pattern.NewSteps(patternCtx(L)) }

func findCompiled(L *lua.LState, st *pattern.Steps, c *pattern.Pattern, s string, offset, limit int) []*pattern.MatchData {
	mds, err := c.Find(st, readOnlyBytes(s), offset, limit)
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	return mds
}

// readOnlyBytes views s as bytes without copying; the matcher only reads.
func readOnlyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// startIndex converts a 1-based, possibly negative Lua index to a 0-based
// offset into s.
func startIndex(s string, i int) int {
	if i > 0 {
		i--
	} else if i < 0 {
		i = len(s) + i
	}
	return max(0, i)
}

// pushCaptures pushes the captures of md (or the whole match when there are
// none and whole is true) and returns how many values it pushed.
func pushCaptures(L *lua.LState, s string, md *pattern.MatchData, whole bool) int {
	if md.CaptureLength() == 2 {
		if !whole {
			return 0
		}
		L.Push(lua.LString(s[md.Capture(0):md.Capture(1)]))
		return 1
	}
	n := 0
	for i := 2; i < md.CaptureLength(); i += 2 {
		if md.IsPosCapture(i) {
			L.Push(lua.LNumber(md.Capture(i)))
		} else {
			L.Push(lua.LString(s[md.Capture(i):md.Capture(i+1)]))
		}
		n++
	}
	return n
}

func (v *vm) strFind(L *lua.LState) int {
	s := L.CheckString(1)
	pat := L.CheckString(2)
	init := startIndex(s, L.OptInt(3, 1))
	if init > len(s) {
		L.Push(lua.LNil)
		return 1
	}
	if pat == "" {
		L.Push(lua.LNumber(init + 1))
		L.Push(lua.LNumber(init))
		return 2
	}
	if lua.LVAsBool(L.Get(4)) {
		pos := strings.Index(s[init:], pat)
		if pos < 0 {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LNumber(init + pos + 1))
		L.Push(lua.LNumber(init + pos + len(pat)))
		return 2
	}
	mds := findMatches(L, pat, s, init, 1)
	if len(mds) == 0 {
		L.Push(lua.LNil)
		return 1
	}
	md := mds[0]
	L.Push(lua.LNumber(md.Capture(0) + 1))
	L.Push(lua.LNumber(md.Capture(1)))
	return 2 + pushCaptures(L, s, md, false)
}

func (v *vm) strMatch(L *lua.LState) int {
	s := L.CheckString(1)
	pat := L.CheckString(2)
	init := startIndex(s, L.OptInt(3, 1))
	if init > len(s) {
		L.Push(lua.LNil)
		return 1
	}
	mds := findMatches(L, pat, s, init, 1)
	if len(mds) == 0 {
		L.Push(lua.LNil)
		return 1
	}
	return pushCaptures(L, s, mds[0], true)
}

// strGmatch returns an iterator that finds one match per call. The VM
// checks the deadline between calls, so each counts its own steps.
func (v *vm) strGmatch(L *lua.LState) int {
	s := L.CheckString(1)
	c, err := pattern.Compile(L.CheckString(2))
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		for pos <= len(s) {
			mds := findCompiled(L, newSteps(L), c, s, pos, 1)
			if len(mds) == 0 {
				pos = len(s) + 1
				return 0
			}
			md := mds[0]
			start, end := md.Capture(0), md.Capture(1)
			pos = max(end, start+1)
			return pushCaptures(L, s, md, true)
		}
		return 0
	}))
	return 1
}

// strGsub replaces matches, finding one at a time and building the result
// in one pass. All its matches count their steps together: one Go call,
// it would never see the deadline if each match started counting afresh.
// The result may grow over the subject by at most
// max(maxGrowth, len(subject)+1) bytes, and the growth is charged to the
// call's budget.
func (v *vm) strGsub(L *lua.LState) int {
	s := L.CheckString(1)
	c, err := pattern.Compile(L.CheckString(2))
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	L.CheckTypes(3, lua.LTString, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	limit := L.OptInt(4, -1)
	allowed := min(max(maxGrowth, len(s)+1), v.growth)

	st := newSteps(L)
	var b strings.Builder
	last, pos, count := 0, 0, 0
	capture := func(md *pattern.MatchData, idx int) string {
		if idx == 2 && md.CaptureLength() == 2 {
			idx = 0 // %1 with no captures is the whole match
		}
		if idx >= md.CaptureLength() {
			L.RaiseError("invalid capture index %%%d", idx/2)
		}
		if md.IsPosCapture(idx) {
			return strconv.Itoa(md.Capture(idx))
		}
		return s[md.Capture(idx):md.Capture(idx+1)]
	}
	for pos <= len(s) && count != limit {
		if count > 0 && c.Anchored() {
			break
		}
		mds := findCompiled(L, st, c, s, pos, 1)
		if len(mds) == 0 {
			break
		}
		md := mds[0]
		count++
		start, end := md.Capture(0), md.Capture(1)
		pos = max(end, start+1)
		b.WriteString(s[last:start])
		last = end
		var out lua.LValue
		switch r := repl.(type) {
		case lua.LString:
			rs := string(r)
			for i := 0; i < len(rs); i++ {
				ch := rs[i]
				if ch != '%' || i+1 == len(rs) {
					b.WriteByte(ch)
					continue
				}
				i++
				if d := rs[i]; d >= '0' && d <= '9' {
					// Checked at each capture: "%0%0%0..." would copy a
					// long match many times over before the check below.
					cp := capture(md, 2*int(d-'0'))
					if b.Len()+len(cp)-last > allowed {
						v.limitHit = true
						L.RaiseError("gsub: result grew by more than %d bytes", allowed)
					}
					b.WriteString(cp)
				} else {
					b.WriteByte(d)
				}
			}
		case *lua.LTable:
			idx := 0
			if md.CaptureLength() > 2 {
				idx = 2
			}
			if md.IsPosCapture(idx) {
				out = L.GetTable(r, lua.LNumber(md.Capture(idx)))
			} else {
				out = L.GetField(r, s[md.Capture(idx):md.Capture(idx+1)])
			}
		case *lua.LFunction:
			L.Push(r)
			n := pushCaptures(L, s, md, true)
			L.Call(n, 1)
			out = L.Get(-1)
			L.Pop(1)
		}
		if out != nil {
			switch o := out.(type) {
			case lua.LString:
				b.WriteString(string(o))
			case lua.LNumber:
				b.WriteString(o.String())
			default:
				if lua.LVAsBool(out) {
					L.RaiseError("invalid replacement value (a %s)", out.Type())
				}
				b.WriteString(s[start:end]) // false or nil keeps the match
			}
		}
		if b.Len()-last > allowed {
			v.limitHit = true
			L.RaiseError("gsub: result grew by more than %d bytes", allowed)
		}
	}
	b.WriteString(s[last:])
	v.growth -= max(b.Len()-len(s), 0)
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(count))
	return 2
}
