// Package reload keeps the live value of something built from files — the
// gateway config, the Lua hook set — and replaces it when they change: load
// and validate a new value, swap it in atomically, or keep the running one,
// log why and flip a "last reload successful" gauge to 0. A request reads
// Current once and keeps that value to its end.
package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/watch"
)

// ErrUnchanged, returned by a Load function, means the source holds what is
// already running: the value stays and the reload counts as a success.
var ErrUnchanged = errors.New("unchanged")

// Options configure a Holder.
type Options[T any] struct {
	// Name says what is reloaded ("config", "hooks"), for logs.
	Name string
	// Load builds and validates a new value. current is the running value,
	// nil on the first load. Returning an error keeps current.
	Load func(current *T) (*T, error)
	// Logger receives refused reloads; nil discards them.
	Logger *slog.Logger
	// LastOK, when set, is 1 after a successful load and 0 after a failed
	// one: 0 means the running value is older than the files.
	LastOK prometheus.Gauge
	// Succeeded and Failed, when set, count reloads by outcome.
	Succeeded, Failed prometheus.Counter
}

// Holder owns the live value and its reloads.
type Holder[T any] struct {
	opts    Options[T]
	mu      sync.Mutex // serializes reloads
	current atomic.Pointer[T]
	last    atomic.Pointer[Status]

	closeCtx context.Context
	close    context.CancelFunc
	// changes counts the watch's changes: a retry of an older one stops.
	changes atomic.Int64
}

// maxRetryWait bounds the wait between tries of a reload refused for a
// passing reason.
const maxRetryWait = time.Minute

// New loads the first value. Its failure is the caller's to treat as fatal:
// there is no older value to keep serving.
func New[T any](opts Options[T]) (*Holder[T], error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v, err := opts.Load(nil)
	if err != nil {
		return nil, err
	}
	h := &Holder[T]{opts: opts}
	h.closeCtx, h.close = context.WithCancel(context.Background())
	h.current.Store(v)
	h.record(true)
	return h, nil
}

// Current returns the value new requests start with.
func (h *Holder[T]) Current() *T { return h.current.Load() }

// Status is the outcome of the latest load (the first, or a reload).
type Status struct {
	At time.Time
	// OK is false when the load was refused: the running value is older
	// than the files (the log says why).
	OK bool
}

// LastReload returns the outcome of the latest load.
func (h *Holder[T]) LastReload() Status { return *h.last.Load() }

// Reload builds a new value and swaps it in, or keeps the running one and
// returns why. Safe to call from several goroutines at once.
func (h *Holder[T]) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.swap(h.opts.Load)
}

func (h *Holder[T]) swap(load func(current *T) (*T, error)) error {
	v, err := load(h.current.Load())
	switch {
	case errors.Is(err, ErrUnchanged):
		if h.opts.LastOK != nil {
			h.opts.LastOK.Set(1)
		}
		h.last.Store(&Status{At: time.Now(), OK: true})
		return nil
	case err != nil:
		h.record(false)
		h.opts.Logger.Error(h.opts.Name+" reload refused; the running "+h.opts.Name+" keeps serving", "err", err)
		return fmt.Errorf("reloading %s: %w", h.opts.Name, err)
	}
	h.current.Store(v)
	h.record(true)
	return nil
}

// Apply is Reload with another load function, for a value built from
// other sources than Load's: it runs under the same lock, and is logged and
// counted the same way.
func (h *Holder[T]) Apply(load func(current *T) (*T, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.swap(load)
}

func (h *Holder[T]) record(ok bool) {
	h.last.Store(&Status{At: time.Now(), OK: ok})
	gauge, count := 0.0, h.opts.Failed
	if ok {
		gauge, count = 1, h.opts.Succeeded
	}
	if h.opts.LastOK != nil {
		h.opts.LastOK.Set(gauge)
	}
	if count != nil {
		count.Inc()
	}
}

// WatchDir reloads after each change in dir; see watch.New and run.
func (h *Holder[T]) WatchDir(ctx context.Context, dir string, debounce time.Duration) error {
	return h.run(ctx, debounce, func(onChange func()) (*watch.Watcher, error) { return watch.New(dir, debounce, onChange) })
}

// WatchFile reloads after each change of the file at path; see
// watch.NewFile and run.
func (h *Holder[T]) WatchFile(ctx context.Context, path string, debounce time.Duration) error {
	return h.run(ctx, debounce, func(onChange func()) (*watch.Watcher, error) { return watch.NewFile(path, debounce, onChange) })
}

// run reloads on every change the watcher reports until ctx ends or the
// Holder is closed. It reloads once as soon as the watch is set up, so a
// change made between the first load and the watch is not missed.
func (h *Holder[T]) run(ctx context.Context, debounce time.Duration, start func(onChange func()) (*watch.Watcher, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.closeCtx, cancel)
	defer stop()
	change := func() { h.reloadRetrying(ctx, h.changes.Add(1), max(debounce, time.Second)) }
	w, err := start(change)
	if err != nil {
		return fmt.Errorf("watching %s: %w", h.opts.Name, err)
	}
	change()
	return w.Run(ctx)
}

// reloadRetrying reloads for the watch's change number n (logged and
// counted by Reload). The watch reports a change once, so a reload refused
// for a passing reason (an error whose Temporary method says so, as when
// an Envoy did not accept its resources in time) is tried again after
// wait, then after twice as long up to maxRetryWait, until it is not
// refused so, a newer change comes, or ctx ends.
func (h *Holder[T]) reloadRetrying(ctx context.Context, n int64, wait time.Duration) {
	var temporary interface{ Temporary() bool }
	if err := h.Reload(); err == nil || !errors.As(err, &temporary) || !temporary.Temporary() {
		return
	}
	h.opts.Logger.Info(h.opts.Name+" reload tried again later", "in", wait)
	time.AfterFunc(wait, func() {
		// A newer change, or a reload that succeeded since (SIGHUP), ends it.
		if ctx.Err() == nil && h.changes.Load() == n && !h.LastReload().OK {
			h.reloadRetrying(ctx, n, min(2*wait, maxRetryWait))
		}
	})
}

// Close stops Watch. Values already handed out stay usable.
func (h *Holder[T]) Close() error {
	h.close()
	return nil
}
