package pricing

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/config"
	"switchyard/internal/usage"
)

func TestLookupOrder(t *testing.T) {
	t.Parallel()
	tab := New([]Entry{
		{Model: "gpt-4o*", Input: 1, Output: 2, CacheRead: 0.5, CacheWrite: 1, CacheWrite1h: ptr(1.5), Priority: ptr(1.7)},
		{Model: "gpt-4o-mini", Input: 0.1, Output: 0.2},
		{Model: "my-*", Input: 7, Output: 8},
		{Model: "my-model-?", Input: 9, Output: 9}, // after my-*: never reached
	})
	for _, tc := range []struct {
		model string
		want  Price
		ok    bool
	}{
		// An exact override before a glob override of the same layer.
		{"gpt-4o-mini", Price{Input: 100_000, Output: 200_000, CacheWrite1h: 200_000, Priority: 2, Flex: 1}, true},
		// A glob override before the shipped price.
		{"gpt-4o-2024-08-06", Price{Input: 1_000_000, Output: 2_000_000, CacheRead: 500_000, CacheWrite: 1_000_000, CacheWrite1h: 1_500_000, Priority: 1.7, Flex: 1}, true},
		// Globs in order: first match wins.
		{"my-model-1", Price{Input: 7_000_000, Output: 8_000_000, CacheWrite1h: 14_000_000, Priority: 2, Flex: 1}, true},
		// Shipped: a longer name before the shorter glob that would match it.
		{"gpt-5-mini-2025-08-07", Price{Input: 250_000, Output: 2_000_000, CacheRead: 25_000, CacheWrite: 250_000, CacheWrite1h: 500_000, Priority: 1.8, Flex: 0.5}, true},
		{"gpt-5", Price{Input: 1_250_000, Output: 10_000_000, CacheRead: 125_000, CacheWrite: 1_250_000, CacheWrite1h: 2_500_000, Priority: 2, Flex: 0.5}, true},
		// Bedrock's and Vertex's names of a Claude model; a 1-hour cache
		// write is twice the input price.
		{"anthropic.claude-sonnet-4-5-20250929-v1:0", Price{Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000, CacheWrite1h: 6_000_000, Priority: 2, Flex: 1}, true},
		{"claude-opus-4-1@20250805", Price{Input: 15_000_000, Output: 75_000_000, CacheRead: 1_500_000, CacheWrite: 18_750_000, CacheWrite1h: 30_000_000, Priority: 2, Flex: 1}, true},
		{"claude-opus-4-5-20251101", Price{Input: 5_000_000, Output: 25_000_000, CacheRead: 500_000, CacheWrite: 6_250_000, CacheWrite1h: 10_000_000, Priority: 2, Flex: 1}, true},
		{"llama3.2", Price{}, false},
		{"", Price{}, false},
	} {
		got, ok := tab.Lookup(tc.model)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tc.model, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := (*Table)(nil).Lookup("gpt-4o"); ok {
		t.Error("a nil table priced a model")
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	p := Price{Input: PerMillion(3), Output: PerMillion(15), CacheRead: PerMillion(0.30), CacheWrite: PerMillion(3.75)}
	tok := usage.Tokens{Input: 1000, Output: 500, CacheRead: 20000, CacheCreation: 4000, Reasoning: 400}
	// 1000*3 + 500*15 + 20000*0.30 + 4000*3.75 = 3000+7500+6000+15000 micro-dollars.
	c := p.Of(tok)
	if c != 31_500*1_000_000 {
		t.Fatalf("cost %d pico-dollars, want %d", c, 31_500*1_000_000)
	}
	if got := c.USD(); math.Abs(got-0.0315) > 1e-15 {
		t.Errorf("USD() = %v", got)
	}
	if got := c.MicroUSD(); got != 31_500 {
		t.Errorf("MicroUSD() = %d", got)
	}
	// A cost below a micro-dollar is charged as one; none as none.
	if got := Cost(1).MicroUSD(); got != 1 {
		t.Errorf("1 pico-dollar charged %d micro-dollars, want 1", got)
	}
	if got := Cost(0).MicroUSD(); got != 0 {
		t.Errorf("nothing charged %d", got)
	}
	// $0.075 per million tokens is exact in integers.
	if got := (Price{CacheRead: PerMillion(0.075)}).Of(usage.Tokens{CacheRead: 3}); got != 225_000 {
		t.Errorf("3 tokens at $0.075/M = %d pico-dollars, want 225000", got)
	}
	// The largest price and a large request stay within an int64.
	top := PerMillion(MaxPerMillion)
	big := Price{Input: top, Output: top, CacheRead: top, CacheWrite: top, CacheWrite1h: top}
	if c := big.Of(usage.Tokens{Input: 2e8, Output: 2e7, CacheRead: 2e7, CacheCreation: 2e7, CacheCreation1h: 1e7}); c <= 0 {
		t.Errorf("overflow: %d", c)
	}
}

// Anthropic's writes to its 1-hour cache cost twice the input price, those
// to its 5-minute cache 1.25 times: each part is charged its own.
func TestCostOfCacheWrites(t *testing.T) {
	t.Parallel()
	p, _ := New(nil).Lookup("claude-sonnet-4-5-20250929") // $3 input, $3.75 and $6 cache writes
	for _, tc := range []struct {
		name string
		tok  usage.Tokens
		want int64 // micro-dollars
	}{
		{"5 minutes", usage.Tokens{CacheCreation: 100_000}, 375_000},
		{"1 hour", usage.Tokens{CacheCreation: 100_000, CacheCreation1h: 100_000}, 600_000},
		{"both", usage.Tokens{Input: 10, CacheCreation: 100_300, CacheCreation1h: 100_000, Output: 5}, 30 + 300*3.75 + 600_000 + 75},
	} {
		if got := p.Of(tc.tok).MicroUSD(); got != tc.want {
			t.Errorf("%s: %d micro-dollars, want %d", tc.name, got, tc.want)
		}
	}
	// An entry may give its own price; the config's default is the same.
	e := Entry{Model: "m", Input: 3, Output: 15, CacheWrite1h: ptr(5)}
	if got := e.price().CacheWrite1h; got != 5_000_000 {
		t.Errorf("cache_write_1h 5: %d", got)
	}
	if got := (Entry{Model: "m", Input: 6000}).price().CacheWrite1h; got != PerMillion(MaxPerMillion) {
		t.Errorf("the default of a dear input is %d, want at most MaxPerMillion", got)
	}
}

func ptr(f float64) *float64 { return &f }

// An answer OpenAI served at its priority or flex tier costs that tier's
// list price; any other tier the standard one.
func TestTierPrices(t *testing.T) {
	t.Parallel()
	tab := New(nil)
	for _, tc := range []struct {
		model, tier           string
		input, cached, output float64 // dollars per million tokens
	}{
		// https://openai.com/api-priority-processing/
		{"gpt-4o-2024-08-06", "priority", 4.25, 2.125, 17},
		{"gpt-4o-2024-05-13", "priority", 8.75, 8.75, 26.25},
		{"gpt-4o-mini-2024-07-18", "priority", 0.25, 0.125, 1},
		{"gpt-4.1-2025-04-14", "priority", 3.50, 0.875, 14},
		{"gpt-4.1-mini", "priority", 0.70, 0.175, 2.80},
		{"gpt-4.1-nano", "priority", 0.20, 0.05, 0.80},
		{"o3-2025-04-16", "priority", 3.50, 0.875, 14},
		{"o4-mini-2025-04-16", "priority", 2, 0.50, 8},
		{"gpt-5", "priority", 2.50, 0.25, 20},
		{"gpt-5-mini", "priority", 0.45, 0.045, 3.60},
		{"gpt-5", "flex", 0.625, 0.0625, 5},
		{"gpt-5-mini", "flex", 0.125, 0.0125, 1},
		{"gpt-5-nano", "flex", 0.025, 0.0025, 0.20},
		{"o3", "flex", 1, 0.25, 4},
		{"o4-mini", "flex", 0.55, 0.1375, 2.20},
		{"gpt-4o", "default", 2.50, 1.25, 10},
		{"gpt-4o", "auto", 2.50, 1.25, 10},
		{"gpt-4o", "scale", 2.50, 1.25, 10},
		{"gpt-4o", "", 2.50, 1.25, 10},
		// A model whose flex price the table does not know: no discount.
		{"gpt-4o", "flex", 2.50, 1.25, 10},
	} {
		p, _ := tab.Lookup(tc.model)
		got := p.At(tc.tier)
		if want := (Price{Input: PerMillion(tc.input), CacheRead: PerMillion(tc.cached), Output: PerMillion(tc.output)}); got.Input != want.Input || got.CacheRead != want.CacheRead || got.Output != want.Output {
			t.Errorf("%s at %q: input %d, cached %d, output %d; want %d, %d, %d", tc.model, tc.tier, got.Input, got.CacheRead, got.Output, want.Input, want.CacheRead, want.Output)
		}
	}
	// An entry that gives no multiplier (the config's, say) charges twice
	// at priority, the standard price at flex.
	p, _ := New([]Entry{{Model: "my-*", Input: 1, Output: 4}}).Lookup("my-model")
	tok := usage.Tokens{Input: 1000, Output: 100}
	for tier, want := range map[string]int64{"priority": 2 * 1400, "flex": 1400, "default": 1400} {
		if got := p.At(tier).Of(tok).MicroUSD(); got != want {
			t.Errorf("the config's entry at %q: %d micro-dollars, want %d", tier, got, want)
		}
	}
	// The largest price at the dearest tier stays within an int64.
	top := PerMillion(MaxPerMillion)
	big := Price{Input: top, Output: top, CacheRead: top, CacheWrite: top, CacheWrite1h: top, Priority: MaxTierMultiplier}
	if c := big.At("priority").Of(usage.Tokens{Input: 5e7, Output: 5e7, CacheRead: 5e7, CacheCreation: 5e7, CacheCreation1h: 5e7}); c <= 0 {
		t.Errorf("overflow: %d", c)
	}
}

func TestCostDoesNotAllocate(t *testing.T) {
	tab := New([]Entry{{Model: "x-*", Input: 1, Output: 1}})
	tok := usage.Tokens{Input: 10, Output: 5}
	if n := testing.AllocsPerRun(100, func() {
		p, _ := tab.Lookup("anthropic.claude-haiku-4-5-20251001-v1:0")
		_ = p.At("priority").Of(tok).MicroUSD()
	}); n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
}

func TestShippedPrices(t *testing.T) {
	t.Parallel()
	s := ShippedPrices()
	if _, err := time.Parse("2006-01-02", s.Taken); err != nil {
		t.Errorf("taken %q is not a date: %v", s.Taken, err)
	}
	if len(s.Sources) == 0 || len(s.Models) < 30 {
		t.Errorf("%d sources, %d models", len(s.Sources), len(s.Models))
	}
	// Every entry is reachable: no earlier glob of the file swallows it.
	seen := map[string]bool{}
	for i, e := range s.Models {
		if seen[e.Model] {
			t.Errorf("models[%d] %q twice", i, e.Model)
		}
		seen[e.Model] = true
		name := strings.NewReplacer("*", "x", "?", "x").Replace(e.Model)
		if m, _ := New(nil).Explain(name); m.Pattern != e.Model {
			t.Errorf("models[%d] %q: %q is matched by %q", i, e.Model, name, m.Pattern)
		}
	}
	// One bound in one place: the config checks prices with the same one.
	if MaxPerMillion != config.MaxPricePerMillion {
		t.Errorf("MaxPerMillion %d != config.MaxPricePerMillion %d", MaxPerMillion, config.MaxPricePerMillion)
	}
	if MaxTierMultiplier != config.MaxTierMultiplier {
		t.Errorf("MaxTierMultiplier %d != config.MaxTierMultiplier %d", MaxTierMultiplier, config.MaxTierMultiplier)
	}
}

// A model whose name starts like a cheaper family's is not charged that
// family's price: a client of a route glob names the model, and would
// pick the cheaper price.
func TestShippedVariants(t *testing.T) {
	t.Parallel()
	tab := New(nil)
	for _, tc := range []struct {
		model, entry string
		in, out      float64 // dollars per million tokens; unpriced when entry's are 0
	}{
		{"o3-deep-research", "o3-deep-research*", 10, 40},
		{"o3-deep-research-2025-06-26", "o3-deep-research*", 10, 40},
		{"o3-2025-04-16", "o3*", 2, 8},
		{"o4-mini-deep-research-2025-06-26", "o4-mini-deep-research*", 2, 8},
		{"o4-mini-2025-04-16", "o4-mini*", 1.10, 4.40},
		{"gpt-4o-2024-05-13", "gpt-4o-2024-05-13", 5, 15},
		{"gpt-4o-2024-08-06", "gpt-4o*", 2.50, 10},
		{"gpt-4o-realtime-preview-2025-06-03", "gpt-*realtime*", 0, 0},
		{"gpt-4o-mini-realtime-preview", "gpt-*realtime*", 0, 0},
		{"gpt-4o-audio-preview", "gpt-*audio*", 0, 0},
		{"gpt-4o-mini-audio-preview-2024-12-17", "gpt-*audio*", 0, 0},
		{"gpt-4o-transcribe", "gpt-*transcribe*", 0, 0},
		{"gpt-4o-mini-tts", "gpt-*tts*", 0, 0},
		{"gpt-4o-search-preview", "gpt-*search*", 0, 0},
		{"gpt-4o-mini-search-preview-2025-03-11", "gpt-*search*", 0, 0},
		{"gpt-5-search-api", "gpt-*search*", 0, 0},
		{"gemini-2.5-flash-image", "gemini-*image*", 0, 0},
		{"gemini-3-pro-image-preview", "gemini-*image*", 0, 0},
		{"gemini-2.5-flash-preview-tts", "gemini-*tts*", 0, 0},
		{"gemini-2.5-flash-native-audio-preview-09-2025", "gemini-*audio*", 0, 0},
		{"gemini-2.0-flash-live-001", "gemini-*live*", 0, 0},
		{"gemini-2.5-flash-lite", "gemini-2.5-flash-lite*", 0.10, 0.40},
	} {
		priced := tc.in != 0
		m, ok := tab.Explain(tc.model)
		if m.Pattern != tc.entry || ok != priced || m.FromConfig {
			t.Errorf("Explain(%q) = %q, priced %v; want %q, priced %v", tc.model, m.Pattern, ok, tc.entry, priced)
			continue
		}
		p, ok := tab.Lookup(tc.model)
		if want := (Price{Input: PerMillion(tc.in), Output: PerMillion(tc.out)}); ok != priced || p.Input != want.Input || p.Output != want.Output {
			t.Errorf("Lookup(%q) = %+v, %v; want input %d, output %d, %v", tc.model, p, ok, want.Input, want.Output, priced)
		}
	}
	// The config prices what the shipped table leaves unpriced.
	tab = New([]Entry{{Model: "gpt-4o-audio-*", Input: 2.5, Output: 10}})
	if m, ok := tab.Explain("gpt-4o-audio-preview"); !ok || !m.FromConfig || m.Price.Input != 2_500_000 {
		t.Errorf("a config entry for an unpriced model: %+v, %v", m, ok)
	}
}

func TestParseShippedErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"taken: x\nmodels: [{model: a, input: 1, output: 1, cache: 1}]\n", "field cache not found"},
		{"models: [{model: a, input: -1, output: 1}]\n", "models[0]: input: must be from 0"},
		{"models: [{input: 1, output: 1}]\n", "models[0]: model is required"},
		{"models: [{model: a, unpriced: true, output: 1}]\n", "models[0]: an unpriced entry has no prices"},
		{"models: [{model: a, unpriced: true, cache_write_1h: 1}]\n", "models[0]: an unpriced entry has no prices"},
		{"models: [{model: a, input: 1, output: 1, cache_write_1h: 10001}]\n", "models[0]: cache_write_1h: must be from 0"},
		{"models: [{model: a, input: 1, output: 1, priority: 4.5}]\n", "models[0]: priority: must be from 0 to 4 times"},
		{"models: [{model: a, input: 1, output: 1, flex: .nan}]\n", "models[0]: flex: must be from 0 to 4 times"},
		{"models: [{model: a, unpriced: true, flex: 1}]\n", "models[0]: an unpriced entry has no prices"},
	} {
		_, err := parseShipped([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if diff := cmp.Diff(Price{Input: 1, Output: 2, CacheWrite1h: 2, Priority: 2, Flex: 1}, Entry{Input: 0.000001, Output: 0.0000015}.price()); diff != "" {
		t.Errorf("rounding (-want +got):\n%s", diff)
	}
}

// BenchmarkLookupAndCost is the work pricing adds to a counted request:
// one lookup and the arithmetic. "exact" is a config entry of the model's
// name; "shipped-last" walks every shipped glob before matching the last;
// "unpriced" walks them all and finds none.
func BenchmarkLookupAndCost(b *testing.B) {
	tab := New([]Entry{{Model: "my-model", Input: 1, Output: 2}})
	last := ShippedPrices().Models[len(ShippedPrices().Models)-1].Model
	tok := usage.Tokens{Input: 1200, Output: 300, CacheRead: 1000}
	for _, bc := range []struct{ name, model string }{
		{"exact", "my-model"},
		{"gpt-4o", "gpt-4o-2024-08-06"},
		{"bedrock-claude", "anthropic.claude-haiku-4-5-20251001-v1:0"},
		{"shipped-last", strings.TrimSuffix(last, "*") + "-001"},
		{"unpriced", "llama3.2"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sum int64
			for b.Loop() {
				p, _ := tab.Lookup(bc.model)
				sum += p.Of(tok).MicroUSD()
			}
			_ = sum
		})
	}
	// A name past the memory's bound is matched every time.
	b.Run("unremembered/bedrock-claude", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tab.match("anthropic.claude-haiku-4-5-20251001-v1:0")
		}
	})
}

func TestLookupRemembersBoundedNames(t *testing.T) {
	t.Parallel()
	tab := New(nil)
	for i := range maxSeen + 10 {
		name := "gpt-4o-" + strconv.Itoa(i)
		if p, ok := tab.Lookup(name); !ok || p.Input != 2_500_000 {
			t.Fatalf("%s: %+v %v", name, p, ok)
		}
	}
	if n := len(tab.seen); n != maxSeen {
		t.Errorf("%d names remembered, want %d", n, maxSeen)
	}
	// Remembered and unremembered names answer the same.
	if p, ok := tab.Lookup("gpt-4o-" + strconv.Itoa(maxSeen+5)); !ok || p.Input != 2_500_000 {
		t.Errorf("past the bound: %+v %v", p, ok)
	}
}
