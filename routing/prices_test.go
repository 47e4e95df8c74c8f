package routing

import (
	"os"
	"testing"

	"switchyard/pricing"
)

// The config's prices come before the shipped ones; cache prices default
// to the input price.
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
		"my-model":    {Input: 2_500_000, Output: 10_000_000, CacheRead: 250_000, CacheWrite: 3_000_000},
		"gpt-4o":      {},                                                                        // overridden to free
		"gpt-4o-mini": {Input: 150_000, Output: 600_000, CacheRead: 75_000, CacheWrite: 150_000}, // shipped
	} {
		if got, ok := r.Prices().Lookup(model); !ok || got != want {
			t.Errorf("%s: %+v, %v; want %+v", model, got, ok, want)
		}
	}
}
