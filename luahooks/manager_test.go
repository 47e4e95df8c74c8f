package luahooks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func writeHook(t *testing.T, dir, name, code string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
}

// versionHook stamps each request with the version of the script text.
func versionHook(v string) string {
	return `function on_request(req) req:set_header("x-hooks", "` + v + `") end`
}

// metricValues returns the value of every gauge and counter (by name and
// labels) in reg.
func metricValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+",count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestManagerReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeHook(t, dir, "10-a.lua", versionHook("1"))
	reg := prometheus.NewRegistry()
	m, err := NewManager(Options{Dir: dir, Registerer: reg, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	header := func(s *Set) string {
		t.Helper()
		res, err := s.OnRequest(context.Background(), chatRequest())
		if err != nil {
			t.Fatal(err)
		}
		return res.SetHeaders["x-hooks"]
	}
	first := m.Current()
	if first.Version() != 1 || header(first) != "1" {
		t.Fatalf("first set: version %d header %q", first.Version(), header(first))
	}

	// A good change becomes version 2.
	writeHook(t, dir, "10-a.lua", versionHook("2"))
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	second := m.Current()
	if second.Version() != 2 || header(second) != "2" {
		t.Fatalf("after reload: version %d header %q", second.Version(), header(second))
	}
	// The old set keeps working for requests that hold it.
	if header(first) != "1" {
		t.Errorf("old set changed behaviour")
	}

	// Unchanged contents: no new version.
	if err := m.Reload(); err != nil || m.Current() != second {
		t.Fatalf("reload without changes: err %v, new set %v", err, m.Current() != second)
	}

	// A broken set (one good file, one bad) is refused as a whole.
	writeHook(t, dir, "10-a.lua", versionHook("3"))
	writeHook(t, dir, "20-b.lua", "function on_request(req)\n  req:nope()\nend\n")
	err = m.Reload()
	var he *HookError
	if !errors.As(err, &he) || he.Script != "20-b.lua" || he.Line != 2 {
		t.Fatalf("broken reload err = %v, want a HookError at 20-b.lua:2", err)
	}
	if m.Current() != second {
		t.Fatal("a broken set replaced the serving one")
	}
	want := map[string]float64{
		"switchyard_hooks_version":                2,
		"switchyard_hooks_reload_failures_total":  1,
		"switchyard_hooks_last_reload_successful": 0,
	}
	got := metricValues(t, reg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	// Fixing it: version 3 with both scripts, in name order.
	writeHook(t, dir, "20-b.lua", `function on_request(req) req:set_header("x-b", req:header("x-hooks")) end`)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	third := m.Current()
	res, err := third.OnRequest(context.Background(), chatRequest())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"x-hooks": "3", "x-b": "3"}, res.SetHeaders); third.Version() != 3 || diff != "" {
		t.Errorf("version %d, headers (-want +got):\n%s", third.Version(), diff)
	}
	got = metricValues(t, reg)
	if got["switchyard_hooks_version"] != 3 || got["switchyard_hooks_last_reload_successful"] != 1 {
		t.Errorf("metrics after fix: %v", got)
	}
	if got["switchyard_hook_duration_seconds,hook=on_request,script=20-b.lua,count"] != 1 {
		t.Errorf("duration histogram not observed: %v", got)
	}

	// Removing every script leaves an empty, working set.
	for _, f := range []string{"10-a.lua", "20-b.lua"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := m.Current(); s.Version() != 4 || s.HasOnRequest() {
		t.Errorf("empty dir: version %d, has on_request %v", s.Version(), s.HasOnRequest())
	}
}

func TestManagerOptions(t *testing.T) {
	t.Parallel()
	t.Run("no dir means no hooks", func(t *testing.T) {
		t.Parallel()
		m, err := NewManager(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s := m.Current(); s.Version() != 0 || s.HasOnRequest() || s.HasOnResponse() {
			t.Errorf("Current() = version %d", s.Version())
		}
		if err := m.Reload(); err != nil {
			t.Error(err)
		}
		// Watch waits for a directory a reconfiguration may bring, until
		// its context ends.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := m.Watch(ctx); err != nil {
			t.Error(err)
		}
	})
	t.Run("broken first load is an error", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeHook(t, dir, "a.lua", "function on_request(req")
		if _, err := NewManager(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "a.lua") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing dir is an error", func(t *testing.T) {
		t.Parallel()
		if _, err := NewManager(Options{Dir: filepath.Join(t.TempDir(), "nope")}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("invalid options joined", func(t *testing.T) {
		t.Parallel()
		_, err := NewManager(Options{Timeout: -1, PoolSize: -1, Files: []string{"../x.lua"}})
		for _, want := range []string{"timeout", "pool size", "plain file name", "no hooks directory"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to mention %q", err, want)
			}
		}
	})
	t.Run("explicit file order", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeHook(t, dir, "a.lua", `function on_request(req) req:set_header("x-order", (req:header("x-order") or "") .. "a") end`)
		writeHook(t, dir, "b.lua", `function on_request(req) req:set_header("x-order", (req:header("x-order") or "") .. "b") end`)
		writeHook(t, dir, "ignored.lua", `function on_request(req) req:set_header("x-ignored", "1") end`)
		m, err := NewManager(Options{Dir: dir, Files: []string{"b.lua", "a.lua"}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Current().OnRequest(context.Background(), chatRequest())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"x-order": "ba"}, res.SetHeaders); diff != "" {
			t.Errorf("headers (-want +got):\n%s", diff)
		}
	})
	t.Run("metrics registered twice is an error", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		if _, err := NewManager(Options{Registerer: reg}); err != nil {
			t.Fatal(err)
		}
		if _, err := NewManager(Options{Registerer: reg}); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestReadDirSkipsNonScripts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeHook(t, dir, "b.lua", "b")
	writeHook(t, dir, "a.lua", "a")
	writeHook(t, dir, ".a.lua.swp", "swap")
	writeHook(t, dir, "notes.txt", "txt")
	if err := os.Mkdir(filepath.Join(dir, "dir.lua"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing.lua", filepath.Join(dir, "dangling.lua")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{{Name: "a.lua", Code: []byte("a")}, {Name: "b.lua", Code: []byte("b")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
}

// TestManagerConfigMap: files are read through the ..data snapshot, and a
// swap is picked up by Watch.
func TestManagerWatchConfigMap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stamp := func(name, v string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeHook(t, filepath.Join(dir, name), "hook.lua", versionHook(v))
	}
	stamp("..v1", "1")
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/hook.lua", filepath.Join(dir, "hook.lua")); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(Options{Dir: dir, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()

	stamp("..v2", "2")
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, m, 2)
	res, err := m.Current().OnRequest(context.Background(), chatRequest())
	if err != nil || res.SetHeaders["x-hooks"] != "2" {
		t.Fatalf("after swap: %v, %v", res.SetHeaders, err)
	}
}

func waitVersion(t *testing.T, m *Manager, v uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Current().Version() < v {
		if time.Now().After(deadline) {
			t.Fatalf("version stayed %d, want %d", m.Current().Version(), v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestManagerCloseStopsWatch(t *testing.T) {
	t.Parallel()
	m, err := NewManager(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Watch(context.Background()) }()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after Close")
	}
}

// TestConcurrentRequestsDuringReload: requests never fail and never see a
// mix of two versions while sets are swapped (run with -race).
func TestConcurrentRequestsDuringReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	two := func(v string) {
		writeHook(t, dir, "a.lua", `function on_request(req) req:set_header("x-a", "`+v+`") end`)
		writeHook(t, dir, "b.lua", `function on_request(req) req:set_header("x-b", "`+v+`") end
function on_response(res) res:set_header("x-r", "`+v+`") end`)
	}
	two("0")
	m, err := NewManager(Options{Dir: dir, Timeout: time.Second, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s := m.Current()
				res, err := s.OnRequest(context.Background(), chatRequest())
				if err != nil {
					errs <- err
					return
				}
				resp, err := s.OnResponse(context.Background(), &Response{Status: 200})
				if err != nil {
					errs <- err
					return
				}
				a, b, r := res.SetHeaders["x-a"], res.SetHeaders["x-b"], resp.SetHeaders["x-r"]
				if a != b || b != r {
					errs <- errors.New("mixed versions: " + a + b + r)
					return
				}
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		if i == 10 {
			writeHook(t, dir, "b.lua", "function on_request(req) error('broken') end")
			if err := m.Reload(); err == nil {
				t.Error("broken set accepted")
			}
		}
		two(string(rune('a' + i)))
		if err := m.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := m.Current().Version(); v != 21 {
		t.Errorf("version = %d, want 21 (20 good reloads after the first load)", v)
	}
}

// TestManagerReconfigure: a changed hooks section (on from none, another
// policy, another directory, off) applies only at commit, a bad one changes
// nothing, and Watch follows the directory committed last.
func TestManagerReconfigure(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewManager(Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	watched := make(chan error, 1)
	go func() { watched <- m.Watch(context.Background()) }()
	header := func() string {
		t.Helper()
		res, err := m.Current().OnRequest(context.Background(), chatRequest())
		if err != nil {
			t.Fatal(err)
		}
		return res.SetHeaders["x-hooks"]
	}

	a, b := t.TempDir(), t.TempDir()
	writeHook(t, a, "v.lua", versionHook("a1"))
	writeHook(t, b, "v.lua", versionHook("b1"))
	commit, err := m.Reconfigure(Options{Dir: a, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := header(); got != "" {
		t.Fatalf("before commit the hooks ran: x-hooks %q", got)
	}
	commit()
	if got, v := header(), m.Current().Version(); got != "a1" || v != 1 {
		t.Fatalf("after commit: x-hooks %q, version %d; want a1, 1", got, v)
	}

	writeHook(t, b, "bad.lua", "function on_request(req) ")
	if _, err := m.Reconfigure(Options{Dir: b}); err == nil {
		t.Fatal("a directory with a script that does not compile was accepted")
	}
	if _, err := m.Reconfigure(Options{Dir: a, Timeout: -time.Second}); err == nil {
		t.Fatal("a negative timeout was accepted")
	}
	if err := os.Remove(filepath.Join(b, "bad.lua")); err != nil {
		t.Fatal(err)
	}
	commit, err = m.Reconfigure(Options{Dir: b, FailOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	commit()
	if got, v := header(), m.Current().Version(); got != "b1" || v != 2 || !m.Current().cfg.failOpen {
		t.Fatalf("after the second commit: x-hooks %q, version %d, fail open %v", got, v, m.Current().cfg.failOpen)
	}
	// The new directory is watched, the old one no longer.
	writeHook(t, b, "v.lua", versionHook("b2"))
	waitVersion(t, m, 3)
	if got := header(); got != "b2" {
		t.Fatalf("after editing the new directory: x-hooks %q", got)
	}
	writeHook(t, a, "v.lua", versionHook("a2"))

	commit, err = m.Reconfigure(Options{})
	if err != nil {
		t.Fatal(err)
	}
	commit()
	if got, v := header(), m.Current().Version(); got != "" || v != 4 {
		t.Fatalf("hooks turned off: x-hooks %q, version %d", got, v)
	}
	if got := metricValues(t, reg)["switchyard_hooks_version"]; got != 4 {
		t.Errorf("switchyard_hooks_version %v, want 4", got)
	}
	m.Close()
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
}

// TestReconfigureKeepsAnEditMadeBeforeCommit: scripts edited between
// Reconfigure and its commit (while Envoy takes its update) are the ones
// that serve after the commit, not the ones Reconfigure read.
func TestReconfigureKeepsAnEditMadeBeforeCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeHook(t, dir, "v.lua", versionHook("v1"))
	m, err := NewManager(Options{Dir: dir, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	commit, err := m.Reconfigure(Options{Dir: dir, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	writeHook(t, dir, "v.lua", versionHook("v2"))
	commit()
	res, err := m.Current().OnRequest(context.Background(), chatRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got := res.SetHeaders["x-hooks"]; got != "v2" || m.Current().cfg.timeout != 2*time.Second {
		t.Errorf("after the commit: x-hooks %q, timeout %v; want v2 with the new timeout", got, m.Current().cfg.timeout)
	}
}
