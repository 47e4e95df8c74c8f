package main

import (
	"flag"
	"fmt"
	"io"

	"switchyard/config"
	"switchyard/limits"
)

// runRateLimitConfig prints the config file envoyproxy/ratelimit needs to
// keep the gateway's counters: the domain. The budgets themselves travel in
// every call, from the gateway config, so they live in one place and a
// reload changes them at once. The gateway config is read to check it.
func runRateLimitConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ratelimit-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "switchyard.yaml", "gateway config")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ratelimit-config: unexpected arguments %q", fs.Args())
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if cfg.GlobalLimits() == nil {
		fmt.Fprintf(stderr, "extproc: note: %s has no rate_limit_service; its limits are kept in process\n", *path)
	}
	_, err = io.WriteString(stdout, limits.ServiceConfig())
	return err
}
