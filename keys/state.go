// Package keys holds client keys and teams that are managed while the
// gateway runs: a store that keeps only each key's digest (never the key)
// with its name, team, allowed models, limits, loop guard, expiry and
// disabled flag, and the admin API that changes it.
//
// Two backends keep the store: a JSON file written atomically (the
// default, for one replica, nothing else to run) and Redis through
// go-redis (for many replicas, which hear of a change through Pub/Sub and
// also poll a version counter, so they see it within a second even when a
// message is lost). The store compiles what the backend holds into an immutable
// routing.KeySet and swaps it in, so a request pays one atomic load.
package keys

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"switchyard/config"
	"switchyard/routing"
)

// Key is one stored client key.
type Key struct {
	Name string `json:"name"`
	// Digest is the hex SHA-256 of the key (routing.DigestOf).
	Digest    string     `json:"digest"`
	Team      string     `json:"team,omitempty"`
	Models    []string   `json:"models,omitempty"`
	MCPTools  []string   `json:"mcp_tools,omitempty"`
	Limits    Limits     `json:"limits,omitzero"`
	LoopGuard *LoopGuard `json:"loop_guard,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Disabled  bool       `json:"disabled,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Limits are budgets per calendar minute, UTC day or month; 0: none of
// that kind. Money is in US dollars, priced by the price table.
type Limits struct {
	RequestsPerMinute int64   `json:"requests_per_minute,omitempty"`
	TokensPerMinute   int64   `json:"tokens_per_minute,omitempty"`
	TokensPerDay      int64   `json:"tokens_per_day,omitempty"`
	USDPerDay         float64 `json:"usd_per_day,omitempty"`
	USDPerMonth       float64 `json:"usd_per_month,omitempty"`
}

// LoopGuard replaces the config's loop guard for one key.
type LoopGuard struct {
	MaxRepeats int    `json:"max_repeats"`
	Window     string `json:"window,omitempty"` // a Go duration; default 1m
}

// Team groups keys; its budgets are shared by all of them.
type Team struct {
	Name      string    `json:"name"`
	Limits    Limits    `json:"limits,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// State is everything a store holds, by name.
type State struct {
	Keys  map[string]Key  `json:"keys"`
	Teams map[string]Team `json:"teams"`
}

func newState() State { return State{Keys: map[string]Key{}, Teams: map[string]Team{}} }

func (s *State) init() {
	if s.Keys == nil {
		s.Keys = map[string]Key{}
	}
	if s.Teams == nil {
		s.Teams = map[string]Team{}
	}
}

func (l Limits) config() config.LimitsConfig {
	return config.LimitsConfig{RequestsPerMinute: l.RequestsPerMinute, TokensPerMinute: l.TokensPerMinute, TokensPerDay: l.TokensPerDay,
		USDPerDay: l.USDPerDay, USDPerMonth: l.USDPerMonth}
}

// Limits are stored as 32-bit counts by the rate-limit service.
const maxLimit = 1<<32 - 1

func (l Limits) validate() error {
	for _, v := range []int64{l.RequestsPerMinute, l.TokensPerMinute, l.TokensPerDay} {
		if v < 0 || v > maxLimit {
			return fmt.Errorf("limits must be from 0 to %d", int64(maxLimit))
		}
	}
	for _, usd := range []float64{l.USDPerDay, l.USDPerMonth} {
		if math.IsNaN(usd) || usd < 0 || usd > config.MaxUSDLimit {
			return fmt.Errorf("usd_per_day and usd_per_month must be from 0 to %d US dollars", config.MaxUSDLimit)
		}
	}
	return nil
}

func (g *LoopGuard) compile() (*config.LoopGuard, error) {
	if g == nil {
		return nil, nil
	}
	w := config.DefaultLoopGuardWindow
	if g.Window != "" {
		d, err := time.ParseDuration(g.Window)
		if err != nil || d <= 0 || d > 24*time.Hour {
			return nil, fmt.Errorf("loop_guard.window must be a positive duration of at most 24h, like \"1m\"")
		}
		w = d
	}
	if g.MaxRepeats < 1 || g.MaxRepeats > 1_000_000 {
		return nil, errors.New("loop_guard.max_repeats must be from 1 to 1000000")
	}
	return &config.LoopGuard{MaxRepeats: g.MaxRepeats, Window: w}, nil
}

// KeySet compiles the state for routing. A key whose stored form cannot be
// used (a malformed digest) is left out and counted in skipped.
func (s *State) KeySet() (set *routing.KeySet, skipped int) {
	out := make([]routing.ClientKey, 0, len(s.Keys))
	names := make([]string, 0, len(s.Keys))
	for name := range s.Keys {
		names = append(names, name)
	}
	slices.Sort(names) // a stable result for duplicate digests
	for _, name := range names {
		k := s.Keys[name]
		ck, err := k.compile(s.Teams[k.Team])
		if err != nil {
			skipped++
			continue
		}
		out = append(out, ck)
	}
	return routing.NewKeySet(out), skipped
}

func (k *Key) compile(team Team) (routing.ClientKey, error) {
	var d routing.Digest
	if b, err := hex.DecodeString(k.Digest); err != nil || len(b) != len(d) {
		return routing.ClientKey{}, fmt.Errorf("key %q has a malformed digest", k.Name)
	} else {
		copy(d[:], b)
	}
	lg, err := k.LoopGuard.compile()
	if err != nil {
		return routing.ClientKey{}, err
	}
	ck := routing.ClientKey{Name: k.Name, Digest: d, Team: k.Team, Models: k.Models, MCPTools: k.MCPTools, Limits: k.Limits.config(),
		LoopGuard: lg, Disabled: k.Disabled}
	if k.Team != "" {
		ck.TeamLimits = team.Limits.config()
	}
	if k.ExpiresAt != nil {
		ck.Expires = *k.ExpiresAt
	}
	return ck, nil
}
