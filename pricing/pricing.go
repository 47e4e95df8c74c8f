// Package pricing turns a response's tokens into money: a price table per
// model (input, output, cache read, cache write and 1-hour cache write per
// million tokens, and what OpenAI's priority and flex tiers multiply them
// by), shipped with the list prices of well-known models (prices.yaml, with
// the date they were taken) and overridden by the config's `prices:`
// section.
//
// Money is counted in integers, never floats, so that sums are exact and a
// budget compares the same everywhere: a Price is in pico-dollars (1e-12
// USD) per token, which is the same number as micro-dollars per million
// tokens, and a Cost is pico-dollars. Budgets count micro-dollars
// (Cost.MicroUSD, rounded up).
//
// Lookup is first match wins: the config's entries before the shipped ones;
// within each, exact names before globs, globs in their order. A shipped
// entry may say a model has no price (Entry.Unpriced): a variant whose
// tokens cost more than its family's glob would charge.
package pricing

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"switchyard/internal/glob"
	"switchyard/internal/usage"
)

// Price is one model's price, in pico-dollars per token (micro-dollars per
// million tokens): $3 per million tokens is 3_000_000.
type Price struct {
	Input, Output, CacheRead int64
	// CacheWrite prices a write to a prompt cache, CacheWrite1h one to
	// Anthropic's 1-hour cache (usage.Tokens.CacheCreation1h).
	CacheWrite, CacheWrite1h int64
	// Priority and Flex multiply the prices above for an answer served at
	// OpenAI's priority or flex service tier (At).
	Priority, Flex float64
}

// At is p for an answer its provider reports served at tier (OpenAI's
// service_tier, usage.Reader.ServiceTier): times Priority for "priority",
// Flex for "flex", each rounded to the nearest pico-dollar a token (as
// PerMillion rounds); any other tier ("default", "auto", "scale", none)
// is charged p.
func (p Price) At(tier string) Price {
	m := 1.0
	switch tier {
	case "priority":
		m = p.Priority
	case "flex":
		m = p.Flex
	}
	if m == 1 {
		return p
	}
	for _, v := range []*int64{&p.Input, &p.Output, &p.CacheRead, &p.CacheWrite, &p.CacheWrite1h} {
		*v = int64(math.Round(float64(*v) * m))
	}
	return p
}

// Cost is an amount of money in pico-dollars (1e-12 USD).
type Cost int64

// Of is what t costs at p. Reasoning is part of Output and not added again;
// the part of CacheCreation written for an hour is charged CacheWrite1h.
func (p Price) Of(t usage.Tokens) Cost {
	return Cost(t.Input*p.Input + t.Output*p.Output + t.CacheRead*p.CacheRead +
		(t.CacheCreation-t.CacheCreation1h)*p.CacheWrite + t.CacheCreation1h*p.CacheWrite1h)
}

// USD is c in dollars.
func (c Cost) USD() float64 { return float64(c) / 1e12 }

// MicroUSD is c in micro-dollars, rounded up: what a budget is charged.
func (c Cost) MicroUSD() int64 { return int64((c + 999_999) / 1_000_000) }

// PerMillion converts a price in dollars per million tokens into a Price
// field, rounded to the nearest micro-dollar per million tokens.
func PerMillion(usd float64) int64 { return int64(math.Round(usd * 1e6)) }

// MaxPerMillion bounds a price, in dollars per million tokens: at most
// 1e10 pico-dollars a token keeps a request's cost within an int64 of
// pico-dollars up to 2e8 tokens of each kind, or 5e7 at a tier that
// multiplies the prices by MaxTierMultiplier.
const MaxPerMillion = 10_000

// MaxTierMultiplier bounds Entry.Priority and Entry.Flex.
const MaxTierMultiplier = 4

// The tier multipliers of an entry that gives none: priority at twice the
// standard price, the most any model of the shipped table charges for it
// (so an entry that does not know charges no less than the provider), and
// flex at the standard price (providers other than OpenAI name a tier
// flex without a discount).
const (
	DefaultPriority = 2
	DefaultFlex     = 1
)

// Entry is one row of a price table, in dollars per million tokens.
type Entry struct {
	Model      string  `yaml:"model"`
	Input      float64 `yaml:"input"`
	Output     float64 `yaml:"output"`
	CacheRead  float64 `yaml:"cache_read"`
	CacheWrite float64 `yaml:"cache_write"`
	// CacheWrite1h is the price of a write to Anthropic's 1-hour cache;
	// nil: CacheWrite1hPerInput times Input, at most MaxPerMillion.
	CacheWrite1h *float64 `yaml:"cache_write_1h"`
	// Priority and Flex multiply every price of the entry for an answer
	// OpenAI served at its priority or flex tier; nil: DefaultPriority,
	// DefaultFlex.
	Priority *float64 `yaml:"priority"`
	Flex     *float64 `yaml:"flex"`
	// Unpriced says the models it matches have no price, and gives none:
	// their answers cost nothing and a key with a money budget may not run
	// them, as if no entry matched, but no later entry prices them.
	Unpriced bool `yaml:"unpriced"`
}

// CacheWrite1hPerInput is the price of a write to a 1-hour cache, per
// input price, where an entry gives none: Anthropic's rate (a 5-minute
// write is 1.25 times input), and only Anthropic reports such writes.
const CacheWrite1hPerInput = 2

func (e Entry) price() Price {
	return Price{Input: PerMillion(e.Input), Output: PerMillion(e.Output),
		CacheRead: PerMillion(e.CacheRead), CacheWrite: PerMillion(e.CacheWrite),
		CacheWrite1h: PerMillion(orDefault(e.CacheWrite1h, min(CacheWrite1hPerInput*e.Input, MaxPerMillion))),
		Priority:     orDefault(e.Priority, DefaultPriority), Flex: orDefault(e.Flex, DefaultFlex)}
}

// orDefault is *v, or def when v is nil.
func orDefault(v *float64, def float64) float64 {
	if v != nil {
		return *v
	}
	return def
}

// Table answers a model's price. Its entries are immutable once built; it
// is safe for concurrent use.
type Table struct {
	layers [2]layer // the config's, then the shipped prices
	// seen remembers the answers for up to maxSeen model names: a name
	// matched against every glob costs microseconds, a map read tens of
	// nanoseconds, and the names a gateway sends are few.
	mu   sync.RWMutex
	seen map[string]maybePrice
}

// maxSeen bounds Table.seen: names past it are matched every time (a route
// that passes client-chosen model names through could send any number).
const maxSeen = 4096

// maybePrice is a price, or that there is none (ok false).
type maybePrice struct {
	price Price
	ok    bool
}

type layer struct {
	exact map[string]maybePrice
	globs []globPrice
}

type globPrice struct {
	pattern string
	// prefix is the pattern's text before its first wildcard, lit its
	// longest run without one: a name without them cannot match, which is
	// checked before the glob is run.
	prefix, lit string
	price       maybePrice
}

func newGlobPrice(pattern string, p maybePrice) globPrice {
	g := globPrice{pattern: pattern, price: p}
	g.prefix = pattern[:strings.IndexAny(pattern, "*?")]
	for _, run := range strings.FieldsFunc(pattern, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(run) > len(g.lit) {
			g.lit = run
		}
	}
	return g
}

func (g *globPrice) match(model string) bool {
	return strings.HasPrefix(model, g.prefix) && strings.Contains(model, g.lit) && glob.Match(g.pattern, model)
}

func newLayer(entries []Entry) layer {
	l := layer{exact: make(map[string]maybePrice, len(entries))}
	for _, e := range entries {
		p := maybePrice{ok: !e.Unpriced}
		if p.ok {
			p.price = e.price()
		}
		if strings.ContainsAny(e.Model, "*?") {
			l.globs = append(l.globs, newGlobPrice(e.Model, p))
		} else if _, dup := l.exact[e.Model]; !dup {
			l.exact[e.Model] = p
		}
	}
	return l
}

// find returns the entry that matches model: its pattern, its price and
// whether it has one; found is false when no entry matches.
func (l *layer) find(model string) (pattern string, p maybePrice, found bool) {
	if p, ok := l.exact[model]; ok {
		return model, p, true
	}
	for i := range l.globs {
		if l.globs[i].match(model) {
			return l.globs[i].pattern, l.globs[i].price, true
		}
	}
	return "", maybePrice{}, false
}

// Match is the entry that matches a model, as Explain finds it.
type Match struct {
	Pattern    string // the entry's model: the name, or the glob that matched
	Price      Price
	FromConfig bool // the config's prices: section, else the shipped table
}

// Explain says which entry prices model, for people checking a table. It
// is false when none does: then Pattern names the entry that says the
// model has no price (Entry.Unpriced), or is "" when no entry matches. It
// does not use or fill Lookup's memory.
func (t *Table) Explain(model string) (Match, bool) {
	for i := range t.layers {
		if pat, p, found := t.layers[i].find(model); found {
			return Match{Pattern: pat, Price: p.price, FromConfig: i == 0}, p.ok
		}
	}
	return Match{}, false
}

// New returns the shipped table with overrides in front of it. The
// overrides must be valid (config validates them).
func New(overrides []Entry) *Table {
	return &Table{layers: [2]layer{newLayer(overrides), shippedLayer}, seen: map[string]maybePrice{}}
}

// Lookup returns model's price; false when no entry prices it (the request
// is unpriced). A nil Table prices nothing. It does not allocate once the
// name has been seen.
func (t *Table) Lookup(model string) (Price, bool) {
	if t == nil {
		return Price{}, false
	}
	t.mu.RLock()
	sp, hit := t.seen[model]
	t.mu.RUnlock()
	if hit {
		return sp.price, sp.ok
	}
	sp.price, sp.ok = t.match(model)
	t.mu.Lock()
	if len(t.seen) < maxSeen {
		t.seen[strings.Clone(model)] = sp
	}
	t.mu.Unlock()
	return sp.price, sp.ok
}

// match is Lookup without the memory of names seen.
func (t *Table) match(model string) (Price, bool) {
	for i := range t.layers {
		if _, p, found := t.layers[i].find(model); found {
			return p.price, p.ok
		}
	}
	return Price{}, false
}

// Shipped is the table of list prices the gateway ships with.
type Shipped struct {
	Taken   string   `yaml:"taken"` // the date the prices were taken, YYYY-MM-DD
	Sources []string `yaml:"sources"`
	Models  []Entry  `yaml:"models"`
}

//go:embed prices.yaml
var shippedYAML []byte

var shipped, shippedLayer = func() (Shipped, layer) {
	s, err := parseShipped(shippedYAML)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return s, newLayer(s.Models)
}()

// ShippedPrices returns the list prices the gateway ships with.
func ShippedPrices() Shipped { return shipped }

func parseShipped(data []byte) (Shipped, error) {
	var s Shipped
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("reading the shipped prices: %w", err)
	}
	for i, e := range s.Models {
		if err := e.Check(); err != nil {
			return s, fmt.Errorf("reading the shipped prices: models[%d]: %w", i, err)
		}
	}
	return s, nil
}

// Check reports what is wrong with an entry: an empty model, a price below
// 0, above MaxPerMillion or not a number, a tier multiplier below 0, above
// MaxTierMultiplier or not a number, an unpriced entry with a price.
func (e Entry) Check() error {
	if e.Model == "" {
		return fmt.Errorf("model is required")
	}
	if e.Unpriced && e != (Entry{Model: e.Model, Unpriced: true}) {
		return fmt.Errorf("an unpriced entry has no prices")
	}
	for _, f := range []struct {
		name string
		usd  float64
	}{{"input", e.Input}, {"output", e.Output}, {"cache_read", e.CacheRead}, {"cache_write", e.CacheWrite}} {
		if err := CheckPrice(f.usd); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if e.CacheWrite1h != nil {
		if err := CheckPrice(*e.CacheWrite1h); err != nil {
			return fmt.Errorf("cache_write_1h: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		m    *float64
	}{{"priority", e.Priority}, {"flex", e.Flex}} {
		if f.m != nil && (math.IsNaN(*f.m) || *f.m < 0 || *f.m > MaxTierMultiplier) {
			return fmt.Errorf("%s: must be from 0 to %d times the standard price, got %v", f.name, MaxTierMultiplier, *f.m)
		}
	}
	return nil
}

// CheckPrice reports what is wrong with a price in dollars per million
// tokens.
func CheckPrice(usd float64) error {
	if math.IsNaN(usd) || usd < 0 || usd > MaxPerMillion {
		return fmt.Errorf("must be from 0 to %d dollars per million tokens, got %v", MaxPerMillion, usd)
	}
	return nil
}
