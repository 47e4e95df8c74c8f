package luahooks

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// typicalHook reads the model and sets a header.
const typicalHook = `
function on_request(req)
  if req.model == "gpt-4o" then
    req:set_header("x-tier", "premium")
  end
end`

func BenchmarkOnRequest(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	s := newTestSet(b, Options{PoolSize: 4}, "typical.lua", typicalHook)
	s.cfg.metrics = m
	req := chatRequest()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := s.OnRequest(ctx, req)
		if err != nil || res.SetHeaders["x-tier"] != "premium" {
			b.Fatalf("OnRequest = %+v, %v", res, err)
		}
	}
}

func BenchmarkOnRequestParallel(b *testing.B) {
	s := newTestSet(b, Options{}, "typical.lua", typicalHook)
	req := chatRequest()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.OnRequest(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestOnRequestAllocs keeps the per-call allocations of a typical hook in
// check (they are the main cost besides the VM itself).
func TestOnRequestAllocs(t *testing.T) {
	s := newTestSet(t, Options{PoolSize: 1}, "typical.lua", typicalHook)
	req := chatRequest()
	ctx := context.Background()
	if _, err := s.OnRequest(ctx, req); err != nil { // warm the pool
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.OnRequest(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	const budget = 20
	if allocs > budget {
		t.Errorf("OnRequest allocates %.0f times per call, budget %d", allocs, budget)
	}
	t.Logf("allocs per OnRequest: %.0f", allocs)
}

// libraryHook reaches globals and the string and table libraries, as a
// hook that cleans a header does.
const libraryHook = `
function on_request(req)
  local team = string.lower(req:header("x-team") or "")
  local parts = {}
  table.insert(parts, team)
  table.insert(parts, tostring(#team))
  req:set_header("x-team-norm", table.concat(parts, ":"):upper())
end`

func BenchmarkOnRequestLibraries(b *testing.B) {
	s := newTestSet(b, Options{PoolSize: 4}, "library.lua", libraryHook)
	req := chatRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.OnRequest(ctx, req)
		if err != nil || res.SetHeaders["x-team-norm"] != "SEARCH:6" {
			b.Fatalf("OnRequest = %+v, %v", res, err)
		}
	}
}
