package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"switchyard/config"
	"switchyard/luahooks"
	"switchyard/processor"
	"switchyard/routing"
)

const hooksUsage = `usage:
  extproc hooks check DIR [--config FILE]
      compile the hooks in DIR and run each once against a synthetic request,
      as a reload would; exit non-zero on the first problem (file:line)
  extproc hooks test DIR --request FILE.json [--header name:value ...]
                 [--path /v1/chat/completions] [--key-name NAME] [--config FILE]
      run the on_request hooks in DIR on the request body in FILE.json and
      print what each hook changed; with --config also print the routing
      decision (providers and routes given to req:provider/req:route are
      checked against it, and its hooks.files order, timeout and
      failure_policy apply; without it each hook may take up to 1s).
      With --path /mcp/<server> the request is an MCP tools/call: the
      on_tool_call hooks run on it (and with --config the key's mcp_tools)
`

// dryRunHookTimeout is each hook's budget in a dry run without --config:
// the run checks what hooks do, not how fast, and a first run on a busy
// machine must not fail for the gateway's 5ms default.
const dryRunHookTimeout = time.Second

// runHooks implements `extproc hooks ...`; args follow "hooks".
func runHooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, hooksUsage)
		return errors.New("hooks: missing subcommand (check or test)")
	}
	switch args[0] {
	case "check":
		return runHooksCheck(args[1:], stdout, stderr)
	case "test":
		return runHooksTest(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, hooksUsage)
		return nil
	}
	fmt.Fprint(stderr, hooksUsage)
	return fmt.Errorf("hooks: unknown subcommand %q", args[0])
}

// headerFlags collects repeated --header name:value flags.
type headerFlags map[string]string

func (h headerFlags) String() string { return fmt.Sprint(map[string]string(h)) }

func (h headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("%q is not name:value", s)
	}
	h[strings.ToLower(name)] = strings.TrimSpace(value)
	return nil
}

// hooksTestFlags are the flags of `hooks test` (and the subset check uses).
type hooksTestFlags struct {
	dir     string
	request string
	headers headerFlags
	path    string
	keyName string
	config  string
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (flag stops at the first positional one).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func parseHooksFlags(name string, args []string, stderr io.Writer, test bool) (hooksTestFlags, error) {
	f := hooksTestFlags{headers: headerFlags{}}
	fs := flag.NewFlagSet("hooks "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, hooksUsage) }
	fs.StringVar(&f.config, "config", "", "gateway config (switchyard.yaml)")
	if test {
		fs.StringVar(&f.request, "request", "", "JSON request body")
		fs.Var(f.headers, "header", "request header name:value (repeatable)")
		fs.StringVar(&f.path, "path", "/v1/chat/completions", "request path")
		fs.StringVar(&f.keyName, "key-name", "", "name of the client key the request is made with")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return f, err
	}
	var errs []error
	switch len(pos) {
	case 0:
		errs = append(errs, errors.New("missing hooks directory"))
	case 1:
		f.dir = pos[0]
	default:
		errs = append(errs, fmt.Errorf("want one hooks directory, got %q", pos))
	}
	if test && f.request == "" {
		errs = append(errs, errors.New("--request FILE.json is required"))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprint(stderr, hooksUsage)
		return f, fmt.Errorf("hooks %s: %w", name, err)
	}
	return f, nil
}

// loadRouter loads --config, if given, and returns the hook settings it
// holds for dir.
func loadRouter(path string) (*routing.Router, config.HooksConfig, error) {
	if path == "" {
		return nil, config.HooksConfig{Timeout: dryRunHookTimeout}, nil
	}
	r, err := routing.Load(path)
	if err != nil {
		return nil, config.HooksConfig{}, err
	}
	return r, r.Hooks(), nil
}

func runHooksCheck(args []string, stdout, stderr io.Writer) error {
	f, err := parseHooksFlags("check", args, stderr, false)
	if err != nil {
		return err
	}
	_, hc, err := loadRouter(f.config)
	if err != nil {
		return err
	}
	scripts, err := luahooks.Check(f.dir, hc.Files)
	if err != nil {
		return fmt.Errorf("checking hooks in %s:\n%w", f.dir, err)
	}
	fmt.Fprintf(stdout, "ok: %d script(s) in %s: %s\n", len(scripts), filepath.Clean(f.dir), strings.Join(scripts, ", "))
	return nil
}

func runHooksTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseHooksFlags("test", args, stderr, true)
	if err != nil {
		return err
	}
	router, hc, err := loadRouter(f.config)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(f.request)
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	sources, err := luahooks.ReadDir(f.dir, hc.Files)
	if err != nil {
		return err
	}
	set, err := luahooks.NewSet(sources, luahooks.Options{Timeout: hc.Timeout, FailOpen: hc.FailOpen})
	if err != nil {
		return fmt.Errorf("checking hooks in %s:\n%w", f.dir, err)
	}
	if server, ok := toolCallPath(f.path); ok {
		return runToolCallTest(ctx, stdout, router, set, server, f.keyName, body)
	}
	req := processor.Request{Method: "POST", Path: f.path, Headers: f.headers, Body: body}
	plan, err := processor.DryRun(ctx, router, set, req, f.keyName)
	if plan.Hooks != nil {
		report := luahooks.Report{Scripts: set.Scripts(), Result: *plan.Hooks, Err: plan.HookErr}
		if err := report.WriteText(stdout); err != nil {
			return err
		}
	}
	switch {
	case plan.HookErr != nil:
		return errors.New("a hook failed; the gateway would answer this request with an error")
	case err != nil:
		fmt.Fprintf(stdout, "answer: %v\n", err)
		return errors.New("the request would not be routed")
	}
	if plan.Session != "" {
		fmt.Fprintf(stdout, "session: %q (from %s)\n", plan.Session, plan.SessionSource)
	}
	if plan.Answer != nil {
		fmt.Fprintf(stdout, "answer: 200 %s (the gateway's estimate)\n", plan.Answer)
		return nil
	}
	if plan.Response.Translate {
		fmt.Fprintf(stdout, "translated: %s API to %s API\n", plan.ClientAPI, plan.Attempts[0].API)
	}
	writeAttempts(stdout, plan.Attempts)
	return nil
}

// writeAttempts prints where each upstream attempt goes and what it
// carries, with the provider's key redacted.
func writeAttempts(w io.Writer, attempts []processor.Attempt) {
	fmt.Fprintln(w, "routing:")
	for i, a := range attempts {
		fmt.Fprintf(w, "  attempt %d:\n    provider: %s\n    cluster: %s\n    model: %s\n    api: %s\n    path: %s\n",
			i+1, a.Provider, a.Cluster, a.Model, a.API, a.Path)
		if a.Route != "" {
			fmt.Fprintf(w, "    route: %s\n", a.Route)
		}
		if a.Key != "" {
			fmt.Fprintf(w, "    pool key: %s\n", a.Key) // where the key comes from, never the key
		}
		for _, h := range a.SetHeaders {
			value := h.Value
			if h.Name == a.Credential || h.Name == "x-amz-security-token" {
				value = "[redacted]"
			}
			fmt.Fprintf(w, "    set header %s: %s\n", h.Name, value)
		}
		for _, name := range a.RemoveHeaders {
			fmt.Fprintf(w, "    remove header %s\n", name)
		}
		if a.BodyChanged {
			fmt.Fprintf(w, "    body: %s\n", a.Body)
		}
	}
}
