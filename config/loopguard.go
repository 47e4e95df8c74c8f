package config

import (
	"fmt"
	"time"
)

// LoopGuardConfig refuses a client that keeps sending the same request: more
// than MaxRepeats identical requests (same model, same last message or tool
// result) from one client key and session within Window. Off unless set.
type LoopGuardConfig struct {
	MaxRepeats int    `yaml:"max_repeats"`
	Window     string `yaml:"window"` // default DefaultLoopGuardWindow
}

// Loop guard bounds and default.
const (
	DefaultLoopGuardWindow = time.Minute
	maxLoopGuardWindow     = 24 * time.Hour
	maxLoopGuardRepeats    = 1_000_000
)

// LoopGuard is a loop_guard section compiled.
type LoopGuard struct {
	MaxRepeats int
	Window     time.Duration
}

func (g *LoopGuardConfig) validate(v *validator, p path) {
	if g == nil {
		return
	}
	if g.MaxRepeats < 1 || g.MaxRepeats > maxLoopGuardRepeats {
		v.errf(p.key("max_repeats"), "must be from 1 to %d, got %d", maxLoopGuardRepeats, g.MaxRepeats)
	}
	if _, err := g.window(); err != nil {
		v.errf(p.key("window"), "%v", err)
	}
}

func (g *LoopGuardConfig) window() (time.Duration, error) {
	if g.Window == "" {
		return DefaultLoopGuardWindow, nil
	}
	d, err := time.ParseDuration(g.Window)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 60s", g.Window)
	}
	if d <= 0 || d > maxLoopGuardWindow {
		return 0, fmt.Errorf("must be greater than 0 and at most 24h, got %s", g.Window)
	}
	return d, nil
}

// Compile returns the section compiled, or nil when it is not set; g must
// be valid.
func (g *LoopGuardConfig) Compile() *LoopGuard {
	if g == nil {
		return nil
	}
	w, _ := g.window()
	return &LoopGuard{MaxRepeats: g.MaxRepeats, Window: w}
}
