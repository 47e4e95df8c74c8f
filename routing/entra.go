package routing

import (
	"fmt"

	"switchyard/config"
)

// compileEntra gives an "entra" provider its token source from env (the
// process's one for the identity, so a reload keeps the token it has).
func (r *Router) compileEntra(p *provider, pc config.ProviderConfig, env config.Env) {
	if env.EntraTokens == nil {
		p.unavailable = fmt.Sprintf("provider %q: Entra tokens are not fetched by this command", pc.Name)
		return
	}
	secret := ""
	if e := pc.Auth.Entra; e.ClientSecret() {
		key, problem := env.Key(e.ClientSecretEnv, e.ClientSecretFile)
		if problem != "" {
			p.unavailable = fmt.Sprintf("provider %q has no Entra client secret: %s", pc.Name, problem)
			return
		}
		secret = key
	}
	src, err := env.EntraTokens(pc.Auth.Entra, secret)
	if err != nil {
		p.unavailable = fmt.Sprintf("provider %q: setting up its Entra credential: %v", pc.Name, err)
		return
	}
	p.tokens = src
}

// tokenCredential is the provider's current bearer token (Entra's or
// Google's) as a header, read from what the background refresh holds
// (never fetched here).
func (p *provider) tokenCredential() (*Header, error) {
	v, err := p.tokens.Bearer()
	if err != nil {
		return nil, Errorf(KindUnavailable, "provider %q: %v", p.info.Name, err)
	}
	return &Header{Name: "authorization", Value: v}, nil
}
