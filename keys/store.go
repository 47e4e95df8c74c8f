package keys

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/routing"
)

// DefaultPoll is how often a store asks its backend whether anything
// changed: a change made on one replica reaches the others within it.
const DefaultPoll = 200 * time.Millisecond

// Options configure a Store.
type Options struct {
	Logger *slog.Logger
	// Registerer takes the store's and the admin API's metrics; nil: none.
	Registerer prometheus.Registerer
	// Poll is how often the backend's version is read; 0: DefaultPoll.
	Poll time.Duration
	// StartDown opens the store even when the backend cannot be read yet
	// (no keys until it can); otherwise Open fails.
	StartDown bool
	// OnChange, when set, is called with the number of keys after each
	// change of the served keys (extproc sizes its memory limit by it).
	OnChange func(keys int)
}

// Store serves the keys of a Backend to the request path. Keys returns an
// immutable snapshot swapped in after each change; when the backend cannot
// be read, the store keeps serving the keys it last saw and reports it in
// switchyard_key_store_up.
type Store struct {
	backend  Backend
	log      *slog.Logger
	m        *metrics
	poll     time.Duration
	onChange func(int)

	// mu serializes Refresh and Update, so a reload that read the backend
	// before a change cannot swap in its older state after it.
	mu      sync.Mutex
	set     atomic.Pointer[routing.KeySet]
	version atomic.Int64
	down    atomic.Bool
}

// Open loads the backend's keys.
func Open(ctx context.Context, b Backend, o Options) (*Store, error) {
	s := &Store{backend: b, log: o.Logger, m: newMetrics(o.Registerer), poll: o.Poll, onChange: o.OnChange}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.poll <= 0 {
		s.poll = DefaultPoll
	}
	empty := newState()
	s.swap(empty, -1)
	st, v, err := b.Load(ctx)
	if err != nil {
		if !o.StartDown {
			return nil, err
		}
		s.failed(err)
		return s, nil
	}
	s.ok()
	s.swap(st, v)
	return s, nil
}

// Keys is the current snapshot; never nil.
func (s *Store) Keys() *routing.KeySet { return s.set.Load() }

// State reads the whole state from the backend, for the admin API's
// lists: the store keeps only the compiled keys in memory (half the
// memory per key).
func (s *Store) State(ctx context.Context) (State, error) {
	st, _, err := s.backend.Load(ctx)
	return st, err
}

func (s *Store) swap(st State, version int64) {
	set, skipped := st.KeySet()
	if skipped > 0 {
		s.log.Warn("key store holds keys that cannot be used; they are refused", "count", skipped)
	}
	s.set.Store(set)
	s.version.Store(version)
	s.m.keys.Set(float64(set.Len()))
	s.m.teams.Set(float64(len(st.Teams)))
	if s.onChange != nil {
		s.onChange(set.Len())
	}
}

// notifier is a backend that tells of a change as it happens (Redis
// Pub/Sub); the poll stays, for a notice lost on the way.
type notifier interface {
	Changes(ctx context.Context) <-chan struct{}
}

var _ notifier = (*Redis)(nil)

// Run polls the backend until ctx ends, reloading after every change, and
// reloads at once when the backend tells of one.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	var changed <-chan struct{} // nil, never ready, for a backend that cannot tell
	if n, ok := s.backend.(notifier); ok {
		changed = n.Changes(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Refresh(ctx)
		case <-changed:
			s.Refresh(ctx)
		}
	}
}

// Refresh reloads the keys if the backend's version moved.
func (s *Store) Refresh(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.backend.Version(ctx)
	if err == nil && v == s.version.Load() && !s.down.Load() {
		return
	}
	var st State
	if err == nil {
		st, v, err = s.backend.Load(ctx)
	}
	if err != nil {
		s.failed(err)
		return
	}
	s.ok()
	if v < s.version.Load() {
		s.log.Warn("key store version went backwards: the store lost changes (a Redis without persistence restarted?); serving what it holds now",
			"was", s.version.Load(), "now", v)
	}
	s.swap(st, v)
	s.m.reloads.Inc()
}

// Update changes the backend through fn and serves the result at once on
// this replica (the others see it when notified, or at their next poll).
func (s *Store) Update(ctx context.Context, fn func(*State) error) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, v, err := s.backend.Update(ctx, fn)
	if err != nil {
		return State{}, err
	}
	s.swap(st, v)
	return st, nil
}

func (s *Store) failed(err error) {
	s.m.up.Set(0)
	s.m.errors.Inc()
	if !s.down.Swap(true) {
		s.log.Warn("key store unreachable; serving the keys last seen", "keys", s.Keys().Len(), "err", err.Error())
	}
}

func (s *Store) ok() {
	s.m.up.Set(1)
	if s.down.Swap(false) {
		s.log.Info("key store reachable again")
	}
}

// Close closes the backend.
func (s *Store) Close() error { return s.backend.Close() }
