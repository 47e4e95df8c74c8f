package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"

	"switchyard/config"
	"switchyard/pricing"
	"switchyard/routing"
)

// runPrices prints, for each model name given, the price the gateway
// charges for it under a config and which entry it comes from: the config's
// prices: section or the shipped table (with the date it was taken).
func runPrices(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "switchyard.yaml", "gateway config")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("prices: name one or more models, as sent to the provider")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	prices := routing.CompilePrices(cfg.Prices) // Load validated them
	fmt.Fprintln(stdout, "# US dollars per million tokens: input output cache_read cache_write cache_write_1h, times priority flex  (entry)")
	for _, model := range fs.Args() {
		m, ok := prices.Explain(model)
		from := "shipped, taken " + pricing.ShippedPrices().Taken
		if m.FromConfig {
			from = "config prices"
		}
		if !ok {
			entry := ""
			if m.Pattern != "" {
				entry = fmt.Sprintf("\t(%s %q: unpriced)", from, m.Pattern)
			}
			fmt.Fprintf(stdout, "%s\tunpriced: costs nothing, counted in switchyard_unpriced_requests_total%s\n", model, entry)
			continue
		}
		p := m.Price
		fmt.Fprintf(stdout, "%s\t%s %s %s %s %s, x%s x%s\t(%s %q)\n", model, usd(p.Input), usd(p.Output), usd(p.CacheRead), usd(p.CacheWrite), usd(p.CacheWrite1h),
			strconv.FormatFloat(p.Priority, 'f', -1, 64), strconv.FormatFloat(p.Flex, 'f', -1, 64), from, m.Pattern)
	}
	return nil
}

// usd formats a Price field (micro-dollars per million tokens) in dollars.
func usd(perMillion int64) string {
	return strconv.FormatFloat(float64(perMillion)/1e6, 'f', -1, 64)
}
