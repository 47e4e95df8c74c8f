package routing

import (
	"switchyard/config"
	"switchyard/pricing"
)

// CompilePrices puts a config's prices (valid ones) in front of the shipped
// table.
func CompilePrices(pcs []config.PriceConfig) *pricing.Table {
	entries := make([]pricing.Entry, 0, len(pcs))
	for _, pc := range pcs {
		entries = append(entries, pricing.Entry{Model: pc.Model, Input: *pc.Input, Output: *pc.Output,
			CacheRead: pc.CacheReadOrInput(), CacheWrite: pc.CacheWriteOrInput(), CacheWrite1h: pc.CacheWrite1h,
			Priority: pc.Priority, Flex: pc.Flex})
	}
	return pricing.New(entries)
}

// Prices is the price table of this snapshot: the config's `prices:` in
// front of the shipped list prices.
func (r *Router) Prices() *pricing.Table { return r.prices }
