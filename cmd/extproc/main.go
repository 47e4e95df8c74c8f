// Command extproc is Switchyard's Envoy external processor: it serves the
// ext_proc gRPC API beside Envoy, routes each LLM request by model and
// injects the provider's credential. It also renders the Envoy configuration
// (`extproc envoy-config`) and the rate-limit service's
// (`extproc ratelimit-config`), and tests Lua hooks offline (`extproc hooks`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	applyRuntimeDefaults(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "extproc:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  extproc [serve flags]             serve the ext_proc API (see -h)
  extproc envoy-config [flags]      print the Envoy configuration for a gateway config
  extproc ratelimit-config [-config FILE]
                                    print envoyproxy/ratelimit's config for a gateway config
  extproc prices [-config FILE] MODEL...
                                    print the price charged for each model and its entry
  extproc hooks check DIR           compile and validate Lua hooks
  extproc hooks test DIR --request FILE.json [--header k:v ...] [--config FILE]
                                    show what the hooks do to one request
  extproc keys COMMAND [flags]      manage client keys and teams over the admin API (extproc keys help)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "envoy-config":
			return runEnvoyConfig(args[1:], stdout, stderr)
		case "ratelimit-config":
			return runRateLimitConfig(args[1:], stdout, stderr)
		case "hooks":
			return runHooks(ctx, args[1:], stdout, stderr)
		case "prices":
			return runPrices(args[1:], stdout, stderr)
		case "keys":
			return runKeys(ctx, args[1:], stdout, stderr)
		case "serve":
			args = args[1:]
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	return runServe(ctx, args, stderr)
}
