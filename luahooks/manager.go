package luahooks

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/watch"
)

// Options configure a Manager.
type Options struct {
	// Dir holds the scripts; "" means no hooks.
	Dir string
	// Files lists script file names in Dir in the order they run. Empty
	// means every *.lua file in Dir (not starting with "."), by name.
	Files []string
	// Timeout is each hook call's time budget (default 5ms).
	Timeout time.Duration
	// FailOpen skips a failing hook instead of failing the request.
	FailOpen bool
	// Logger receives hook failures, reloads, log() and print() output.
	Logger *slog.Logger
	// Registerer receives the package's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// PoolSize bounds the LStates of one set (default 2×GOMAXPROCS, at least 4).
	PoolSize int
	// Debounce is how long Watch waits for changes to settle (default 100ms).
	Debounce time.Duration
}

func (o Options) config() (setConfig, error) {
	var errs []error
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("hook timeout %v is negative", o.Timeout))
	}
	if o.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("hook pool size %d is negative", o.PoolSize))
	}
	for _, f := range o.Files {
		if f == "" || filepath.Base(f) != f {
			errs = append(errs, fmt.Errorf("hook file %q must be a plain file name inside the hooks directory", f))
		}
	}
	if len(o.Files) > 0 && o.Dir == "" {
		errs = append(errs, errors.New("hook files are listed but no hooks directory is set"))
	}
	if err := errors.Join(errs...); err != nil {
		return setConfig{}, err
	}
	cfg := setConfig{timeout: o.Timeout, failOpen: o.FailOpen, poolSize: o.PoolSize, logger: o.Logger}
	if cfg.timeout == 0 {
		cfg.timeout = DefaultTimeout
	}
	cfg.loadTimeout = max(10*cfg.timeout, minLoadTimeout)
	if cfg.poolSize == 0 {
		cfg.poolSize = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Manager holds the Set that serves new requests and replaces it when the
// scripts change.
type Manager struct {
	opts    Options
	cfg     setConfig
	metrics *metrics
	current atomic.Pointer[Set]

	mu      sync.Mutex // serializes reloads
	version uint64
	digest  [sha256.Size]byte

	closeCtx context.Context
	close    context.CancelFunc
}

// NewManager loads the scripts in opts.Dir. A failure here is fatal for the
// caller: there is no old set to keep serving.
func NewManager(opts Options) (*Manager, error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, fmt.Errorf("configuring hooks: %w", err)
	}
	m := &Manager{opts: opts, cfg: cfg}
	if m.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	m.cfg.metrics = m.metrics
	m.closeCtx, m.close = context.WithCancel(context.Background())
	m.current.Store(emptySet)
	if opts.Dir == "" {
		m.metrics.lastReloadOK.Set(1)
		return m, nil
	}
	if err := m.Reload(); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// Current returns the set that serves new requests. A request calls it once
// and keeps the Set for its whole life, on_response included.
func (m *Manager) Current() *Set { return m.current.Load() }

// Reload reads, compiles and validates the scripts and, if all are good,
// swaps them in as a new version. Otherwise the old set keeps serving and the
// error says why. Safe to call from several goroutines and during Watch.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.Dir == "" {
		return nil
	}
	sources, err := ReadDir(m.opts.Dir, m.opts.Files)
	if err == nil {
		digest := digestOf(sources)
		if m.version > 0 && digest == m.digest {
			m.metrics.lastReloadOK.Set(1)
			m.cfg.logger.Debug("hooks unchanged", "dir", m.opts.Dir, "hooks_version", m.version)
			return nil
		}
		var set *Set
		if set, err = buildSet(m.cfg, m.version+1, sources); err == nil {
			m.version++
			m.digest = digest
			m.current.Store(set)
			m.metrics.version.Set(float64(m.version))
			m.metrics.lastReloadOK.Set(1)
			m.cfg.logger.Info("hooks loaded", "dir", m.opts.Dir, "hooks_version", m.version,
				"scripts", set.Scripts(), "on_response", set.HasOnResponse())
			return nil
		}
	}
	m.metrics.reloadFailures.Inc()
	m.metrics.lastReloadOK.Set(0)
	m.cfg.logger.Error("hooks reload refused; the previous set keeps serving",
		"dir", m.opts.Dir, "hooks_version", m.version, "error", err)
	return fmt.Errorf("reloading hooks from %s: %w", m.opts.Dir, err)
}

// Watch reloads whenever the hooks directory changes, until ctx ends or the
// Manager is closed. It survives editors that rename temporary files, cp,
// deletes and Kubernetes ConfigMap symlink swaps.
func (m *Manager) Watch(ctx context.Context) error {
	if m.opts.Dir == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.closeCtx, cancel)
	defer stop()
	debounce := m.opts.Debounce
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	w, err := watch.New(m.opts.Dir, debounce, func() {
		_ = m.Reload() // logged and counted by Reload
	})
	if err != nil {
		return fmt.Errorf("watching hooks: %w", err)
	}
	// Pick up changes made between the last load and the start of the watch.
	_ = m.Reload()
	return w.Run(ctx)
}

// Close stops Watch. Sets already handed out keep working.
func (m *Manager) Close() error {
	m.close()
	return nil
}

// ReadDir reads the scripts of a hooks directory: the listed files in that
// order, or every *.lua file not starting with "." in name order. When dir is
// a Kubernetes ConfigMap mount, the files are read through the current
// "..data" snapshot so one reload never mixes two versions.
func ReadDir(dir string, files []string) ([]Source, error) {
	base := dir
	if fi, err := os.Lstat(filepath.Join(dir, "..data")); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if resolved, err := filepath.EvalSymlinks(filepath.Join(dir, "..data")); err == nil {
			base = resolved
		}
	}
	if len(files) == 0 {
		entries, err := os.ReadDir(base)
		if err != nil {
			return nil, fmt.Errorf("reading hooks directory: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".lua") {
				continue
			}
			fi, err := os.Stat(filepath.Join(base, name))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed while listing, or a dangling symlink
				}
				return nil, fmt.Errorf("reading hook %s: %w", name, err)
			}
			if fi.Mode().IsRegular() {
				files = append(files, name)
			}
		}
		slices.Sort(files)
	}
	sources := make([]Source, 0, len(files))
	for _, name := range files {
		code, err := os.ReadFile(filepath.Join(base, name))
		if err != nil {
			return nil, fmt.Errorf("reading hook %s: %w", name, err)
		}
		sources = append(sources, Source{Name: name, Code: code})
	}
	return sources, nil
}

func digestOf(sources []Source) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range sources {
		fmt.Fprintf(h, "%d:%s\n%d:", len(s.Name), s.Name, len(s.Code))
		h.Write(s.Code)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}
