package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"switchyard/bedrock"

	"switchyard/config"
	"switchyard/pricing"
)

// Model is one entry of the OpenAI /v1/models list.
type Model struct {
	ID      string
	OwnedBy string
}

// Provider describes a configured upstream, enough to render its Envoy
// cluster. It holds no credential.
type Provider struct {
	Name string
	// Cluster is the Envoy cluster that serves the provider: ConfigCluster,
	// the config's name for it, unless the provider's endpoint moved in a
	// live reload (MoveClusters).
	Cluster       string
	ConfigCluster string
	Schema        config.API
	Scheme        string // "http" or "https"
	Host          string // host name or IP, without port or brackets
	Port          int    // explicit, or 443 for https and 80 for http
	TLS           bool   // Scheme == "https"
	PathPrefix    string
	// APIVersion is Azure OpenAI's api_version ("" for other schemas).
	APIVersion string
	// Vertex is true for a vertex provider; Schema is then the API of its
	// publisher's models (vertex.go).
	Vertex bool `json:",omitempty"`
}

// Router is a compiled configuration. It never changes after Compile and
// is safe for concurrent use. It holds credentials: its String, Format and
// LogValue methods print only a summary.
type Router struct {
	providers  []*provider // config order
	byProvider map[string]*provider
	routes     []*route // config order
	exact      map[string]*route
	globs      globIndex
	byName     map[string]*route
	keys       *KeySet           // the config's client keys
	loopGuard  *config.LoopGuard // the top-level loop_guard; nil: off
	// pooled is true when a provider has a key pool; poolRetry then moves
	// a request on to the pool's next key when a key answers 429.
	pooled    bool
	poolRetry *RetryPolicy
	config    *config.Config
	// credentialHeaders: see CredentialHeaders.
	credentialHeaders []string
	prices            *pricing.Table // see Prices
	// MCP servers by name and in config order (mcp.go).
	mcpServers map[string]*MCPServer
	mcpOrder   []*MCPServer
}

type provider struct {
	info Provider
	// keys is the provider's key pool when it has two keys or more
	// (pool.go); credential is then the first.
	keys      []poolKey
	keysTotal int // the sum of their weights
	// poolConfigured is the number of keys the pool names, loaded or not.
	poolConfigured int
	// keyProblems are the pool's keys that could not be loaded.
	keyProblems []string
	// credential is shared by every Decision; callers must not modify it.
	credential *Header
	// strip are the client key headers to remove for this provider (all but
	// the one its credential travels in), shared by every Decision.
	strip []string
	// unavailable, when set, is why the provider cannot be used.
	unavailable string
	// tokens, for auth types "entra" and "gcp_oauth", holds the provider's
	// bearer token, refreshed in the background (entra.go, vertex.go);
	// credential is then nil.
	tokens config.TokenSource
	// bedrock signs the requests of a Bedrock provider; nil for others.
	bedrock *bedrock.Endpoint
	// betas: Decision.Betas.
	betas []string
}

type target struct {
	provider *provider
	model    string // "" keeps the requested model
	weight   int
	id       uint64 // for session affinity (affinity.go)
}

// candidates are a route's targets that speak one API.
type candidates struct {
	targets []target
	total   int
}

type route struct {
	name      string
	pattern   pattern
	targets   []target
	byAPI     [3]candidates // indexed by apiIndex
	fallbacks []target      // tried in order after the targets
	retry     *RetryPolicy  // nil: one attempt
}

// apiIndex indexes a route's candidates by the client API a provider takes
// bodies of as they are; 2 holds those no client speaks (Gemini), always
// translated.
func apiIndex(a config.API) int {
	switch a.Wire() {
	case config.APIOpenAI:
		return 0
	case config.APIAnthropic:
		return 1
	case config.APIGemini:
		return 2
	}
	return -1
}

// Load reads, decodes and compiles the configuration file at path, taking
// secrets from the process environment and file system.
func Load(path string) (*Router, error) { return LoadEnv(path, config.Env{}) }

// LoadEnv is Load with secrets and token sources from env.
func LoadEnv(path string, env config.Env) (*Router, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	r, err := Compile(cfg, env)
	if err != nil {
		return nil, fmt.Errorf("compiling config %s: %w", path, err)
	}
	return r, nil
}

// Compile validates cfg and resolves its secrets into a Router. A provider
// whose key cannot be found still compiles and answers 503; a client key
// that cannot be found is an error, so the gateway never opens by accident.
func Compile(cfg *config.Config, env config.Env) (*Router, error) {
	if cfg == nil {
		return nil, errors.New("compiling nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{
		config:     cfg,
		byProvider: make(map[string]*provider, len(cfg.Providers)),
		exact:      map[string]*route{},
		byName:     make(map[string]*route, len(cfg.Routes)),
	}
	r.loopGuard = cfg.LoopGuard.Compile()
	r.compileProviders(env)
	r.compileCredentialHeaders()
	r.compileRoutes()
	r.prices = CompilePrices(cfg.Prices)
	r.compileMCP(env)
	if err := r.compileClientKeys(env); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Router) compileProviders(env config.Env) {
	for _, pc := range r.config.Providers {
		u := pc.ParsedURL()
		p := &provider{info: Provider{
			Name:          pc.Name,
			Cluster:       pc.ClusterName(),
			ConfigCluster: pc.ClusterName(),
			Schema:        pc.WireAPI(),
			Scheme:        u.Scheme,
			Host:          u.Host,
			Port:          u.Port,
			TLS:           u.Scheme == "https",
			PathPrefix:    pc.PathPrefix,
			APIVersion:    pc.APIVersion,
		}}
		p.info.PathPrefix = pc.PathPrefixOrDefault()
		p.betas = pc.AnthropicBetas
		if pc.Schema == config.APIBedrock && p.betas == nil {
			p.betas = bedrock.DefaultBetas
		}
		switch {
		case pc.Schema == config.APIVertex:
			r.compileVertex(p, pc, env)
		case pc.Auth.Type == config.AuthEntra:
			r.compileEntra(p, pc, env)
		case pc.Schema == config.APIBedrock && pc.Auth.Credentials != nil:
			r.compileCloudPool(p, pc, env)
		case pc.Schema == config.APIBedrock:
			p.bedrock = bedrock.NewEndpoint(pc.Auth.Region, u.Host, u.Port, u.Scheme == "https", bedrock.For(pc.Auth.Region, pc.Auth.Profile))
		case pc.Auth.Type != "bearer" && pc.Auth.Type != "header":
		case pc.Auth.Keys != nil:
			r.compilePool(p, pc, env)
		default:
			key, problem := env.Key(pc.Auth.KeyEnv, pc.Auth.KeyFile)
			if problem != "" {
				p.unavailable = fmt.Sprintf("provider %q has no credentials: %s", pc.Name, problem)
				break
			}
			p.credential = credentialHeader(pc.Auth, key)
		}
		for _, h := range ClientKeyHeaders {
			if (p.credential == nil || p.credential.Name != h) && (p.tokens == nil || h != "authorization") && (p.bedrock == nil || h != BedrockCredential) {
				p.strip = append(p.strip, h)
			}
		}
		r.providers = append(r.providers, p)
		r.byProvider[pc.Name] = p
	}
}

func (r *Router) compileRoutes() {
	for _, rc := range r.config.Routes {
		rt := &route{name: rc.RouteName(), pattern: newPattern(rc.Model)}
		if rc.Provider != "" {
			rt.targets = []target{{provider: r.byProvider[rc.Provider], model: rc.RewriteModel, weight: 1}}
		}
		for _, tc := range rc.Targets {
			w := 1
			if tc.Weight != nil {
				w = *tc.Weight
			}
			rt.targets = append(rt.targets, target{provider: r.byProvider[tc.Provider], model: tc.Model, weight: w})
		}
		for i := range rt.targets {
			t := &rt.targets[i]
			same := 0
			for _, u := range rt.targets[:i] {
				if u.provider == t.provider && u.model == t.model {
					same++
				}
			}
			t.id = candidateID(same, t.provider.info.Name, t.model)
		}
		for _, fc := range rc.Fallbacks {
			rt.fallbacks = append(rt.fallbacks, target{provider: r.byProvider[fc.Provider], model: fc.Model, weight: 1})
		}
		rt.retry = newRetryPolicy(rc.RetryPolicy())
		for _, t := range rt.targets {
			c := &rt.byAPI[apiIndex(t.provider.info.Schema)]
			c.targets = append(c.targets, t)
			c.total += t.weight
		}
		r.routes = append(r.routes, rt)
		r.byName[rt.name] = rt
		if rt.pattern.glob {
			r.globs.add(rt)
		} else if _, seen := r.exact[rc.Model]; !seen {
			// The first route wins; later ones are reachable by name.
			r.exact[rc.Model] = rt
		}
	}

}

// compileClientKeys resolves the client keys. A key that cannot be found is
// an error, so the gateway never opens by accident.
func (r *Router) compileClientKeys(env config.Env) error {
	var errs []error
	keys := make([]ClientKey, 0, len(r.config.ClientKeys))
	var at []int // each key's index in the config
	for i, kc := range r.config.ClientKeys {
		key, problem := env.Key(kc.KeyEnv, kc.KeyFile)
		if problem != "" {
			field := "key_file"
			if kc.KeyEnv != "" {
				field = "key_env"
			}
			errs = append(errs, r.config.Problem(fmt.Sprintf("client key %q: %s", kc.Name, problem), "client_keys", i, field))
			continue
		}
		ck := ClientKey{Name: kc.Name, Digest: DigestOf(key), Models: kc.Models, LoopGuard: kc.LoopGuard.Compile()}
		if kc.Limits != nil {
			ck.Limits = *kc.Limits
		}
		ck.MCPTools = kc.MCPTools
		keys = append(keys, ck)
		at = append(at, i)
	}
	b := newKeySetBuilder(keys)
	for j := range keys {
		if other, ok := b.add(&keys[j]); !ok {
			errs = append(errs, r.config.Problem(fmt.Sprintf("client key %q has the same value as client key %q", keys[j].Name, other), "client_keys", at[j]))
		}
	}
	r.keys = b.set
	return errors.Join(errs...)
}

// LoopGuard is the loop guard that applies to the principal; nil: off.
func (p Principal) LoopGuard() *config.LoopGuard { return p.loopGuard }

// Allows reports whether the principal may use model.
func (p Principal) Allows(model string) bool {
	if len(p.models) == 0 {
		return true
	}
	for _, m := range p.models {
		if m.match(model) {
			return true
		}
	}
	return false
}

// Decide routes one request. Errors are *Error. Resolution order: a route
// forced by name, a provider forced by name, an exact route model, the
// "provider/model" form, then glob routes in config order.
func (r *Router) Decide(_ context.Context, req *Request) (Decision, error) {
	if req.Model == "" {
		return Decision{}, Errorf(KindInvalidRequest, "the request names no model")
	}
	if !req.Principal.Allows(req.Model) {
		return Decision{}, Errorf(KindPermission, "model %q is not allowed for key %q", req.Model, req.Principal.Name)
	}
	api := apiIndex(req.API)
	if api < 0 || api > 1 {
		return Decision{}, Errorf(KindInvalidRequest, "unsupported API %q", req.API)
	}
	switch {
	case req.Route != "":
		rt := r.byName[req.Route]
		if rt == nil {
			return Decision{}, Errorf(KindInvalidRequest, "unknown route %q", req.Route)
		}
		return r.viaRoute(rt, req, api)
	case req.Provider != "":
		p := r.byProvider[req.Provider]
		if p == nil {
			return Decision{}, Errorf(KindInvalidRequest, "unknown provider %q", req.Provider)
		}
		return r.directPool(p, req.Model, req)
	}
	if rt := r.exact[req.Model]; rt != nil {
		return r.viaRoute(rt, req, api)
	}
	if name, model, ok := strings.Cut(req.Model, "/"); ok && model != "" {
		if p := r.byProvider[name]; p != nil {
			return r.directPool(p, model, req)
		}
	}
	if rt := r.globs.match(req.Model); rt != nil {
		return r.viaRoute(rt, req, api)
	}
	return Decision{}, Errorf(KindNotFound, "model %q is not served by this gateway", req.Model)
}

func (r *Router) viaRoute(rt *route, req *Request, api int) (Decision, error) {
	c := &rt.byAPI[api]
	for _, other := range [...]int{1 - api, 2} {
		if len(c.targets) == 0 && req.Translate {
			api = other
			c = &rt.byAPI[api]
		}
	}
	if len(c.targets) == 0 && rt.targets[0].provider.info.Schema == config.APIGemini {
		return Decision{}, errGeminiEndpoint(req.Model)
	}
	if len(c.targets) == 0 {
		return Decision{}, Errorf(KindInvalidRequest, "model %q is served with the %s API, not the %s API; call the %s endpoint",
			req.Model, rt.targets[0].provider.info.Schema, req.API, rt.targets[0].provider.info.Schema)
	}
	t := &c.targets[0]
	affinity := false
	if len(c.targets) > 1 && req.Session != "" {
		t, affinity = c.bySession(SessionHash(req.Session)), true
	} else if len(c.targets) > 1 {
		n := req.pick(c.total)
		if n < 0 || n >= c.total {
			return Decision{}, Errorf(KindAPI, "weighted pick returned %d, outside [0, %d)", n, c.total)
		}
		for i := range c.targets {
			if n < c.targets[i].weight {
				t = &c.targets[i]
				break
			}
			n -= c.targets[i].weight
		}
	}
	d, err := direct(t.provider, t.modelFor(req), req, rt.name)
	d.Affinity = affinity
	if err != nil {
		return d, err
	}
	if rt.retry == nil {
		return r.withPool(d, t.provider, req)
	}
	d.Retry = rt.retry
	d.Attempts = rt.chain(d, t, req, api)
	if r.pooled {
		if d.Attempts, err = r.expandPools(d.Attempts, req, rt.retry.Attempts); err != nil {
			return Decision{}, err
		}
		d.Credential, d.Key, d.KeyAffinity = d.Attempts[0].Credential, d.Attempts[0].Key, d.Attempts[0].KeyAffinity
	}
	return d, nil
}

// bySession picks the session's target: the highest rendezvous score.
func (c *candidates) bySession(session uint64) *target {
	best, bestScore := &c.targets[0], -1.0
	for i := range c.targets {
		if s := rendezvousScore(session, c.targets[i].id, c.targets[i].weight); s > bestScore {
			best, bestScore = &c.targets[i], s
		}
	}
	return best
}

func (t *target) modelFor(req *Request) string {
	if t.model == "" {
		return req.Model
	}
	return t.model
}

func direct(p *provider, model string, req *Request, routeName string) (Decision, error) {
	if p.info.Schema == config.APIGemini && req.API != config.APIGemini && !req.Translate {
		return Decision{}, errGeminiEndpoint(req.Model)
	}
	if p.info.Schema.Wire() != req.API.Wire() && !req.Translate {
		return Decision{}, Errorf(KindInvalidRequest, "provider %q serves the %s API, not the %s API; call the %s endpoint for model %q",
			p.info.Name, p.info.Schema, req.API, p.info.Schema, req.Model)
	}
	if p.unavailable != "" {
		return Decision{}, Errorf(KindUnavailable, "%s", p.unavailable)
	}
	cred := p.credential
	if p.tokens != nil && len(p.keys) < 2 { // a pool's tokens: keyAttempts
		var err error
		if cred, err = p.tokenCredential(); err != nil {
			return Decision{}, err
		}
	}
	return Decision{
		Provider:     p.info.Name,
		API:          p.info.Schema,
		Cluster:      p.info.Cluster,
		Model:        model,
		RewriteModel: model != req.Model,
		PathPrefix:   p.info.PathPrefix,
		APIVersion:   p.info.APIVersion,
		Vertex:       p.info.Vertex,
		Credential:   cred,
		Strip:        p.strip,
		Route:        routeName,
		Bedrock:      p.bedrock,
		Betas:        p.betas,
	}, nil
}

// Models lists the exact (non-glob) route models, sorted, for /v1/models.
func (r *Router) Models() []Model {
	var out []Model
	seen := map[string]bool{}
	for _, rt := range r.routes {
		if rt.pattern.glob || seen[rt.pattern.text] {
			continue
		}
		seen[rt.pattern.text] = true
		out = append(out, Model{ID: rt.pattern.text, OwnedBy: rt.targets[0].provider.info.Name})
	}
	slices.SortFunc(out, func(a, b Model) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Providers lists the configured providers in config order.
func (r *Router) Providers() []Provider {
	out := make([]Provider, len(r.providers))
	for i, p := range r.providers {
		out[i] = p.info
	}
	return out
}

// CredentialProblems lists, in config order, why providers have no
// credentials (their requests get 503). Worth logging at startup.
func (r *Router) CredentialProblems() []string {
	var out []string
	for _, p := range r.providers {
		if p.unavailable != "" {
			out = append(out, p.unavailable)
		}
		out = append(out, p.keyProblems...)
	}
	return out
}

// MaxBodyBytes is the largest request body the gateway accepts.
func (r *Router) MaxBodyBytes() int64 { return r.config.BodyLimit() }

// ClientKeysEnabled reports whether every request must carry a client key.
func (r *Router) ClientKeysEnabled() bool { return r.keys.Len() > 0 }

// Hooks returns the hooks configuration.
func (r *Router) Hooks() config.HooksConfig { return r.config.HooksConfig() }

// SendsResponseHeaders says whether Envoy is rendered to send extproc the
// answers' headers: when the config has hooks, which may gain on_response
// at any reload.
func (r *Router) SendsResponseHeaders() bool { return r.Hooks().Dir != "" }

// Config is the configuration the router was compiled from; it must not be
// modified.
func (r *Router) Config() *config.Config { return r.config }

// HasProvider reports whether a provider with this name is configured.
func (r *Router) HasProvider(name string) bool { return r.byProvider[name] != nil }

// HasRoute reports whether a route with this name is configured.
func (r *Router) HasRoute(name string) bool { return r.byName[name] != nil }

// String summarises the router without any credential.
func (r *Router) String() string {
	if r == nil {
		return "routing.Router(nil)"
	}
	return fmt.Sprintf("routing.Router{providers: %d, routes: %d, client_keys: %d}",
		len(r.providers), len(r.routes), r.keys.Len())
}

// Format prints String for every verb, so no verb can reach the
// credentials inside.
func (r *Router) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, r.String()) }

// LogValue keeps credentials out of slog output.
func (r *Router) LogValue() slog.Value { return slog.StringValue(r.String()) }

var (
	_ fmt.Formatter  = (*Router)(nil)
	_ slog.LogValuer = (*Router)(nil)
	_ fmt.Formatter  = Header{}
	_ slog.LogValuer = Header{}
	_ json.Marshaler = Header{}
	_ slog.LogValuer = Decision{}
)

// String prints the header name with its value redacted: a Header carries a
// credential. Read Value to get it.
func (h Header) String() string { return h.Name + ": [REDACTED]" }

// Format prints String for every verb.
func (h Header) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, h.String()) }

// LogValue keeps the value out of slog output.
func (h Header) LogValue() slog.Value { return slog.StringValue(h.String()) }

// MarshalJSON writes the name and a redacted value, so a Header inside a
// logged struct does not leak.
func (h Header) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"name": h.Name, "value": "[REDACTED]"})
}

// LogValue logs the decision with the credential's name only.
func (d Decision) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("provider", d.Provider),
		slog.String("cluster", d.Cluster),
		slog.String("model", d.Model),
		slog.Bool("rewrite_model", d.RewriteModel),
	}
	if d.PathPrefix != "" {
		attrs = append(attrs, slog.String("path_prefix", d.PathPrefix))
	}
	if d.Credential != nil {
		attrs = append(attrs, slog.String("credential_header", d.Credential.Name))
	}
	if d.Route != "" {
		attrs = append(attrs, slog.String("route", d.Route))
	}
	return slog.GroupValue(attrs...)
}
