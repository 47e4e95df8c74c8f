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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/reload"
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
// scripts change, or when Reconfigure gives it other options.
type Manager struct {
	// state is the options the running set was built with; it changes
	// only inside a reload of sets, which serializes them.
	state   atomic.Pointer[managerState]
	metrics *metrics
	sets    *reload.Holder[Set]
	// rewatch tells Watch that the directory changed.
	rewatch chan struct{}
	closed  context.Context
	close   context.CancelFunc
}

type managerState struct {
	opts Options
	cfg  setConfig
}

// NewManager loads the scripts in opts.Dir. A failure here is fatal for the
// caller: there is no old set to keep serving.
func NewManager(opts Options) (*Manager, error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, fmt.Errorf("configuring hooks: %w", err)
	}
	m := &Manager{rewatch: make(chan struct{}, 1)}
	m.closed, m.close = context.WithCancel(context.Background())
	if m.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	cfg.metrics = m.metrics
	m.state.Store(&managerState{opts: opts, cfg: cfg})
	m.sets, err = reload.New(reload.Options[Set]{
		Name:   "hooks",
		Load:   m.load,
		Logger: cfg.logger,
		LastOK: m.metrics.lastReloadOK,
		Failed: m.metrics.reloadFailures,
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Current returns the set that serves new requests. A request calls it once
// and keeps the Set for its whole life, on_response included.
func (m *Manager) Current() *Set { return m.sets.Current() }

// Reload reads, compiles and validates the scripts and, if all are good,
// swaps them in as a new version. Otherwise the old set keeps serving and the
// error says why. Safe to call from several goroutines and during Watch.
func (m *Manager) Reload() error { return m.sets.Reload() }

// load builds the next version from the directory, or reports that the
// scripts are the ones running.
func (m *Manager) load(current *Set) (*Set, error) {
	st := m.state.Load()
	if st.opts.Dir == "" {
		if current != nil {
			return nil, reload.ErrUnchanged
		}
		return emptySet, nil
	}
	sources, err := ReadDir(st.opts.Dir, st.opts.Files)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", st.opts.Dir, err)
	}
	digest := digestOf(sources)
	var version uint64
	if current != nil {
		if digest == current.digest {
			st.cfg.logger.Debug("hooks unchanged", "dir", st.opts.Dir, "hooks_version", current.version)
			return nil, reload.ErrUnchanged
		}
		version = current.version
	}
	set, err := buildSet(st.cfg, version+1, sources)
	if err != nil {
		return nil, fmt.Errorf("loading %s as version %d: %w", st.opts.Dir, version+1, err)
	}
	set.digest = digest
	m.loaded(st, set)
	return set, nil
}

func (m *Manager) loaded(st *managerState, set *Set) {
	m.metrics.version.Set(float64(set.version))
	st.cfg.logger.Info("hooks loaded", "dir", st.opts.Dir, "hooks_version", set.version,
		"scripts", set.Scripts(), "on_response", set.HasOnResponse(), "timeout", st.cfg.timeout, "fail_open", st.cfg.failOpen)
}

// Reconfigure reads, compiles and validates the scripts opts names (the
// same checks as NewManager; Registerer is ignored, the metrics stay)
// without changing anything: on success, commit swaps the new set in for
// new requests (requests in flight keep theirs) and Watch follows the new
// directory. A caller that must also make other changes succeed first (for
// Envoy to send what the hooks need) calls commit after them; commit then
// reloads the directory, should the scripts have changed meanwhile.
func (m *Manager) Reconfigure(opts Options) (commit func(), err error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, fmt.Errorf("configuring hooks: %w", err)
	}
	cfg.metrics = m.metrics
	st := &managerState{opts: opts, cfg: cfg}
	var sources []Source
	if opts.Dir != "" {
		if sources, err = ReadDir(opts.Dir, opts.Files); err != nil {
			return nil, fmt.Errorf("reading %s: %w", opts.Dir, err)
		}
	}
	// The number is set at commit; scripts never see it before.
	set, err := buildSet(cfg, 0, sources)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", opts.Dir, err)
	}
	set.digest = digestOf(sources)
	return func() {
		_ = m.sets.Apply(func(current *Set) (*Set, error) {
			set.version = current.version + 1
			old := m.state.Swap(st)
			m.loaded(st, set)
			if old.opts.Dir != opts.Dir {
				select {
				case m.rewatch <- struct{}{}:
				default:
				}
			}
			return set, nil
		})
		// The scripts may have changed since they were read, and the
		// watch's reload of them run before this commit: read them again.
		_ = m.Reload() // logged and counted by the holder
	}, nil
}

// Watch reloads whenever the hooks directory changes, until ctx ends or the
// Manager is closed. It survives editors that rename temporary files, cp,
// deletes and Kubernetes ConfigMap symlink swaps.
// After Reconfigure commits another directory, it watches that one.
func (m *Manager) Watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.closed, cancel)
	defer stop()
	for {
		rewatch, err := m.watchOnce(ctx)
		if !rewatch {
			return err
		}
	}
}

// watchOnce watches the current directory until ctx ends or the directory
// changes (rewatch).
func (m *Manager) watchOnce(ctx context.Context) (rewatch bool, err error) {
	st := m.state.Load()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if st.opts.Dir == "" {
			<-wctx.Done()
			done <- nil
			return
		}
		debounce := st.opts.Debounce
		if debounce <= 0 {
			debounce = 100 * time.Millisecond
		}
		done <- m.sets.WatchDir(wctx, st.opts.Dir, debounce)
	}()
	select {
	case <-m.rewatch:
		cancel()
		<-done
		return true, nil
	case err := <-done:
		return false, err
	}
}

// Close stops Watch. Sets already handed out keep working.
func (m *Manager) Close() error {
	m.close()
	return m.sets.Close()
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

// LastReload is the outcome of the latest load of the scripts.
func (m *Manager) LastReload() reload.Status { return m.sets.LastReload() }
