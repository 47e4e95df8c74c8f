package routing

import (
	"fmt"
	"slices"
	"strings"

	"switchyard/bedrock"
	"switchyard/config"
)

// Key pools: a provider with several keys (auth.keys). A request's key is
// picked by weight, or for a session by rendezvous hashing (the session
// keeps its key, so the provider's prompt cache stays warm). The request's
// attempts are then the pool's keys in order of preference, like a
// fallback chain over one provider: a key that answers 429 moves the
// request on to the next key (poolRetry), and the processor rests that key
// for its Retry-After. A provider with one key takes none of this.

// poolKey is one loaded key of a pool.
type poolKey struct {
	credential *Header
	// tokens (Vertex) or bedrock (Bedrock) hold a cloud credential of
	// auth.credentials instead (cloudpool.go).
	tokens  config.TokenSource
	bedrock *bedrock.Endpoint
	weight  int
	id      uint64 // for rendezvous hashing, from source
	source  string // the key_env or key_file it came from; never the key
}

func credentialHeader(a config.AuthConfig, key string) *Header {
	if a.Type == "bearer" {
		return &Header{Name: "authorization", Value: "Bearer " + key}
	}
	return &Header{Name: strings.ToLower(a.Header), Value: key}
}

// compilePool loads a provider's key pool. Keys that cannot be loaded are
// left out (CredentialProblems names them); with none the provider is
// unavailable, as a provider whose one key is missing.
func (r *Router) compilePool(p *provider, pc config.ProviderConfig, env config.Env) {
	r.poolSized(p, len(pc.Auth.Keys))
	var problems []string
	for _, kc := range pc.Auth.Keys {
		key, problem := env.Key(kc.KeyEnv, kc.KeyFile)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		w := 1
		if kc.Weight != nil {
			w = *kc.Weight
		}
		p.keys = append(p.keys, poolKey{credential: credentialHeader(pc.Auth, key), weight: w,
			id: candidateID(0, kc.Source()), source: kc.Source()})
		p.keysTotal += w
	}
	p.finishPool(pc.Name, problems)
}

// poolSized notes how many keys p's pool names. Envoy's entries are sized
// by the keys configured, not the keys loaded, so that a key file that
// appears later reloads live.
func (r *Router) poolSized(p *provider, configured int) {
	p.poolConfigured = configured
	if configured > 1 {
		r.pooled = true
		if r.poolRetry == nil {
			r.poolRetry = newRetryPolicy(&config.Retry{Statuses: []int{429}})
		}
	}
}

// finishPool makes the provider's first loaded key its credential (the
// only one, with no pool left, when one loaded); with none the provider
// is unavailable. problems are the keys that could not be loaded.
func (p *provider) finishPool(name string, problems []string) {
	if len(p.keys) == 0 {
		p.unavailable = fmt.Sprintf("provider %q has no credentials: %s", name, strings.Join(problems, "; "))
		return
	}
	k := p.keys[0]
	p.credential, p.tokens, p.bedrock = k.credential, k.tokens, k.bedrock
	if len(p.keys) == 1 {
		p.keys, p.keysTotal = nil, 0
	}
	for _, problem := range problems {
		p.keyProblems = append(p.keyProblems, fmt.Sprintf("provider %q: a key is left out of its pool: %s", name, problem))
	}
}

// withPool turns a decision for a pooled provider into attempts over its
// keys; other decisions are returned as they are.
func (r *Router) withPool(d Decision, p *provider, req *Request) (Decision, error) {
	if len(p.keys) < 2 {
		return d, nil
	}
	attempts := p.keyAttempts(d, req, nil)
	if len(attempts) == 0 {
		return Decision{}, p.noToken()
	}
	first := attempts[0]
	first.Attempts, first.Retry = attempts, r.poolRetry
	return first, nil
}

// directPool decides a provider chosen directly (by a hook or the
// provider/model form), with its key pool.
func (r *Router) directPool(p *provider, model string, req *Request) (Decision, error) {
	d, err := direct(p, model, req, "")
	if err != nil {
		return d, err
	}
	return r.withPool(d, p, req)
}

// expandPools replaces each attempt on a pooled provider by one attempt per
// key, keeping the route's bound on attempts.
func (r *Router) expandPools(attempts []Decision, req *Request, limit int) ([]Decision, error) {
	out := make([]Decision, 0, len(attempts)+2)
	for _, a := range attempts {
		if p := r.byProvider[a.Provider]; p != nil && len(p.keys) > 1 {
			out = p.keyAttempts(a, req, out)
		} else {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, r.byProvider[attempts[0].Provider].noToken()
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// keyAttempts appends d once per key of p, in order of preference: for a
// session by rendezvous score, else the first by weight and the others in
// config order.
func (p *provider) keyAttempts(d Decision, req *Request, out []Decision) []Decision {
	order := make([]int, len(p.keys))
	for i := range order {
		order[i] = i
	}
	if req.Session != "" {
		h := SessionHash(req.Session)
		scores := make([]float64, len(p.keys))
		for i, k := range p.keys {
			scores[i] = rendezvousScore(h, k.id, k.weight)
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case scores[a] > scores[b]:
				return -1
			case scores[a] < scores[b]:
				return 1
			}
			return 0
		})
	} else {
		n := req.pick(p.keysTotal)
		for i, k := range p.keys {
			if n < k.weight {
				copy(order[1:i+1], order[:i])
				order[0] = i
				break
			}
			n -= k.weight
		}
	}
	for j, i := range order {
		a := d
		if !p.keys[i].use(&a) {
			continue // a Google credential with no token yet
		}
		a.KeyAffinity = j == 0 && req.Session != ""
		out = append(out, a)
	}
	return out
}

// use gives a the key's credential: its header, its current Google token
// (false while it has none), or its Bedrock signer.
func (k *poolKey) use(a *Decision) bool {
	switch {
	case k.tokens != nil:
		v, err := k.tokens.Bearer()
		if err != nil {
			return false
		}
		a.Credential = &Header{Name: "authorization", Value: v}
	case k.bedrock != nil:
		a.Bedrock = k.bedrock
	default:
		a.Credential = k.credential
	}
	a.Key = k.source
	return true
}

// key finds a pool's key by its source; nil when the pool no longer has it.
func (p *provider) key(source string) *poolKey {
	for i := range p.keys {
		if p.keys[i].source == source {
			return &p.keys[i]
		}
	}
	return nil
}

// poolSize is how many attempts the provider's pool may add to a chain.
func (p *provider) poolSize() int { return max(1, p.poolConfigured) }
