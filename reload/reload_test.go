package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// counter loads the integer in a file; a file that is not one fails.
type counter struct{ n int }

func fileLoader(path string) func(*counter) (*counter, error) {
	return func(cur *counter) (*counter, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var n int
		if _, err := fmt.Sscan(string(data), &n); err != nil {
			return nil, errors.New("not a number")
		}
		if cur != nil && cur.n == n {
			return nil, ErrUnchanged
		}
		return &counter{n: n}, nil
	}
}

func newTestHolder(t *testing.T, path string) (*Holder[counter], prometheus.Gauge, prometheus.Counter, prometheus.Counter) {
	t.Helper()
	lastOK := prometheus.NewGauge(prometheus.GaugeOpts{Name: "last_ok"})
	ok := prometheus.NewCounter(prometheus.CounterOpts{Name: "ok"})
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "failed"})
	h, err := New(Options[counter]{Name: "n", Load: fileLoader(path), LastOK: lastOK, Succeeded: ok, Failed: failed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, lastOK, ok, failed
}

func TestHolderKeepsTheRunningValueOnFailure(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "n")
	os.WriteFile(path, []byte("1"), 0o600)
	h, lastOK, ok, failed := newTestHolder(t, path)
	first := h.Current()
	if first.n != 1 || testutil.ToFloat64(lastOK) != 1 || testutil.ToFloat64(ok) != 1 {
		t.Fatalf("first load: %+v, last_ok %v, ok %v", first, testutil.ToFloat64(lastOK), testutil.ToFloat64(ok))
	}

	os.WriteFile(path, []byte("x"), 0o600)
	if err := h.Reload(); err == nil {
		t.Fatal("a broken file reloaded without error")
	}
	if h.Current() != first || testutil.ToFloat64(lastOK) != 0 || testutil.ToFloat64(failed) != 1 {
		t.Errorf("after a failure: value swapped %v, last_ok %v, failed %v", h.Current() != first, testutil.ToFloat64(lastOK), testutil.ToFloat64(failed))
	}

	os.WriteFile(path, []byte("1"), 0o600)
	if err := h.Reload(); err != nil || h.Current() != first || testutil.ToFloat64(lastOK) != 1 || testutil.ToFloat64(ok) != 1 {
		t.Errorf("unchanged source: err %v, value swapped %v, last_ok %v, ok %v", err, h.Current() != first, testutil.ToFloat64(lastOK), testutil.ToFloat64(ok))
	}

	os.WriteFile(path, []byte("2"), 0o600)
	if err := h.Reload(); err != nil || h.Current().n != 2 || testutil.ToFloat64(ok) != 2 {
		t.Errorf("good reload: err %v, value %+v, ok %v", err, h.Current(), testutil.ToFloat64(ok))
	}
}

func TestHolderFirstLoadFailureIsReturned(t *testing.T) {
	t.Parallel()
	_, err := New(Options[counter]{Name: "n", Load: fileLoader(filepath.Join(t.TempDir(), "absent"))})
	if err == nil {
		t.Fatal("New succeeded without a source")
	}
}

func TestWatchFileReloadsAndStopsOnClose(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "n")
	os.WriteFile(path, []byte("1"), 0o600)
	h, _, _, _ := newTestHolder(t, path)
	done := make(chan error, 1)
	go func() { done <- h.WatchFile(context.Background(), path, 10*time.Millisecond) }()

	os.WriteFile(path, []byte("5"), 0o600)
	deadline := time.Now().Add(10 * time.Second)
	for h.Current().n != 5 {
		if time.Now().After(deadline) {
			t.Fatal("the watch did not reload the changed file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WatchFile returned %v after Close", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WatchFile still running after Close")
	}
}

// TestHolderLastReload: LastReload follows each load's outcome, an
// unchanged source counting as a success.
func TestHolderLastReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "n")
	os.WriteFile(path, []byte("1"), 0o600)
	start := time.Now()
	h, _, _, _ := newTestHolder(t, path)
	if s := h.LastReload(); !s.OK || s.At.Before(start) {
		t.Fatalf("after the first load: %+v", s)
	}
	os.WriteFile(path, []byte("x"), 0o600)
	h.Reload()
	failedAt := h.LastReload()
	if failedAt.OK {
		t.Fatalf("after a refused reload: %+v, want not OK", failedAt)
	}
	os.WriteFile(path, []byte("1"), 0o600)
	h.Reload()
	if s := h.LastReload(); !s.OK || s.At.Before(failedAt.At) {
		t.Errorf("after an unchanged reload: %+v, want OK and later than %v", s, failedAt.At)
	}
}

// passing is a reload refused for a reason that passes.
type passing struct{}

func (passing) Error() string   { return "envoy is slow" }
func (passing) Temporary() bool { return true }

// TestWatchRetriesAPassingRefusal: a change whose reload is refused for a
// passing reason (an Envoy slow to accept) is applied once that passes,
// though the file does not change again.
func TestWatchRetriesAPassingRefusal(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "n")
	os.WriteFile(path, []byte("1"), 0o600)
	var refusals atomic.Int32
	refusals.Store(2)
	load := fileLoader(path)
	h, err := New(Options[counter]{Name: "n", Load: func(cur *counter) (*counter, error) {
		if cur != nil && refusals.Add(-1) >= 0 {
			return nil, fmt.Errorf("updating envoy: %w", passing{})
		}
		return load(cur)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	go func() { _ = h.WatchFile(t.Context(), path, 10*time.Millisecond) }()
	os.WriteFile(path, []byte("7"), 0o600)
	deadline := time.Now().Add(20 * time.Second)
	for h.Current().n != 7 {
		if time.Now().After(deadline) {
			t.Fatalf("the change refused for a passing reason was not applied; %d refusals left", refusals.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
