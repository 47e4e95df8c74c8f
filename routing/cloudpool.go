package routing

import (
	"fmt"

	"switchyard/bedrock"
	"switchyard/config"
)

// compileCloudPool loads the auth.credentials of a Bedrock or Vertex
// provider into its key pool (pool.go): each key signs its attempts with
// its own AWS credentials, or authorises them with its own Google tokens,
// and takes the pool's weights, order and resting after a 429 as an API
// key does.
func (r *Router) compileCloudPool(p *provider, pc config.ProviderConfig, env config.Env) {
	r.poolSized(p, len(pc.Auth.Credentials))
	u := pc.ParsedURL()
	var problems []string
	for _, cc := range pc.Auth.Credentials {
		k := poolKey{weight: 1, id: candidateID(0, cc.Source()), source: cc.Source()}
		if cc.Weight != nil {
			k.weight = *cc.Weight
		}
		var problem string
		if pc.Schema == config.APIBedrock {
			var creds *bedrock.Credentials
			creds, problem = awsCredentials(pc.Auth.Region, cc, env)
			k.bedrock = bedrock.NewEndpoint(pc.Auth.Region, u.Host, u.Port, u.Scheme == "https", creds)
		} else {
			k.tokens, problem = googleTokens(cc, env)
		}
		if problem != "" {
			problems = append(problems, cc.Source()+": "+problem)
			continue
		}
		p.keys = append(p.keys, k)
		p.keysTotal += k.weight
	}
	p.finishPool(pc.Name, problems)
}

// awsCredentials are a Bedrock credential's: its profile's or its role's,
// kept fresh (bedrock.ForRole), or its static key pair.
func awsCredentials(region string, cc config.CloudCredentialConfig, env config.Env) (*bedrock.Credentials, string) {
	if cc.Profile != "" || cc.RoleARN != "" {
		return bedrock.ForRole(region, cc.Profile, cc.RoleARN), ""
	}
	id, problem := env.Key(cc.AccessKeyIDEnv, cc.AccessKeyIDFile)
	if problem != "" {
		return nil, "access key id: " + problem
	}
	secret, problem := env.Key(cc.SecretAccessKeyEnv, cc.SecretAccessKeyFile)
	if problem != "" {
		return nil, "secret access key: " + problem
	}
	token := ""
	if cc.SessionTokenEnv != "" || cc.SessionTokenFile != "" {
		if token, problem = env.Key(cc.SessionTokenEnv, cc.SessionTokenFile); problem != "" {
			return nil, "session token: " + problem
		}
	}
	return bedrock.StaticKeys(id, secret, token), ""
}

// googleTokens are a Vertex credential's token source: its key file's, or
// Application Default Credentials'.
func googleTokens(cc config.CloudCredentialConfig, env config.Env) (config.TokenSource, string) {
	if env.GCPTokens == nil {
		return nil, "Google tokens are not fetched by this command"
	}
	src, err := env.GCPTokens(cc.CredentialsFile)
	if err != nil {
		return nil, fmt.Sprintf("setting up its Google credentials: %v", err)
	}
	return src, ""
}

// noToken is the error of a request to a Vertex pool none of whose
// credentials holds a token yet.
func (p *provider) noToken() error {
	return Errorf(KindUnavailable, "provider %q: no credential of its pool holds a Google token yet (the gateway's log says why)", p.info.Name)
}
