// Package watch calls a function when a directory, or one file in it,
// changes. It watches the directory itself, not the files, so it survives
// every way files get replaced: editors that write a temporary file and
// rename it over the original, cp, delete and re-create, and Kubernetes
// ConfigMap mounts where the "..data" symlink is swapped. Bursts of events are
// debounced into one call.
package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher watches one directory. Create it with New or NewFile, then Run it.
type Watcher struct {
	dir      string
	debounce time.Duration
	onChange func()
	w        *fsnotify.Watcher

	// file, when set, limits calls to changes of this file's contents
	// (read through symlinks).
	file     string
	lastData []byte
	lastOK   bool
}

// New starts watching dir. onChange runs on the Run goroutine, never twice
// at once, after changes in dir have been quiet for debounce.
func New(dir string, debounce time.Duration, onChange func()) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("creating watcher: %w", err)
	}
	dir = filepath.Clean(dir)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watching %s: %w", dir, err)
	}
	return &Watcher{dir: dir, debounce: debounce, onChange: onChange, w: w}, nil
}

// NewFile starts watching the directory of path and calls onChange when the
// file's contents change, it appears or it disappears.
func NewFile(path string, debounce time.Duration, onChange func()) (*Watcher, error) {
	path = filepath.Clean(path)
	w, err := New(filepath.Dir(path), debounce, onChange)
	if err != nil {
		return nil, err
	}
	w.file = path
	w.lastData, w.lastOK = readFile(path)
	return w, nil
}

// Dir watches dir until ctx ends; see New.
func Dir(ctx context.Context, dir string, debounce time.Duration, onChange func()) error {
	w, err := New(dir, debounce, onChange)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// File watches one file until ctx ends; see NewFile.
func File(ctx context.Context, path string, debounce time.Duration, onChange func()) error {
	w, err := NewFile(path, debounce, onChange)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Run delivers changes until ctx ends, then releases the watch. It returns
// nil when ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.w.Close()
	timer := time.NewTimer(w.debounce)
	timer.Stop()
	defer timer.Stop()
	// While the directory itself is gone, retry adding it.
	var retry *time.Ticker
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.w.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			if filepath.Clean(ev.Name) == w.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) && retry == nil {
				retry = time.NewTicker(w.debounce)
				retryC = retry.C
			}
			timer.Reset(w.debounce)
		case _, ok := <-w.w.Errors:
			if !ok {
				return errors.New("watcher closed")
			}
			// Events may have been lost (queue overflow): look again.
			timer.Reset(w.debounce)
		case <-retryC:
			if err := w.w.Add(w.dir); err == nil {
				retry.Stop()
				retry, retryC = nil, nil
				timer.Reset(w.debounce)
			}
		case <-timer.C:
			w.fire()
		}
	}
}

func (w *Watcher) fire() {
	if w.file != "" {
		data, ok := readFile(w.file)
		if ok == w.lastOK && bytes.Equal(data, w.lastData) {
			return
		}
		w.lastData, w.lastOK = data, ok
	}
	w.onChange()
}

func readFile(path string) ([]byte, bool) {
	data, err := os.ReadFile(path)
	return data, err == nil
}
