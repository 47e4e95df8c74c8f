package luahooks

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBudgetsHoldAgainstAmplifiers: a hook whose one call would run for
// ever, or build gigabytes, before the sandbox's checks saw it is stopped
// within its budget. Before these checks: table.concat with indices whose
// difference overflows looped for ever; a format's argument index hid a
// width of 1e6 per verb; gsub copied a long match once per "%0"; "%b" over a
// client's body of braces ran 1.8 s against a 50 ms budget; converting a
// table that holds the same table many times over built every copy.
func TestBudgetsHoldAgainstAmplifiers(t *testing.T) {
	braces := `{"model":"m","x":"` + strings.Repeat("{", 2<<20) + `"}`
	for _, tc := range []struct {
		name, code, body string
		within           time.Duration
	}{
		{"concat indices that overflow", `table.concat({}, "", -2^62, 2^62)`, "", 5 * time.Second},
		{"format argument index", `local s = string.format(string.rep("%.[1]999999f", 50), 1)`, "", 5 * time.Second},
		{"format width from an argument", `local s = string.format(string.rep("%*d", 50), 999999, 1)`, "", 5 * time.Second},
		{"gsub repeating a long match", `local s = ("(" .. string.rep("a", 1e6) .. ")"):gsub("%b()", string.rep("%0", 300))`, "", 5 * time.Second},
		{"a brace pattern over a client's braces", `local i = req.body:raw():find("%b{}")`, braces, time.Second},
		// Small in Lua, 2^40 values once converted: a table holding the same
		// table twice, 40 levels down.
		{"a repeated table into the body", `local t = "x"; for i = 1, 40 do t = {t, t} end; req.body:set("blob", t)`, "", 20 * time.Second},
		{"a repeated table into a log line", `local t = "x"; for i = 1, 40 do t = {t, t} end; log("info", "m", t)`, "", 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSet(t, Options{Timeout: 50 * time.Millisecond}, "a.lua", "function on_request(req)\n"+
				// Only this test's request: the set tries each hook as it loads.
				"if req.request_id ~= 'req-1' then return end\n"+tc.code+"\nend\n")
			req := chatRequest()
			if tc.body != "" {
				req.Body = []byte(tc.body)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = s.OnRequest(context.Background(), req)
			}()
			select {
			case <-done:
			case <-time.After(tc.within):
				t.Fatalf("the hook still ran after %v, its budget 50 ms", tc.within)
			}
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
				t.Errorf("one hook call allocated %d MiB (took %v)", alloc>>20, time.Since(start))
			}
		})
	}
}

// TestSparseIndexAllocatesNoGap: a table indexed with a large number from
// the request stores one entry. gopher-lua padded its array part with nils
// up to any key below 2^26 in one Go call: t[8000000] allocated ~600 MB,
// t[67108863] 6 GB in 15 s, out of the deadline's reach.
func TestSparseIndexAllocatesNoGap(t *testing.T) {
	s := newTestSet(t, Options{}, "a.lua", `
function on_request(req)
  if req.request_id ~= 'req-1' then return end
  local t = {}
  local id = tonumber(req:header("x-id"))
  t[id] = true
  req:set_header("x-stored", tostring(t[id]))
end`)
	req := chatRequest()
	req.Headers = map[string]string{"x-id": "8000000"}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := s.OnRequest(context.Background(), req)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got.SetHeaders["x-stored"] != "true" {
		t.Errorf("t[id] = %q, want true", got.SetHeaders["x-stored"])
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("one store allocated %d MiB", alloc>>20)
	}
}
