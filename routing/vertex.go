package routing

import (
	"fmt"

	"switchyard/config"
)

// compileVertex makes a vertex provider: it speaks its publisher's API
// (config's WireAPI) under the project's and region's path, with Google
// tokens when its auth is "gcp_oauth".
func (r *Router) compileVertex(p *provider, pc config.ProviderConfig, env config.Env) {
	p.info.Vertex = true
	if pc.Auth.Type != config.AuthGCP {
		return
	}
	if pc.Auth.Credentials != nil {
		r.compileCloudPool(p, pc, env)
		return
	}
	if env.GCPTokens == nil {
		p.unavailable = fmt.Sprintf("provider %q: Google tokens are not fetched by this command", pc.Name)
		return
	}
	src, err := env.GCPTokens(pc.Auth.CredentialsFile)
	if err != nil {
		p.unavailable = fmt.Sprintf("provider %q: setting up its Google credentials: %v", pc.Name, err)
		return
	}
	p.tokens = src
}
