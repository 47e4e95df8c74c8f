// Package config reads the gateway's configuration file: the schema, strict
// decoding with a line for every problem, validation, and the loading of
// secrets (provider and client keys) from the environment or files. It
// knows nothing of routing; routing.Compile turns a Config into a Router.
//
// The file:
//
//	max_body_bytes: 10485760          # optional, default 10 MiB
//	providers:                        # at least one
//	  - name: openai                  # [a-z0-9_-]+, unique
//	    url: https://api.openai.com   # http(s)://host[:port], no path
//	    cluster: openai               # Envoy cluster, default name
//	    schema: openai                # openai | anthropic | azure-openai | gemini | vertex
//	    api_version: 2024-10-21       # azure-openai only: deployments paths, or v1
//	    project: my-project           # vertex only, with region (us-east5, global...)
//	    publisher: anthropic          # vertex only: anthropic (Claude) or google (Gemini)
//	    path_prefix: /v1beta          # optional, "/x" without trailing "/"
//	    auth: {type: bearer, key_env: OPENAI_API_KEY}
//	    # auth types: none (default), bearer (authorization: Bearer <key>),
//	    # header (header: x-api-key); the key comes from key_env or key_file,
//	    # or a pool: keys: [{key_env: K1, weight: 2}, {key_file: /run/k2}];
//	    # entra (azure-openai): entra: {tenant_id, client_id, client_secret_env}
//	    # gcp_oauth (vertex): credentials_file, or Application Default Credentials
//	routes:
//	  - model: gpt-4o                 # exact name, or glob with * and ?
//	    provider: openai
//	    rewrite_model: gpt-4o-2024-08-06   # optional
//	  - model: "claude-*"
//	    name: claude                  # optional, default model; hooks select by name
//	    targets:                      # weighted split instead of provider
//	      - {provider: anthropic, weight: 3}
//	      - {provider: bedrock, model: anthropic.claude-x, weight: 1}
//	client_keys:                      # optional; when set every request needs one
//	  - name: team-a
//	    key_env: SWITCHYARD_KEY_TEAM_A
//	    models: ["gpt-4*"]            # optional allow-list
//	    loop_guard: {max_repeats: 5, window: 60s}   # optional, replaces the top-level one
//	    limits: {requests_per_minute: 600, tokens_per_minute: 200000, tokens_per_day: 5000000}
//	    # money: limits: {usd_per_day: 50, usd_per_month: 1000}, priced by the price table
//	loop_guard: {max_repeats: 5, window: 60s}     # optional, off by default
//	rate_limit_service:               # optional: limits shared by every replica
//	  address: 127.0.0.1:8081         # envoyproxy/ratelimit gRPC: host:port or unix:/path
//	  failure_mode: allow             # allow (default) or deny when it cannot answer
//	  timeout: 100ms                  # per call, default 100ms
//	prices:                           # optional: override the shipped price table (prices.go)
//	  - {model: "gpt-4o*", input: 2.50, output: 10, cache_read: 1.25}
//	hooks: {dir: ./hooks, files: [a.lua], timeout: 5ms, failure_policy: fail_closed}
//	tracing: {enabled: true, envoy_collector: 127.0.0.1:4317, capture_content: false}
//	mcp_servers:                      # optional MCP tool servers, at /mcp/<name> (mcp.go)
//	  - {name: github, url: https://mcp.example.com/mcp, auth: {type: bearer, key_env: GH_TOKEN}}
//
// Decoding is strict: unknown fields and every validation problem are
// reported together, each with its line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Envoy's own clusters, both to extproc: ext_proc streams and, with -xds,
// the ADS stream. A provider's cluster must not take either name (Envoy
// would refuse two clusters of one name at start, and over xDS would keep
// its own cluster, sending that provider's requests to extproc).
const (
	ExtProcClusterName = "switchyard_extproc"
	XDSClusterName     = "switchyard_xds"
)

// DefaultMaxBodyBytes is the request body limit when max_body_bytes is not set.
const DefaultMaxBodyBytes int64 = 10 << 20

// API is the wire schema a client speaks and a provider expects.
type API string

const (
	APIOpenAI    API = "openai"
	APIAnthropic API = "anthropic"
	// Provider schemas no client speaks as such (clouds.go).
	APIAzureOpenAI API = "azure-openai"
	APIGemini      API = "gemini"
	// APIBedrock is a provider schema only: AWS Bedrock's runtime, which
	// takes Messages bodies (config/bedrock.go).
	APIBedrock API = "bedrock"
)

// DefaultHookTimeout is the per-hook time budget when hooks.timeout is not set.
const DefaultHookTimeout = 5 * time.Millisecond

// Config is the decoded configuration file. It holds names of environment
// variables and files, never key values, so it is safe to log.
type Config struct {
	// MaxBodyBytes limits request bodies; nil means DefaultMaxBodyBytes.
	MaxBodyBytes *int64            `yaml:"max_body_bytes"`
	Providers    []ProviderConfig  `yaml:"providers"`
	Routes       []RouteConfig     `yaml:"routes"`
	ClientKeys   []ClientKeyConfig `yaml:"client_keys"`
	Hooks        HooksSection      `yaml:"hooks"`
	// Ejection takes providers that keep failing out of fallback chains for
	// a while; nil means the defaults.
	Ejection *EjectionConfig `yaml:"ejection"`
	// LoopGuard applies to every client key without its own loop_guard,
	// and to anonymous clients; nil: off.
	LoopGuard *LoopGuardConfig `yaml:"loop_guard"`
	// Usage counts the tokens of every request; nil: only those of keys
	// with token limits (and of translated requests) are counted.
	Usage *UsageConfig `yaml:"usage"`
	// RateLimitService keeps client keys' limits in Envoy's rate-limit
	// service, shared by every replica; nil: in this process.
	RateLimitService *RateLimitServiceConfig `yaml:"rate_limit_service"`
	// Tracing exports OpenTelemetry traces (tracing.go); nil: off.
	Tracing *TracingConfig `yaml:"tracing"`
	// Prices override and extend the shipped price table (prices.go).
	Prices []PriceConfig `yaml:"prices"`
	// MCPServers are the MCP tool servers reached at /mcp/<name> (mcp.go).
	MCPServers []MCPServerConfig `yaml:"mcp_servers"`

	// root is the parsed document, kept to give validation errors a line.
	root *yaml.Node
}

// UsageConfig is the token accounting section.
type UsageConfig struct {
	// Enabled counts every response's tokens (switchyard_tokens_total and
	// the request log). Each counted request costs an observing ext_proc
	// stream on the response (docs/PERFORMANCE.md).
	Enabled bool `yaml:"enabled"`
}

// CountsUsage reports whether every request's tokens are counted.
func (c *Config) CountsUsage() bool { return c.Usage != nil && c.Usage.Enabled }

// ProviderConfig is one upstream provider.
type ProviderConfig struct {
	Name       string     `yaml:"name"`
	URL        string     `yaml:"url"`
	Cluster    string     `yaml:"cluster"`
	Schema     API        `yaml:"schema"`
	PathPrefix string     `yaml:"path_prefix"`
	Auth       AuthConfig `yaml:"auth"`
	// APIVersion is Azure OpenAI's api-version for the deployments paths,
	// or "v1" for its v1 paths (clouds.go).
	APIVersion string `yaml:"api_version"`
	// Project, Region and Publisher place a vertex provider's models
	// (vertex.go).
	Project   string `yaml:"project"`
	Region    string `yaml:"region"`
	Publisher string `yaml:"publisher"`
	// AnthropicBetas are the anthropic-beta flags a bedrock provider, or a
	// vertex one of Claude, passes on; nil: the ones Bedrock documents
	// (bedrock.DefaultBetas), and every one to Vertex.
	AnthropicBetas []string `yaml:"anthropic_betas"`
}

// AuthConfig says how the gateway authenticates to a provider.
type AuthConfig struct {
	// Type is "none" (also when empty), "bearer" or "header".
	Type    string `yaml:"type"`
	Header  string `yaml:"header"`
	KeyEnv  string `yaml:"key_env"`
	KeyFile string `yaml:"key_file"`
	// Keys is a key pool, instead of KeyEnv or KeyFile: requests spread
	// over the keys by weight, and a key answered 429 rests a while.
	Keys []PoolKeyConfig `yaml:"keys"`
	// Entra configures type "entra" (Azure OpenAI; clouds.go); nil there
	// means Azure's default credential chain.
	Entra *EntraConfig `yaml:"entra"`
	// Region and Profile are for type aws_sigv4 (config/bedrock.go).
	Region  string `yaml:"region"`
	Profile string `yaml:"profile"`
	// CredentialsFile is type "gcp_oauth"'s service account key file;
	// empty: Application Default Credentials (vertex.go).
	CredentialsFile string `yaml:"credentials_file"`
	// Credentials is a pool of aws_sigv4 or gcp_oauth credentials, as Keys
	// is of API keys (cloudpool.go).
	Credentials []CloudCredentialConfig `yaml:"credentials"`
}

// PoolKeyConfig is one key of a provider's key pool.
type PoolKeyConfig struct {
	KeyEnv  string `yaml:"key_env"`
	KeyFile string `yaml:"key_file"`
	// Weight is nil for the default of 1.
	Weight *int `yaml:"weight"`
}

// Source names where the key comes from (the variable or the file), never
// the key itself.
func (k PoolKeyConfig) Source() string {
	if k.KeyEnv != "" {
		return envSource(k.KeyEnv)
	}
	return k.KeyFile
}

// RouteConfig maps a model name or glob to one provider or to weighted
// targets.
type RouteConfig struct {
	Model        string         `yaml:"model"`
	Name         string         `yaml:"name"`
	Provider     string         `yaml:"provider"`
	RewriteModel string         `yaml:"rewrite_model"`
	Targets      []TargetConfig `yaml:"targets"`
	// Fallbacks are tried in order once the targets have failed.
	Fallbacks []TargetConfig `yaml:"fallbacks"`
	// Retry says when an attempt has failed; nil means the defaults when
	// there are fallbacks.
	Retry *RetryConfig `yaml:"retry"`
}

// TargetConfig is one weighted target of a route.
type TargetConfig struct {
	Provider string `yaml:"provider"`
	Model    string `yaml:"model"`
	// Weight is nil for the default of 1.
	Weight *int `yaml:"weight"`
}

// ClientKeyConfig is one key clients may present to the gateway.
type ClientKeyConfig struct {
	Name    string   `yaml:"name"`
	KeyEnv  string   `yaml:"key_env"`
	KeyFile string   `yaml:"key_file"`
	Models  []string `yaml:"models"`
	// Limits bounds what the key may use; nil means no limit.
	Limits *LimitsConfig `yaml:"limits"`
	// LoopGuard, when set, replaces the top-level loop_guard for this key.
	LoopGuard *LoopGuardConfig `yaml:"loop_guard"`
	// MCPTools is the allow-list of MCP tools as "server/tool" globs
	// (mcp.go); empty allows every tool of every MCP server.
	MCPTools []string `yaml:"mcp_tools"`
}

// LimitsConfig bounds a client key's use per calendar minute or UTC day;
// 0 means no bound of that kind. Tokens are charged after each response with
// the usage the provider reported.
type LimitsConfig struct {
	RequestsPerMinute int64 `yaml:"requests_per_minute"`
	TokensPerMinute   int64 `yaml:"tokens_per_minute"`
	TokensPerDay      int64 `yaml:"tokens_per_day"`
	// USDPerDay and USDPerMonth bound the key's spend in US dollars per UTC
	// day and calendar month, priced by the price table (prices.go).
	USDPerDay   float64 `yaml:"usd_per_day"`
	USDPerMonth float64 `yaml:"usd_per_month"`
}

// maxLimit is the largest limit: the rate-limit service takes limits as
// 32-bit counts.
const maxLimit = 1<<32 - 1

func (l *LimitsConfig) validate(v *validator, p path) {
	if l == nil {
		return
	}
	for _, f := range []struct {
		name string
		n    int64
	}{{"requests_per_minute", l.RequestsPerMinute}, {"tokens_per_minute", l.TokensPerMinute}, {"tokens_per_day", l.TokensPerDay}} {
		if f.n < 0 || f.n > maxLimit {
			v.errf(p.key(f.name), "must be from 0 (no limit) to %d, got %d", int64(maxLimit), f.n)
		}
	}
	l.validateUSD(v, p)
}

// DefaultRateLimitTimeout bounds one call to the rate-limit service when
// rate_limit_service.timeout is not set.
const DefaultRateLimitTimeout = 100 * time.Millisecond

// RateLimitServiceConfig points the gateway at Envoy's rate-limit service
// (envoyproxy/ratelimit).
type RateLimitServiceConfig struct {
	// Address is host:port or unix:/path.
	Address string `yaml:"address"`
	// FailureMode is "allow" (also when empty) or "deny": what happens to a
	// request while the service cannot answer.
	FailureMode string `yaml:"failure_mode"`
	// Timeout bounds each call, such as 100ms; empty: the default.
	Timeout string `yaml:"timeout"`
}

// RateLimitService is the compiled rate_limit_service section.
type RateLimitService struct {
	Address string
	Deny    bool // failure_mode: deny
	Timeout time.Duration
}

// GlobalLimits returns the compiled rate_limit_service section, or nil
// when limits are kept in process; c must be valid.
func (c *Config) GlobalLimits() *RateLimitService {
	rc := c.RateLimitService
	if rc == nil {
		return nil
	}
	timeout, _ := rc.timeout() // validated
	return &RateLimitService{Address: rc.Address, Deny: rc.FailureMode == "deny", Timeout: timeout}
}

func (rc *RateLimitServiceConfig) timeout() (time.Duration, error) {
	if rc.Timeout == "" {
		return DefaultRateLimitTimeout, nil
	}
	d, err := time.ParseDuration(rc.Timeout)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 100ms", rc.Timeout)
	}
	if d <= 0 || d > 10*time.Second {
		return 0, fmt.Errorf("must be more than 0 and at most 10s, got %s", rc.Timeout)
	}
	return d, nil
}

func (rc *RateLimitServiceConfig) validate(v *validator) {
	if rc == nil {
		return
	}
	p := path{"rate_limit_service"}
	switch sock, unix := strings.CutPrefix(rc.Address, "unix:"); {
	case rc.Address == "":
		v.errf(p.key("address"), "is required (host:port or unix:/path)")
	case unix && !strings.HasPrefix(sock, "/"):
		v.errf(p.key("address"), "%q: a unix socket needs an absolute path, unix:/path", rc.Address)
	case !unix:
		if host, port, err := net.SplitHostPort(rc.Address); err != nil || host == "" || !isPort(port) {
			v.errf(p.key("address"), "%q must be host:port or unix:/path", rc.Address)
		}
	}
	switch rc.FailureMode {
	case "", "allow", "deny":
	default:
		v.errf(p.key("failure_mode"), `must be "allow" or "deny", got %q`, rc.FailureMode)
	}
	if _, err := rc.timeout(); err != nil {
		v.errf(p.key("timeout"), "%v", err)
	}
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// HooksSection is the hooks part of the file, passed on to the hooks engine
// as plain data once compiled into HooksConfig.
type HooksSection struct {
	Dir           string   `yaml:"dir"`
	Files         []string `yaml:"files"`
	Timeout       string   `yaml:"timeout"`
	FailurePolicy string   `yaml:"failure_policy"`
}

// Load reads and decodes the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("decoding config %s: %w", path, err)
	}
	return cfg, nil
}

// Decode parses and validates a YAML configuration. Unknown fields, type
// mismatches and semantic problems are all reported, joined, each with the
// line it was found on.
func Decode(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config is empty")
		}
		return nil, fmt.Errorf("parsing yaml: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("parsing yaml: %w", err)
		}
		return nil, fmt.Errorf("line %d: config holds more than one yaml document", extra.Line)
	}

	cfg := &Config{root: &root}
	v := &validator{root: &root}
	checkFields(&root, reflect.TypeFor[Config](), nil, v)
	if err := root.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("decoding yaml: %w", err)
		}
		for _, msg := range te.Errors {
			v.errs = append(v.errs, errors.New(strings.ReplaceAll(msg, "config.", "")))
		}
		// A partly decoded config would only add misleading errors (a
		// value that failed to decode looks like a missing one).
		return nil, v.err()
	}
	cfg.validate(v)
	if err := v.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkFields reports mapping keys that no field of t is tagged with. Aliases
// are not followed: the anchored node is checked where it is defined.
func checkFields(n *yaml.Node, t reflect.Type, p path, v *validator) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkFields(c, t, p, v)
		}
		return
	case yaml.AliasNode:
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				if val.Kind == yaml.SequenceNode {
					for _, m := range val.Content {
						checkFields(m, t, p, v)
					}
				} else {
					checkFields(val, t, p, v)
				}
				continue
			}
			f, ok := fieldByTag(t, k.Value)
			if !ok {
				v.add(k.Line, p.key(k.Value), fmt.Sprintf("unknown field %q", k.Value))
				continue
			}
			checkFields(val, f.Type, p.key(k.Value), v)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkFields(c, t.Elem(), p.index(i), v)
		}
	}
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// path locates a value in the document: string elements are mapping keys,
// int elements are sequence indexes.
type path []any

func (p path) key(k string) path { return append(p[:len(p):len(p)], k) }
func (p path) index(i int) path  { return append(p[:len(p):len(p)], i) }

func (p path) String() string {
	var b strings.Builder
	for _, e := range p {
		switch e := e.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e)
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		}
	}
	return b.String()
}

// line finds the line of the value at p, or of its nearest ancestor present
// in the document; 0 when there is no document.
func (p path) line(root *yaml.Node) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return n.Line
		}
		n = n.Content[0]
	}
	line := n.Line
	for _, e := range p {
		switch e := e.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == e {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || e >= len(n.Content) {
				return line
			}
			n = n.Content[e]
			line = n.Line
		}
	}
	return line
}

// validator collects every problem found in a config.
type validator struct {
	root *yaml.Node
	errs []error
}

func (v *validator) add(line int, p path, msg string) {
	if line > 0 {
		v.errs = append(v.errs, fmt.Errorf("line %d: %s: %s", line, p, msg))
		return
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %s", p, msg))
}

func (v *validator) errf(p path, format string, args ...any) {
	v.add(p.line(v.root), p, fmt.Sprintf(format, args...))
}

// maxReportedErrors keeps a broken (or hostile) file from producing an
// unbounded message.
const maxReportedErrors = 50

func (v *validator) err() error {
	if len(v.errs) > maxReportedErrors {
		more := len(v.errs) - maxReportedErrors
		return errors.Join(append(v.errs[:maxReportedErrors:maxReportedErrors], fmt.Errorf("... and %d more errors", more))...)
	}
	return errors.Join(v.errs...)
}

// Validate checks everything that can be checked without the environment,
// for a Config built in code rather than decoded.
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("nil config")
	}
	v := &validator{root: c.root}
	c.validate(v)
	return v.err()
}

// Problem is an error about the value at the path given by elems (mapping
// keys as strings, sequence indexes as ints), with its line when the Config
// was decoded from a document.
func (c *Config) Problem(msg string, elems ...any) error {
	v := &validator{root: c.root}
	v.errf(path(elems), "%s", msg)
	return v.errs[0]
}

// validate checks everything that can be checked without the environment.
func (c *Config) validate(v *validator) {
	if c.MaxBodyBytes != nil && *c.MaxBodyBytes <= 0 {
		v.errf(path{"max_body_bytes"}, "must be greater than 0, got %d", *c.MaxBodyBytes)
	}

	if len(c.Providers) == 0 {
		v.errf(path{"providers"}, "at least one provider is required")
	}
	names := map[string]int{}
	clusters := map[string]int{}
	for i, pc := range c.Providers {
		p := path{"providers", i}
		nameOK := false
		if pc.Name == "" {
			v.errf(p.key("name"), "is required")
		} else if !isName(pc.Name) {
			v.errf(p.key("name"), "%q must match [a-z0-9_-]+", pc.Name)
		} else if j, dup := names[pc.Name]; dup {
			v.errf(p.key("name"), "duplicate provider name %q (also providers[%d])", pc.Name, j)
		} else {
			names[pc.Name] = i
			nameOK = true
		}
		// A cluster defaulted from a bad name has been reported already.
		if pc.Cluster != "" || nameOK {
			cluster := pc.ClusterName()
			if !isClusterName(cluster) {
				v.errf(p.key("cluster"), "%q must match [A-Za-z0-9_.-]+", cluster)
			} else if cluster == ExtProcClusterName || cluster == XDSClusterName || cluster == TraceCollectorClusterName {
				v.errf(p.key("cluster"), "%q is the name of one of Envoy's own clusters: choose another", cluster)
			} else if j, dup := clusters[cluster]; dup {
				v.errf(p.key("cluster"), "duplicate cluster %q (also providers[%d])", cluster, j)
			} else {
				clusters[cluster] = i
			}
		}
		if _, err := parseProviderURL(pc.urlOrDefault()); err != nil && (pc.URL != "" || pc.Schema != APIBedrock) {
			v.errf(p.key("url"), "%v", err)
		}
		switch pc.Schema {
		case APIOpenAI, APIAnthropic, APIAzureOpenAI, APIGemini, APIVertex:
		case APIBedrock:
			pc.validateBedrock(v, p)
		case "":
			v.errf(p.key("schema"), `is required: %s`, schemaNames)
		default:
			v.errf(p.key("schema"), `must be %s, got %q`, schemaNames, pc.Schema)
		}
		pc.validateCloud(v, p)
		pc.validateVertex(v, p)
		for i, b := range pc.AnthropicBetas {
			if !isToken(b) {
				v.errf(p.key("anthropic_betas").index(i), "%q is not a beta flag name", b)
			}
		}
		if pc.AnthropicBetas != nil && pc.Schema != APIBedrock && (pc.Schema != APIVertex || pc.Publisher != VertexAnthropic) {
			v.errf(p.key("anthropic_betas"), `is only used with schema "bedrock", and "vertex" with publisher "anthropic"`)
		}
		if pp := pc.PathPrefix; pp != "" {
			switch {
			case !strings.HasPrefix(pp, "/"):
				v.errf(p.key("path_prefix"), `%q must start with "/"`, pp)
			case strings.HasSuffix(pp, "/"):
				v.errf(p.key("path_prefix"), `%q must not end with "/"`, pp)
			case strings.ContainsAny(pp, "?#") || strings.Contains(pp, "//") || hasSpaceOrControl(pp):
				v.errf(p.key("path_prefix"), `%q must be a plain path without "?", "#", "//", spaces or control characters`, pp)
			}
		}
		if pc.Schema != APIBedrock {
			pc.Auth.validate(v, p.key("auth"))
		}
	}

	routeNames := map[string]int{}
	for i, rc := range c.Routes {
		p := path{"routes", i}
		if rc.Model == "" {
			v.errf(p.key("model"), "is required")
		} else if err := checkPattern(rc.Model); err != nil {
			v.errf(p.key("model"), "%v", err)
		}
		name := rc.RouteName()
		if rc.Name != "" && hasSpaceOrControl(rc.Name) {
			v.errf(p.key("name"), "%q must not contain spaces or control characters", rc.Name)
		} else if j, dup := routeNames[name]; dup && name != "" {
			np := p.key("name")
			if rc.Name == "" {
				np = p.key("model")
			}
			v.errf(np, "duplicate route name %q (also routes[%d]); give one of them a name", name, j)
		} else if name != "" {
			routeNames[name] = i
		}
		switch {
		case rc.Provider != "" && len(rc.Targets) > 0:
			v.errf(p, "has both provider and targets; use one")
		case rc.Provider == "" && len(rc.Targets) == 0:
			v.errf(p, "needs a provider or targets")
		case rc.Provider != "":
			if _, ok := names[rc.Provider]; !ok {
				v.errf(p.key("provider"), "unknown provider %q", rc.Provider)
			}
			if rc.RewriteModel != "" && hasSpaceOrControl(rc.RewriteModel) {
				v.errf(p.key("rewrite_model"), "%q must not contain spaces or control characters", rc.RewriteModel)
			}
		default:
			if rc.RewriteModel != "" {
				v.errf(p.key("rewrite_model"), "cannot be used with targets; set model on each target")
			}
			for j, tc := range rc.Targets {
				tp := p.key("targets").index(j)
				tc.validate(v, tp, names)
				if tc.Weight != nil && *tc.Weight < 1 {
					v.errf(tp.key("weight"), "must be at least 1, got %d", *tc.Weight)
				} else if tc.Weight != nil && *tc.Weight > maxWeight {
					v.errf(tp.key("weight"), "must be at most %d, got %d", maxWeight, *tc.Weight)
				}
			}
		}
	}

	for i, rc := range c.Routes {
		rc.validateFallbacks(v, path{"routes", i}, names)
	}
	c.Ejection.validate(v)

	keyNames := map[string]int{}
	for i, kc := range c.ClientKeys {
		p := path{"client_keys", i}
		if kc.Name == "" {
			v.errf(p.key("name"), "is required")
		} else if !isClusterName(kc.Name) {
			v.errf(p.key("name"), "%q must match [A-Za-z0-9_.-]+", kc.Name)
		} else if j, dup := keyNames[kc.Name]; dup {
			v.errf(p.key("name"), "duplicate client key name %q (also client_keys[%d])", kc.Name, j)
		} else {
			keyNames[kc.Name] = i
		}
		validateKeySource(v, p, kc.KeyEnv, kc.KeyFile)
		kc.Limits.validate(v, p.key("limits"))
		for j, m := range kc.Models {
			if err := checkPattern(m); err != nil {
				v.errf(p.key("models").index(j), "%v", err)
			}
		}
		kc.LoopGuard.validate(v, p.key("loop_guard"))
	}
	c.LoopGuard.validate(v, path{"loop_guard"})
	c.RateLimitService.validate(v)
	c.Tracing.validate(v)
	c.validatePrices(v)
	c.validateMCP(v)

	c.Hooks.validate(v)
}

// maxWeight keeps the sum of weights far from overflowing an int.
const maxWeight = 1_000_000

func (a AuthConfig) validate(v *validator, p path) {
	a.validateCredentials(v, p)
	if (a.Region != "" || a.Profile != "") && a.Type != AuthAWSSigV4 {
		v.errf(p, `region and profile are only used with type "aws_sigv4"`)
	}
	switch a.Type {
	case "", "none":
		if a.Header != "" {
			v.errf(p.key("header"), `is only used with type "header"`)
		}
		if a.KeyEnv != "" || a.KeyFile != "" || len(a.Keys) > 0 {
			v.errf(p, `key_env, key_file and keys need type "bearer" or "header"`)
		}
		if a.CredentialsFile != "" {
			v.errf(p.key("credentials_file"), `is only used with type "gcp_oauth"`)
		}
		return
	case "bearer":
		if a.Header != "" {
			v.errf(p.key("header"), `is only used with type "header"; bearer always sets authorization`)
		}
	case AuthAWSSigV4:
		v.errf(p.key("type"), `aws_sigv4 is for schema "bedrock" only`)
		return
	case "header":
		switch {
		case a.Header == "":
			v.errf(p.key("header"), `is required with type "header" (for example x-api-key)`)
		case !isToken(a.Header):
			v.errf(p.key("header"), "%q is not a valid header name", a.Header)
		case reservedHeaders[strings.ToLower(a.Header)]:
			v.errf(p.key("header"), "%q cannot carry a credential", a.Header)
		}
	case AuthEntra:
		a.validateEntra(v, p)
		return
	case AuthGCP:
		a.validateGCP(v, p)
		return
	default:
		v.errf(p.key("type"), `must be "none", "bearer", "header", "entra" or "gcp_oauth", got %q`, a.Type)
		return
	}
	if a.CredentialsFile != "" {
		v.errf(p.key("credentials_file"), `is only used with type "gcp_oauth"`)
	}
	if a.Entra != nil {
		v.errf(p.key("entra"), `is only used with type "entra"`)
	}
	if a.Keys == nil {
		validateKeySource(v, p, a.KeyEnv, a.KeyFile)
		return
	}
	if a.KeyEnv != "" || a.KeyFile != "" {
		v.errf(p, "set keys or one of key_env and key_file, not both")
	}
	if len(a.Keys) == 0 {
		v.errf(p.key("keys"), "needs at least one key")
	}
	seen := map[string]int{}
	for i, k := range a.Keys {
		kp := p.key("keys").index(i)
		validateKeySource(v, kp, k.KeyEnv, k.KeyFile)
		if k.Weight != nil && (*k.Weight < 1 || *k.Weight > maxWeight) {
			v.errf(kp.key("weight"), "must be from 1 to %d, got %d", maxWeight, *k.Weight)
		}
		if src := k.Source(); src != "" {
			if j, dup := seen[src]; dup {
				v.errf(kp, "duplicate key source %q (also keys[%d])", src, j)
			} else {
				seen[src] = i
			}
		}
	}
}

var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"content-type": true, "te": true, "upgrade": true,
}

func validateKeySource(v *validator, p path, env, file string) {
	switch {
	case env != "" && file != "":
		v.errf(p, "set only one of key_env and key_file")
	case env == "" && file == "":
		v.errf(p, "one of key_env and key_file is required")
	case env != "" && !isEnvName(env):
		v.errf(p.key("key_env"), errEnvName)
	case file != "" && hasControl(file):
		v.errf(p.key("key_file"), "must not contain control characters")
	}
}

func (h HooksSection) validate(v *validator) {
	p := path{"hooks"}
	if _, err := h.timeout(); err != nil {
		v.errf(p.key("timeout"), "%v", err)
	}
	switch h.FailurePolicy {
	case "", "fail_closed", "fail_open":
	default:
		v.errf(p.key("failure_policy"), `must be "fail_closed" or "fail_open", got %q`, h.FailurePolicy)
	}
	if len(h.Files) > 0 && h.Dir == "" {
		v.errf(p.key("files"), "needs hooks.dir")
	}
	seen := map[string]int{}
	for i, f := range h.Files {
		fp := p.key("files").index(i)
		switch {
		case f == "" || f == "." || f == ".." || strings.ContainsAny(f, `/\`) || hasControl(f):
			v.errf(fp, "%q must be a file name inside hooks.dir", f)
		case !strings.HasSuffix(f, ".lua"):
			v.errf(fp, "%q must end in .lua", f)
		default:
			if j, dup := seen[f]; dup {
				v.errf(fp, "duplicate hook file %q (also hooks.files[%d])", f, j)
			}
			seen[f] = i
		}
	}
}

// HooksConfig is the compiled hooks section.
type HooksConfig struct {
	Dir      string        // "" when hooks are not configured
	Files    []string      // explicit order; empty means the engine's default
	Timeout  time.Duration // per hook call
	FailOpen bool          // on hook failure continue (true) or reject (false)
}

// HooksConfig returns the hooks section compiled; c must be valid.
func (c *Config) HooksConfig() HooksConfig {
	timeout, _ := c.Hooks.timeout() // validated
	return HooksConfig{
		Dir:      c.Hooks.Dir,
		Files:    slices.Clone(c.Hooks.Files),
		Timeout:  timeout,
		FailOpen: c.Hooks.FailurePolicy == "fail_open",
	}
}

// BodyLimit is max_body_bytes, or DefaultMaxBodyBytes when it is not set.
func (c *Config) BodyLimit() int64 {
	if c.MaxBodyBytes != nil {
		return *c.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

func (h HooksSection) timeout() (time.Duration, error) {
	if h.Timeout == "" {
		return DefaultHookTimeout, nil
	}
	d, err := time.ParseDuration(h.Timeout)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 5ms", h.Timeout)
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be greater than 0, got %s", h.Timeout)
	}
	return d, nil
}

// ClusterName is the provider's Envoy cluster: cluster, or its name.
func (pc ProviderConfig) ClusterName() string {
	if pc.Cluster != "" {
		return pc.Cluster
	}
	return pc.Name
}

// RouteName is the route's name: name, or its model pattern.
func (rc RouteConfig) RouteName() string {
	if rc.Name != "" {
		return rc.Name
	}
	return rc.Model
}

// URL is the parsed, validated url of a provider.
type URL struct {
	Scheme string // "http" or "https"
	Host   string // host name or IP, without port or brackets
	Port   int    // explicit, or 443 for https and 80 for http
}

// HostHeader is the Host a request to host:port carries upstream: a name
// alone, as Envoy rewrites it to a DNS cluster's name; an IP address with
// its port unless it is the scheme's default (https: tls), in brackets if
// IPv6. Envoy's clusters give an IP endpoint this as its hostname, and
// Bedrock's signatures cover it.
func HostHeader(host string, port int, tls bool) string {
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return host
	case (tls && port != 443) || (!tls && port != 80):
		return net.JoinHostPort(host, strconv.Itoa(port))
	case strings.Contains(host, ":"): // IPv6, ::ffff:10.0.0.5 among them
		return "[" + host + "]"
	}
	return host
}

// ParsedURL returns the provider's url parsed; pc must be valid.
func (pc ProviderConfig) ParsedURL() URL {
	u, _ := parseProviderURL(pc.urlOrDefault())
	return u
}

func parseProviderURL(s string) (URL, error) {
	if s == "" {
		return URL{}, errors.New("is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return URL{}, fmt.Errorf("%q is not a url", s)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return URL{}, fmt.Errorf("%q must start with http:// or https://", s)
	case u.Opaque != "" || u.Host == "":
		return URL{}, fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return URL{}, fmt.Errorf("url must not hold user info; use auth")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return URL{}, fmt.Errorf("%q must not have a path, query or fragment; use path_prefix", s)
	}
	out := URL{Scheme: u.Scheme, Host: u.Hostname(), Port: 443}
	if u.Scheme == "http" {
		out.Port = 80
	}
	if out.Host == "" {
		return URL{}, fmt.Errorf("%q has no host", s)
	}
	if hasSpaceOrControl(out.Host) {
		return URL{}, fmt.Errorf("%q has an invalid host", s)
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return URL{}, fmt.Errorf("%q has an invalid port", s)
		}
		out.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return URL{}, fmt.Errorf("%q has an empty port", s)
	}
	return out, nil
}

func isName(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

func isClusterName(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

func isEnvName(s string) bool {
	for i, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// isToken reports whether s is an HTTP header field name (RFC 9110 token).
func isToken(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func hasControl(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func hasSpaceOrControl(s string) bool {
	return hasControl(s) || strings.ContainsRune(s, ' ')
}

// checkPattern rejects patterns that could never come from a request body.
func checkPattern(s string) error {
	switch {
	case s == "":
		return errors.New("pattern is empty")
	case hasSpaceOrControl(s):
		return errors.New("pattern must not contain spaces or control characters")
	case !utf8.ValidString(s):
		return errors.New("pattern is not valid UTF-8")
	}
	return nil
}
