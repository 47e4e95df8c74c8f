package config

import "math"

// PriceConfig is one entry of the `prices:` section, in US dollars per
// million tokens; it replaces the shipped price of the models it matches
// (README "Spend"):
//
//	prices:
//	  - model: "gpt-4o*"          # exact name, or glob with * and ?
//	    input: 2.50               # required
//	    output: 10                # required
//	    cache_read: 1.25          # optional, default input
//	    cache_write: 2.50         # optional, default input
//	    cache_write_1h: 5         # optional, default 2 × input (pricing.CacheWrite1hPerInput)
//	    priority: 1.7             # optional, times every price at OpenAI's priority tier (default 2, pricing.DefaultPriority)
//	    flex: 0.5                 # optional, times every price at OpenAI's flex tier (default 1, pricing.DefaultFlex)
//
// Entries are matched against the model sent to the provider, exact names
// before globs, globs in config order, all before the shipped table.
type PriceConfig struct {
	Model      string   `yaml:"model"`
	Input      *float64 `yaml:"input"`
	Output     *float64 `yaml:"output"`
	CacheRead  *float64 `yaml:"cache_read"`
	CacheWrite *float64 `yaml:"cache_write"`
	// CacheWrite1h prices writes to Anthropic's 1-hour cache; its default
	// is the price table's.
	CacheWrite1h *float64 `yaml:"cache_write_1h"`
	// Priority and Flex multiply the prices for an answer served at
	// OpenAI's priority or flex tier; their defaults are the price
	// table's.
	Priority *float64 `yaml:"priority"`
	Flex     *float64 `yaml:"flex"`
}

// MaxPricePerMillion bounds a price, in dollars per million tokens (the
// same bound as pricing.MaxPerMillion, which a test keeps equal).
const MaxPricePerMillion = 10_000

// MaxTierMultiplier bounds priority and flex (the same bound as
// pricing.MaxTierMultiplier, which a test keeps equal).
const MaxTierMultiplier = 4

// MaxUSDLimit bounds usd_per_day and usd_per_month.
const MaxUSDLimit = 10_000_000

// CacheReadOrInput is the cache read price, input's when not set.
func (pc PriceConfig) CacheReadOrInput() float64 { return orInput(pc.CacheRead, pc.Input) }

// CacheWriteOrInput is the cache write price, input's when not set.
func (pc PriceConfig) CacheWriteOrInput() float64 { return orInput(pc.CacheWrite, pc.Input) }

func orInput(v, input *float64) float64 {
	switch {
	case v != nil:
		return *v
	case input != nil:
		return *input
	}
	return 0
}

func (c *Config) validatePrices(v *validator) {
	seen := map[string]int{}
	for i, pc := range c.Prices {
		p := path{"prices", i}
		if err := checkPattern(pc.Model); err != nil {
			v.errf(p.key("model"), "%v", err)
		} else if j, dup := seen[pc.Model]; dup {
			v.errf(p.key("model"), "duplicate price for %q (also prices[%d])", pc.Model, j)
		} else {
			seen[pc.Model] = i
		}
		for _, f := range []struct {
			name     string
			usd      *float64
			required bool
		}{{"input", pc.Input, true}, {"output", pc.Output, true}, {"cache_read", pc.CacheRead, false}, {"cache_write", pc.CacheWrite, false}, {"cache_write_1h", pc.CacheWrite1h, false}} {
			switch {
			case f.usd == nil && f.required:
				v.errf(p.key(f.name), "is required (US dollars per million tokens)")
			case f.usd != nil && !validPrice(*f.usd):
				v.errf(p.key(f.name), "must be from 0 to %d US dollars per million tokens, got %v", MaxPricePerMillion, *f.usd)
			}
		}
		for _, f := range []struct {
			name string
			m    *float64
		}{{"priority", pc.Priority}, {"flex", pc.Flex}} {
			if f.m != nil && (math.IsNaN(*f.m) || *f.m < 0 || *f.m > MaxTierMultiplier) {
				v.errf(p.key(f.name), "must be from 0 to %d times the standard price, got %v", MaxTierMultiplier, *f.m)
			}
		}
	}
}

func validPrice(usd float64) bool {
	return !math.IsNaN(usd) && usd >= 0 && usd <= MaxPricePerMillion
}

// validateUSD checks the money budgets (counted in micro-dollars).
func (l *LimitsConfig) validateUSD(v *validator, p path) {
	for _, f := range []struct {
		name string
		usd  float64
	}{{"usd_per_day", l.USDPerDay}, {"usd_per_month", l.USDPerMonth}} {
		if math.IsNaN(f.usd) || f.usd < 0 || f.usd > MaxUSDLimit {
			v.errf(p.key(f.name), "must be from 0 (no limit) to %d US dollars, got %v", MaxUSDLimit, f.usd)
		}
	}
}

// MicroUSD converts a budget in dollars into micro-dollars.
func MicroUSD(usd float64) int64 { return int64(math.Round(usd * 1e6)) }
