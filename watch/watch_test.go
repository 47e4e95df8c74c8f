package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// wait is how long a test waits for a change to be noticed; it is a bound
// on failure, not a timing assertion.
const wait = 10 * time.Second

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs w until the test ends.
func run(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func expectChange(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatal("no change noticed")
	}
}

// watchDir runs a watcher on dir and returns a channel that receives one
// value per onChange call.
func watchDir(t *testing.T, dir string, debounce time.Duration) <-chan struct{} {
	t.Helper()
	ch := make(chan struct{}, 100)
	w, err := New(dir, debounce, func() { ch <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	return ch
}

func TestDirChangeKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string)
		change func(t *testing.T, dir string)
	}{
		{
			name:   "create",
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.lua"), "x") },
		},
		{
			name:   "write in place",
			setup:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.lua"), "x") },
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.lua"), "y") },
		},
		{
			name:  "editor temp file and rename",
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.lua"), "x") },
			change: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, ".a.lua.swp"), "y")
				if err := os.Rename(filepath.Join(dir, ".a.lua.swp"), filepath.Join(dir, "a.lua")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "cp from elsewhere",
			change: func(t *testing.T, dir string) {
				src := filepath.Join(t.TempDir(), "b.lua")
				write(t, src, "z")
				data, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "b.lua"), string(data))
			},
		},
		{
			name:  "delete",
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.lua"), "x") },
			change: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "a.lua")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "configmap symlink swap",
			setup: configMap("..2024_01", "v1"),
			change: func(t *testing.T, dir string) {
				swapConfigMap(t, dir, "..2024_02", "v2")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			ch := watchDir(t, dir, 20*time.Millisecond)
			tt.change(t, dir)
			expectChange(t, ch)
		})
	}
}

// configMap lays dir out like a Kubernetes ConfigMap volume: the files are
// symlinks into ..data, itself a symlink to a timestamped directory.
func configMap(stamp, content string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, stamp, "a.lua"), content)
		mustSymlink(t, stamp, filepath.Join(dir, "..data"))
		mustSymlink(t, filepath.Join("..data", "a.lua"), filepath.Join(dir, "a.lua"))
	}
}

// swapConfigMap does what the kubelet does on an update: new timestamped
// directory, new ..data_tmp symlink renamed over ..data, old directory
// removed.
func swapConfigMap(t *testing.T, dir, stamp, content string) {
	t.Helper()
	old, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, stamp, "a.lua"), content)
	mustSymlink(t, stamp, filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestDirRecreated(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "hooks")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ch := watchDir(t, dir, 20*time.Millisecond)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	expectChange(t, ch) // the removal
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.lua"), "x")
	// The watch is re-added once the directory exists again, and changes
	// after that are seen.
	deadline := time.After(wait)
	for i := 0; ; i++ {
		select {
		case <-ch:
			return
		case <-deadline:
			t.Fatal("changes in the re-created directory are not noticed")
		case <-time.After(50 * time.Millisecond):
			write(t, filepath.Join(dir, "a.lua"), string(rune('a'+i%26)))
		}
	}
}

func TestDebounceCoalesces(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ch := watchDir(t, dir, 300*time.Millisecond)
	for i := range 20 {
		write(t, filepath.Join(dir, "a.lua"), string(rune('a'+i)))
	}
	expectChange(t, ch)
	if n := len(ch); n > 2 {
		t.Errorf("20 quick writes gave %d calls, want them coalesced", n+1)
	}
}

func TestFileOnlyItsContents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "switchyard.yaml")
	write(t, path, "v1")
	got := make(chan string, 100)
	w, err := NewFile(path, 20*time.Millisecond, func() {
		data, _ := os.ReadFile(path)
		got <- string(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	write(t, filepath.Join(dir, "other.txt"), "noise")
	write(t, path, "v1") // same contents: no call
	write(t, path, "v2")
	select {
	case s := <-got:
		if s != "v2" {
			t.Errorf("first call saw %q, want the change to v2 (unrelated events must not call)", s)
		}
	case <-time.After(wait):
		t.Fatal("no change noticed")
	}
}

func TestFileConfigMapSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	configMap("..2024_01", "v1")(t, dir)
	path := filepath.Join(dir, "a.lua")
	got := make(chan string, 100)
	w, err := NewFile(path, 20*time.Millisecond, func() {
		data, _ := os.ReadFile(path)
		got <- string(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	swapConfigMap(t, dir, "..2024_02", "v2")
	select {
	case s := <-got:
		if s != "v2" {
			t.Errorf("saw %q, want v2", s)
		}
	case <-time.After(wait):
		t.Fatal("ConfigMap swap not noticed")
	}
}

func TestNewMissingDir(t *testing.T) {
	t.Parallel()
	if _, err := New(filepath.Join(t.TempDir(), "nope"), time.Millisecond, func() {}); err == nil {
		t.Fatal("New on a missing directory succeeded")
	}
}
