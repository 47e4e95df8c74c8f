package config

import (
	"strconv"
	"time"
)

// RetryConfig says which failures of an attempt move a request on to the
// route's next target or fallback, and how many attempts it may take.
type RetryConfig struct {
	// On lists the conditions: connect-failure, reset (also an attempt
	// silent past first_byte_timeout) and HTTP statuses as strings ("429").
	On []string `yaml:"on"`
	// Attempts bounds the attempts, the first included; 0 means one per
	// target and fallback.
	Attempts int `yaml:"attempts"`
	// FirstByteTimeout gives up on an attempt that has sent nothing for this
	// long ("20s"); "" means the upstream idle timeout.
	FirstByteTimeout string `yaml:"first_byte_timeout"`
}

// DefaultRetryOn are the conditions that move a request on when a route
// has fallbacks but no retry.on.
var DefaultRetryOn = []string{"connect-failure", "reset", "429", "500", "502", "503", "504", "529"}

// EjectionConfig takes a provider that keeps failing out of fallback
// chains: after ConsecutiveFailures failed attempts in a row it goes last
// in every chain for Duration, then is tried again.
type EjectionConfig struct {
	ConsecutiveFailures int    `yaml:"consecutive_failures"`
	Duration            string `yaml:"duration"`
}

// Defaults of the ejection section.
const (
	DefaultEjectionFailures = 5
	DefaultEjectionDuration = 30 * time.Second
)

// Retry is a route's retry section compiled.
type Retry struct {
	Statuses         []int // HTTP statuses that fail an attempt
	ConnectFailure   bool
	Reset            bool
	Attempts         int           // 0: one per target and fallback
	FirstByteTimeout time.Duration // 0: none beyond the idle timeout
}

// RetryPolicy returns the route's retry policy: nil when the route has no
// fallbacks and no retry section. rc must be valid.
func (rc RouteConfig) RetryPolicy() *Retry {
	if rc.Retry == nil && len(rc.Fallbacks) == 0 {
		return nil
	}
	on := DefaultRetryOn
	r := &Retry{}
	if rc.Retry != nil {
		if len(rc.Retry.On) > 0 {
			on = rc.Retry.On
		}
		r.Attempts = rc.Retry.Attempts
		r.FirstByteTimeout, _ = time.ParseDuration(rc.Retry.FirstByteTimeout)
	}
	for _, c := range on {
		switch c {
		case "connect-failure":
			r.ConnectFailure = true
		case "reset":
			r.Reset = true
		default:
			n, _ := strconv.Atoi(c)
			r.Statuses = append(r.Statuses, n)
		}
	}
	return r
}

// Ejection returns the ejection settings with their defaults.
func (c *Config) EjectionPolicy() (failures int, duration time.Duration) {
	failures, duration = DefaultEjectionFailures, DefaultEjectionDuration
	if e := c.Ejection; e != nil {
		if e.ConsecutiveFailures > 0 {
			failures = e.ConsecutiveFailures
		}
		if d, err := time.ParseDuration(e.Duration); err == nil && d > 0 {
			duration = d
		}
	}
	return failures, duration
}

func (tc TargetConfig) validate(v *validator, p path, providers map[string]int) {
	if tc.Provider == "" {
		v.errf(p.key("provider"), "is required")
	} else if _, ok := providers[tc.Provider]; !ok {
		v.errf(p.key("provider"), "unknown provider %q", tc.Provider)
	}
	if tc.Model != "" && hasSpaceOrControl(tc.Model) {
		v.errf(p.key("model"), "%q must not contain spaces or control characters", tc.Model)
	}
}

func (rc RouteConfig) validateFallbacks(v *validator, p path, providers map[string]int) {
	for j, fc := range rc.Fallbacks {
		fp := p.key("fallbacks").index(j)
		fc.validate(v, fp, providers)
		if fc.Weight != nil {
			v.errf(fp.key("weight"), "fallbacks are tried in order; weight is for targets")
		}
	}
	chain := len(rc.Targets) + len(rc.Fallbacks)
	if rc.Provider != "" {
		chain = 1 + len(rc.Fallbacks)
	}
	r := rc.Retry
	if r == nil {
		return
	}
	rp := p.key("retry")
	if chain < 2 {
		v.errf(rp, "needs fallbacks or more than one target: each attempt goes to another one")
	}
	for j, c := range r.On {
		if c == "connect-failure" || c == "reset" {
			continue
		}
		if n, err := strconv.Atoi(c); err != nil || n < 400 || n > 599 || strconv.Itoa(n) != c {
			v.errf(rp.key("on").index(j), `%q must be "connect-failure", "reset" or an HTTP status from 400 to 599`, c)
		}
	}
	switch {
	case r.Attempts < 0:
		v.errf(rp.key("attempts"), "must not be negative, got %d", r.Attempts)
	case r.Attempts > chain && chain >= 2:
		v.errf(rp.key("attempts"), "%d exceeds the %d targets and fallbacks; each attempt goes to another one", r.Attempts, chain)
	}
	if r.FirstByteTimeout != "" {
		if d, err := time.ParseDuration(r.FirstByteTimeout); err != nil || d <= 0 {
			v.errf(rp.key("first_byte_timeout"), "%q must be a positive duration such as 20s", r.FirstByteTimeout)
		}
	}
}

func (e *EjectionConfig) validate(v *validator) {
	if e == nil {
		return
	}
	p := path{"ejection"}
	if e.ConsecutiveFailures < 0 {
		v.errf(p.key("consecutive_failures"), "must not be negative, got %d", e.ConsecutiveFailures)
	}
	if e.Duration != "" {
		if d, err := time.ParseDuration(e.Duration); err != nil || d <= 0 {
			v.errf(p.key("duration"), "%q must be a positive duration such as 30s", e.Duration)
		}
	}
}
