package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// File keeps the state in one JSON file, replaced atomically on every
// change (written beside it, synced, renamed over it): a crash leaves the
// old file or the new one, never a mix. It serves one replica; many
// replicas share a Redis backend instead.
type File struct {
	path    string
	mu      sync.Mutex
	version int64
}

// NewFile returns a backend over the file at path; a missing file is an
// empty store, created by the first change.
func NewFile(path string) *File { return &File{path: path} }

func (f *File) read() (State, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return State{}, fmt.Errorf("reading key store %s: %w", f.path, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("decoding key store %s: %w", f.path, err)
	}
	s.init()
	return s, nil
}

// Load reads the file.
func (f *File) Load(context.Context) (State, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.read()
	return s, f.version, err
}

// Version counts this process's changes: the file has one writer.
func (f *File) Version(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version, nil
}

// Update reads the file, applies fn and writes the result atomically.
func (f *File) Update(_ context.Context, fn func(*State) error) (State, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.read()
	if err != nil {
		return State{}, f.version, err
	}
	s = s.clone()
	if err := fn(&s); err != nil {
		return State{}, f.version, err
	}
	if err := writeAtomic(f.path, s); err != nil {
		return State{}, f.version, err
	}
	f.version++
	return s, f.version, nil
}

// Close does nothing: every change is on disk when Update returns.
func (f *File) Close() error { return nil }

func writeAtomic(path string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding key store: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing key store: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing key store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing key store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing key store: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing key store: %w", err)
	}
	// The rename itself is durable once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
