package keys

import (
	"context"
	"maps"
)

// Backend keeps a store's state.
type Backend interface {
	// Load returns the state and its version.
	Load(ctx context.Context) (State, int64, error)
	// Version returns the state's version; it changes with every Update,
	// whichever replica made it.
	Version(ctx context.Context) (int64, error)
	// Update applies fn to a copy of the latest state and saves the result
	// atomically. An error from fn changes nothing and is returned as is.
	Update(ctx context.Context, fn func(*State) error) (State, int64, error)
	Close() error
}

var (
	_ Backend = (*File)(nil)
	_ Backend = (*Redis)(nil)
)

// clone copies the maps; callers replace values, never modify them.
func (s State) clone() State {
	return State{Keys: maps.Clone(s.Keys), Teams: maps.Clone(s.Teams)}
}
