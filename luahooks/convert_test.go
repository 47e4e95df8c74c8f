package luahooks

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"
	lua "github.com/yuin/gopher-lua"
)

func newTestConv(t testing.TB) *conv {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	t.Cleanup(L.Close)
	return newConv(L)
}

// TestJSONRoundTrip: JSON -> Lua -> JSON keeps the document (keys sorted,
// numbers normalised).
func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`null`, `null`},
		{`true`, `true`},
		{`3`, `3`},
		{`-0`, `0`},
		{`1.5`, `1.5`},
		{`1e3`, `1000`},
		{`1e300`, `1e+300`},
		{`1e20`, `100000000000000000000`},
		{`9007199254740993`, `9007199254740992`},
		{`"a\"b\\c\n\u00e9\u2028<>&"`, `"a\"b\\c\né\u2028<>&"`},
		{`[]`, `[]`},
		{`{}`, `{}`},
		{`[1,null,3]`, `[1,null,3]`},
		{`[[],{},[[]]]`, `[[],{},[[]]]`},
		{`{"b":1,"a":[true,false],"c":{"d":null}}`, `{"a":[true,false],"b":1,"c":{"d":null}}`},
		{`{"1":"x","2":"y"}`, `{"1":"x","2":"y"}`},
		{`{"messages":[{"role":"user","content":"hi"}],"n":2}`, `{"messages":[{"content":"hi","role":"user"}],"n":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			c := newTestConv(t)
			lv, err := c.fromJSON(gjson.Parse(tt.in), 0)
			if err != nil {
				t.Fatalf("fromJSON: %v", err)
			}
			got, err := c.appendJSON(nil, lv, 0)
			if err != nil {
				t.Fatalf("appendJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("round trip of %s = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestLuaToJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr, want, wantErr string
	}{
		{"array", `{1, 2, 3}`, `[1,2,3]`, ""},
		{"object", `{b = 1, a = "x"}`, `{"a":"x","b":1}`, ""},
		{"empty table", `{}`, `{}`, ""},
		{"hole makes object", `{[1] = "a", [3] = "c"}`, `{"1":"a","3":"c"}`, ""},
		{"mixed keys", `{"a", x = 1}`, `{"1":"a","x":1}`, ""},
		{"float key", `{[1.5] = true}`, `{"1.5":true}`, ""},
		{"nested", `{a = {b = {1, {c = false}}}}`, `{"a":{"b":[1,{"c":false}]}}`, ""},
		{"null sentinel", `{1, null, 3}`, `[1,null,3]`, ""},
		{"int stays int", `2^40`, `1099511627776`, ""},
		{"fraction", `1/4`, `0.25`, ""},
		{"invalid utf8", `"a\255b\192"`, "\"a\uFFFDb\uFFFD\"", ""},
		{"control chars", `"\1\31"`, `"\u0001\u001f"`, ""},
		{"bool key", `{[true] = 1}`, "", "boolean key"},
		{"duplicate key", `{[1] = "a", ["1"] = "b"}`, "", "both a string and a number key"},
		{"function", `print`, "", "cannot convert a function"},
		{"infinity", `1/0`, "", "cannot convert +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			L := lua.NewState(stateOptions)
			defer L.Close()
			L.OpenLibs()
			c := newConv(L)
			L.SetGlobal("null", c.null)
			if err := L.DoString("value = " + tt.expr); err != nil {
				t.Fatal(err)
			}
			got, err := c.appendJSON(nil, L.GetGlobal("value"), 0)
			if tt.wantErr != "" {
				if err == nil || !contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("%s = %s, want %s", tt.expr, got, tt.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestGoLuaGo(t *testing.T) {
	t.Parallel()
	c := newTestConv(t)
	in := map[string]any{
		"s": "x", "i": int64(3), "f": 2.5, "b": true, "n": nil,
		"a":  []any{int64(1), "two", []any{}, map[string]any{"k": false}},
		"ss": []string{"p", "q"},
		"m":  map[string]string{"h": "v"},
	}
	lv, err := c.fromGo(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.toGo(lv, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"s": "x", "i": int64(3), "f": 2.5, "b": true, "n": nil,
		"a":  []any{int64(1), "two", []any{}, map[string]any{"k": false}},
		"ss": []any{"p", "q"},
		"m":  map[string]any{"h": "v"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Go -> Lua -> Go (-want +got):\n%s", diff)
	}
	if _, err := c.fromGo(struct{}{}, 0); err == nil {
		t.Error("fromGo(struct{}) succeeded, want an error")
	}
	if _, err := c.toGo(lua.LNumber(math.NaN()), 0); err != nil {
		t.Errorf("toGo(NaN) = %v, want the float", err)
	}
}

// FuzzConvert checks that conversions never panic, always produce valid
// JSON, are stable after one round, and that any byte string converts to a
// JSON string holding its valid-UTF-8 form.
func FuzzConvert(f *testing.F) {
	for _, seed := range []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"n":1,"t":0.7}`,
		`[1,null,[],{},"\u00e9",-1.5e-7,12345678901234567890]`,
		`"\ud800"`, "\xff\xfe", `{"a":{"a":{"a":[[[[]]]]}}}`, `{"1":1,"2":2}`, ``, `nul`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		L := lua.NewState(lua.Options{SkipOpenLibs: true})
		defer L.Close()
		c := newConv(L)

		// Any bytes as a Lua string.
		out, err := c.appendJSON(nil, lua.LString(data), 0)
		if err != nil {
			t.Fatalf("appendJSON(string): %v", err)
		}
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("string %q encoded as invalid JSON %s: %v", data, out, err)
		}
		if want := string([]rune(string(data))); s != want {
			t.Fatalf("string %q round-tripped to %q, want %q", data, s, want)
		}

		// Bytes as a JSON document.
		if !gjson.ValidBytes(data) {
			return
		}
		lv, err := c.fromJSON(gjson.ParseBytes(data), 0)
		if err != nil {
			return // too deeply nested
		}
		j1, err := c.appendJSON(nil, lv, 0)
		if err != nil {
			t.Fatalf("appendJSON of decoded %s: %v", data, err)
		}
		if !json.Valid(j1) {
			t.Fatalf("%s encoded as invalid JSON %s", data, j1)
		}
		lv2, err := c.fromJSON(gjson.ParseBytes(j1), 0)
		if err != nil {
			t.Fatalf("fromJSON of own output %s: %v", j1, err)
		}
		j2, err := c.appendJSON(nil, lv2, 0)
		if err != nil || string(j1) != string(j2) {
			t.Fatalf("not stable: %s -> %s -> %s (%v)", data, j1, j2, err)
		}
		g, err := c.toGo(lv, 0)
		if err != nil {
			t.Fatalf("toGo of decoded %s: %v", data, err)
		}
		if _, err := json.Marshal(g); err != nil {
			t.Fatalf("toGo result of %s does not marshal: %v", data, err)
		}
	})
}

// TestLongArrayRoundTrip: an array longer than the tables' array part
// (maxArrayIndex) reaches the script whole and goes back to JSON whole;
// its tail lives in the table's hash part, where RawGetInt does not look.
func TestLongArrayRoundTrip(t *testing.T) {
	t.Parallel()
	n := maxArrayIndex + 10
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i + 1
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSet(t, Options{}, "a.lua", `
function on_request(req)
  local ids = req.body:get("ids")
  if ids == nil then return end
  req:set_header("x-last", tostring(ids[`+strconv.Itoa(n)+`]))
  req.body:set("ids", ids)
end`)
	req := chatRequest()
	req.Body = []byte(`{"model":"m","ids":` + string(idsJSON) + `}`)
	got, err := onRequest(t, s, req)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(n); got.SetHeaders["x-last"] != want {
		t.Errorf("ids[%d] = %q, want %s", n, got.SetHeaders["x-last"], want)
	}
	if back := gjson.GetBytes(got.Body, "ids").Raw; back != string(idsJSON) {
		t.Errorf("ids changed on the way back: %d bytes, want %d; tail %q", len(back), len(idsJSON), back[max(0, len(back)-40):])
	}
}

// TestLongArraysBuiltInLua: a sequence a script builds past maxArrayIndex,
// by table.insert or by index, goes to JSON whole, and what the script
// sees of it is what luahooks/doc.go says.
func TestLongArraysBuiltInLua(t *testing.T) {
	t.Parallel()
	n := maxArrayIndex + 10
	s := newTestSet(t, Options{}, "a.lua", `
function on_request(req)
  local n = `+strconv.Itoa(n)+`
  local a, b = {}, {}
  for i = 1, n do table.insert(a, i); b[i] = i end
  req:set_header("x-a", #a .. " " .. tostring(a[n]))
  req:set_header("x-b", tostring(b[n]))
  req.body:set("a", a)
  req.body:set("b", b)
end`)
	got, err := onRequest(t, s, chatRequest())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		v := gjson.GetBytes(got.Body, name).Array()
		if len(v) != n || v[n-1].Int() != int64(n) || strings.Contains(gjson.GetBytes(got.Body, name).Raw, "null") {
			t.Errorf("%s: %d elements, the last %s", name, len(v), v[len(v)-1].Raw)
		}
	}
	if got.SetHeaders["x-a"] != strconv.Itoa(n)+" nil" || got.SetHeaders["x-b"] != strconv.Itoa(n) {
		t.Errorf("the script saw #a and a[n] %q, b[n] %q", got.SetHeaders["x-a"], got.SetHeaders["x-b"])
	}
}
