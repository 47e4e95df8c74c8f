package routing

import (
	"os"
	"testing"

	"switchyard/pricing"
)

// The config's prices come before the shipped ones; cache prices default
// to the input price, a 1-hour cache write's to twice it, and the tiers'
// multipliers to the price table's.
func TestPricesOverride(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/config/ok_prices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeAndCompile(data)
	if err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]pricing.Price{
		// cache_write_1h defaults to twice the input price, priority to
		// twice every price, flex to the standard price.
		"my-model": {Input: 2_500_000, Output: 10_000_000, CacheRead: 250_000, CacheWrite: 3_000_000, CacheWrite1h: 5_000_000, Priority: 2, Flex: 1},
		"claude-x": {Input: 3_000_000, Output: 15_000_000, CacheRead: 3_000_000, CacheWrite: 3_750_000, CacheWrite1h: 7_000_000, Priority: 2, Flex: 1},
		"gpt-x":    {Input: 2_000_000, Output: 8_000_000, CacheRead: 2_000_000, CacheWrite: 2_000_000, CacheWrite1h: 4_000_000, Priority: 1.75, Flex: 0.5},
		"gpt-4o":   {Priority: 2, Flex: 1}, // overridden to free
		// shipped
		"gpt-4o-mini": {Input: 150_000, Output: 600_000, CacheRead: 75_000, CacheWrite: 150_000, CacheWrite1h: 300_000, Priority: 1.6666667, Flex: 1},
	} {
		if got, ok := r.Prices().Lookup(model); !ok || got != want {
			t.Errorf("%s: %+v, %v; want %+v", model, got, ok, want)
		}
	}
}
