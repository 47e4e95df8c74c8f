package luahooks

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	lua "github.com/yuin/gopher-lua"

	"switchyard/internal/jsonstr"
)

// maxDepth bounds the nesting of converted values; it also stops cycles.
const maxDepth = 64

// conv converts values between Lua and Go/JSON inside one LState.
//
// Rules: JSON null is the Lua global null (a sentinel, so arrays keep their
// holes); a Lua table whose keys are exactly 1..n is an array, any other
// non-empty table an object with string (or integral number) keys; an empty
// table is {} unless it came from an empty JSON array (it then carries a
// marker metatable and stays []); numbers that are integral and below 1e21
// are written without a fraction or exponent; invalid UTF-8 in strings is written as
// U+FFFD, one per bad byte.
type conv struct {
	L       *lua.LState
	null    *lua.LUserData
	arrayMT *lua.LTable
	left    int // what toGo may still build in this conversion (convLimit)
}

// convLimit bounds what one conversion of a Lua value builds: bytes of
// JSON, or values and string bytes of Go data. Depth alone does not bound
// it: a table holding the same sub-table twice, 40 levels down, is small
// in Lua and 2^40 values converted.
const convLimit = 16 << 20

var errTooBig = fmt.Errorf("value too big to convert (over %d bytes, or a table repeated many times over)", convLimit)

func newConv(L *lua.LState) *conv {
	c := &conv{L: L, null: L.NewUserData(), arrayMT: L.NewTable()}
	c.null.Value = nullValue{}
	nullMT := L.NewTable()
	nullMT.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString("null"))
		return 1
	}))
	nullMT.RawSetString("__metatable", lua.LFalse)
	c.null.Metatable = nullMT
	c.arrayMT.RawSetString("__metatable", lua.LString("array"))
	return c
}

type nullValue struct{}

var errTooDeep = errors.New("value nested too deeply (or a table refers to itself)")

// fromJSON converts a parsed JSON value to Lua.
func (c *conv) fromJSON(r gjson.Result, depth int) (lua.LValue, error) {
	switch r.Type {
	case gjson.Null:
		return c.null, nil
	case gjson.False:
		return lua.LFalse, nil
	case gjson.True:
		return lua.LTrue, nil
	case gjson.Number:
		if math.IsInf(r.Num, 0) || math.IsNaN(r.Num) {
			return nil, fmt.Errorf("number %s is out of range", clip(r.Raw, 32))
		}
		return lua.LNumber(r.Num), nil
	case gjson.String:
		return lua.LString(r.Str), nil
	}
	if depth >= maxDepth {
		return nil, errTooDeep
	}
	var err error
	if r.IsArray() {
		t := c.L.CreateTable(4, 0)
		n := 0
		r.ForEach(func(_, v gjson.Result) bool {
			var lv lua.LValue
			lv, err = c.fromJSON(v, depth+1)
			if err != nil {
				return false
			}
			n++
			t.RawSetInt(n, lv)
			return true
		})
		if n == 0 {
			t.Metatable = c.arrayMT
		}
		return t, err
	}
	t := c.L.CreateTable(0, 4)
	r.ForEach(func(k, v gjson.Result) bool {
		var lv lua.LValue
		lv, err = c.fromJSON(v, depth+1)
		if err != nil {
			return false
		}
		t.RawSetString(jsonKey(k.Str), lv)
		return true
	})
	return t, err
}

// jsonKey is key as jsonstr.Append writes it back (each invalid UTF-8 byte
// U+FFFD), so that keys differing only in invalid bytes become one key on
// decoding, the last one winning as in any JSON parser, instead of
// duplicate keys on encoding.
func jsonKey(key string) string {
	if utf8.ValidString(key) {
		return key
	}
	return string([]rune(key))
}

// fromGo converts a Go value (as produced by encoding/json or toGo) to Lua.
func (c *conv) fromGo(v any, depth int) (lua.LValue, error) {
	if depth >= maxDepth {
		return nil, errTooDeep
	}
	switch v := v.(type) {
	case nil:
		return c.null, nil
	case bool:
		return lua.LBool(v), nil
	case int:
		return lua.LNumber(v), nil
	case int64:
		return lua.LNumber(v), nil
	case float64:
		return lua.LNumber(v), nil
	case string:
		return lua.LString(v), nil
	case []string:
		t := c.L.CreateTable(len(v), 0)
		for i, s := range v {
			t.RawSetInt(i+1, lua.LString(s))
		}
		if len(v) == 0 {
			t.Metatable = c.arrayMT
		}
		return t, nil
	case []any:
		t := c.L.CreateTable(len(v), 0)
		for i, e := range v {
			lv, err := c.fromGo(e, depth+1)
			if err != nil {
				return nil, err
			}
			t.RawSetInt(i+1, lv)
		}
		if len(v) == 0 {
			t.Metatable = c.arrayMT
		}
		return t, nil
	case map[string]string:
		t := c.L.CreateTable(0, len(v))
		for k, s := range v {
			t.RawSetString(k, lua.LString(s))
		}
		return t, nil
	case map[string]any:
		t := c.L.CreateTable(0, len(v))
		for k, e := range v {
			lv, err := c.fromGo(e, depth+1)
			if err != nil {
				return nil, err
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	}
	return nil, fmt.Errorf("cannot convert Go %T to Lua", v)
}

// tableShape classifies a table: array length n (keys exactly 1..n), or an
// object with the sorted list of its keys as strings.
func (c *conv) tableShape(t *lua.LTable) (isArray bool, n int, keys []string, vals map[string]lua.LValue, err error) {
	count, maxInt := 0, 0
	allInts := true
	t.ForEach(func(k, _ lua.LValue) {
		count++
		if f, ok := k.(lua.LNumber); ok && float64(f) == math.Trunc(float64(f)) && f >= 1 && f <= math.MaxInt32 {
			maxInt = max(maxInt, int(f))
			return
		}
		allInts = false
	})
	if count == 0 {
		return t.Metatable == c.arrayMT, 0, nil, nil, nil
	}
	if allInts && maxInt == count {
		return true, count, nil, nil, nil
	}
	keys = make([]string, 0, count)
	vals = make(map[string]lua.LValue, count)
	t.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		var ks string
		switch k := k.(type) {
		case lua.LString:
			ks = string(k)
		case lua.LNumber:
			ks = formatNumber(float64(k))
		default:
			err = fmt.Errorf("cannot convert a table with a %s key to JSON", k.Type())
			return
		}
		if _, dup := vals[ks]; dup {
			err = fmt.Errorf("table has both a string and a number key %q", ks)
			return
		}
		keys = append(keys, ks)
		vals[ks] = v
	})
	slices.Sort(keys)
	return false, 0, keys, vals, err
}

// element is t[i] wherever the table keeps it. Past maxArrayIndex, an
// index a script sets goes to the hash part, where indexing looks, and
// table.insert appends to the array part, where it does not: a sequence
// built either way converts whole.
func element(t *lua.LTable, i int) lua.LValue {
	if v := t.RawGetInt(i); v != lua.LNil {
		return v // table.insert appends to the array part past the bound too
	}
	return t.RawGet(lua.LNumber(i))
}

func formatNumber(f float64) string {
	return string(appendNumber(nil, f))
}

// appendNumber writes integral values below 1e21 without a fraction or
// exponent, others in the shortest form that reads back the same.
func appendNumber(b []byte, f float64) []byte {
	if f == 0 {
		return append(b, '0')
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendJSON appends the JSON encoding of a Lua value.
func (c *conv) appendJSON(b []byte, v lua.LValue, depth int) ([]byte, error) {
	return c.appendJSONOver(b, v, gjson.Result{}, depth)
}

// appendJSONOver is appendJSON for a value that came from the JSON orig
// and may have changed since: a number still equal to the one at the same
// place in orig keeps orig's text. Lua numbers are float64, so an integer
// above 2^53 (an id) came back changed, 9007199254740993 as ...992, when a
// hook changed another field beside it.
func (c *conv) appendJSONOver(b []byte, v lua.LValue, orig gjson.Result, depth int) ([]byte, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return append(b, "null"...), nil
	case lua.LBool:
		return strconv.AppendBool(b, bool(v)), nil
	case lua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, fmt.Errorf("cannot convert %v to JSON", f)
		}
		if orig.Type == gjson.Number && orig.Num == f {
			return append(b, orig.Raw...), nil
		}
		return appendNumber(b, f), nil
	case lua.LString:
		if len(b)+len(v) > convLimit {
			return b, errTooBig
		}
		return jsonstr.Append(b, string(v)), nil
	case *lua.LUserData:
		if v == c.null {
			return append(b, "null"...), nil
		}
	case *lua.LTable:
		if depth >= maxDepth {
			return b, errTooDeep
		}
		if len(b) > convLimit {
			return b, errTooBig
		}
		isArray, n, keys, vals, err := c.tableShape(v)
		if err != nil {
			return b, err
		}
		if isArray {
			var origElems []gjson.Result
			if orig.IsArray() {
				origElems = orig.Array()
			}
			b = append(b, '[')
			for i := 1; i <= n; i++ {
				if i > 1 {
					b = append(b, ',')
				}
				var o gjson.Result
				if i <= len(origElems) {
					o = origElems[i-1]
				}
				if b, err = c.appendJSONOver(b, element(v, i), o, depth+1); err != nil {
					return b, err
				}
			}
			return append(b, ']'), nil
		}
		var origFields map[string]gjson.Result
		if orig.IsObject() {
			origFields = make(map[string]gjson.Result)
			orig.ForEach(func(k, v gjson.Result) bool {
				origFields[jsonKey(k.Str)] = v
				return true
			})
		}
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, k)
			b = append(b, ':')
			if b, err = c.appendJSONOver(b, vals[k], origFields[k], depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	}
	return b, fmt.Errorf("cannot convert a %s to JSON", v.Type())
}

// toGo converts a Lua value to plain Go data: nil, bool, int64 (integral
// numbers below 2^63), float64, string, []any, map[string]any.
func (c *conv) toGo(v lua.LValue, depth int) (any, error) {
	if depth == 0 {
		c.left = convLimit
	}
	if c.left--; c.left < 0 {
		return nil, errTooBig
	}
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		f := float64(v)
		if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
		return f, nil
	case lua.LString:
		if c.left -= len(v); c.left < 0 {
			return nil, errTooBig
		}
		return string(v), nil
	case *lua.LUserData:
		if v == c.null {
			return nil, nil
		}
	case *lua.LTable:
		if depth >= maxDepth {
			return nil, errTooDeep
		}
		isArray, n, keys, vals, err := c.tableShape(v)
		if err != nil {
			return nil, err
		}
		if isArray {
			out := make([]any, n)
			for i := range n {
				if out[i], err = c.toGo(element(v, i+1), depth+1); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
		out := make(map[string]any, len(keys))
		for _, k := range keys {
			if out[k], err = c.toGo(vals[k], depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot convert a %s to a Go value", v.Type())
}
