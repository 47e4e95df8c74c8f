package config

import "strings"

// schemaNames lists the provider schemas, for errors.
const schemaNames = `"openai", "anthropic", "azure-openai", "gemini", "bedrock" or "vertex"`

// GeminiDefaultURL is where a gemini provider without a url is reached.
const GeminiDefaultURL = "https://generativelanguage.googleapis.com"

// AzureV1 is the api_version that selects Azure OpenAI's v1 paths
// (/openai/v1/chat/completions, the model in the body) instead of the
// deployments paths (/openai/deployments/{model}/chat/completions?api-version=).
const AzureV1 = "v1"

// Wire is the client API whose bodies a provider of schema a takes as they
// are: Azure OpenAI takes OpenAI's; Gemini is its own, every client request
// to it is translated.
func (a API) Wire() API {
	if a == APIAzureOpenAI {
		return APIOpenAI
	}
	return a
}

// DefaultPathPrefix is the path prefix of a provider without path_prefix:
// Azure OpenAI's paths start with /openai, the Gemini API's with /v1beta.
func (a API) DefaultPathPrefix() string {
	switch a {
	case APIAzureOpenAI:
		return "/openai"
	case APIGemini:
		return "/v1beta"
	}
	return ""
}

// urlOrDefault is the provider's url, or its schema's default.
func (pc ProviderConfig) urlOrDefault() string {
	switch {
	case pc.URL != "":
		return pc.URL
	case pc.Schema == APIGemini:
		return GeminiDefaultURL
	case pc.Schema == APIBedrock:
		return pc.bedrockURL()
	case pc.Schema == APIVertex:
		return pc.vertexURL()
	}
	return ""
}

// validateCloud checks the fields of the cloud schemas.
func (pc ProviderConfig) validateCloud(v *validator, p path) {
	switch {
	case pc.Schema == APIAzureOpenAI && pc.APIVersion == "":
		v.errf(p.key("api_version"), `is required with schema "azure-openai": a version such as 2024-10-21 (deployments paths) or "v1"`)
	case pc.Schema != APIAzureOpenAI && pc.APIVersion != "":
		v.errf(p.key("api_version"), `is only used with schema "azure-openai"`)
	case strings.ContainsAny(pc.APIVersion, "?#&=/ \t\r\n"):
		v.errf(p.key("api_version"), "%q is not a valid api-version", pc.APIVersion)
	}
	if pc.Auth.Type == AuthEntra && pc.Schema != APIAzureOpenAI {
		v.errf(p.key("auth").key("type"), `"entra" is only used with schema "azure-openai"`)
	}
}

// AuthEntra is the auth type of Microsoft Entra bearer tokens (Azure
// OpenAI), fetched and refreshed in the background (package azureauth).
const AuthEntra = "entra"

// EntraConfig says which Entra identity a provider's tokens are for: a
// service principal's client secret when tenant_id, client_id and a secret
// source are set; otherwise Azure's default credential chain (environment,
// workload identity, managed identity, the Azure CLI).
type EntraConfig struct {
	TenantID         string `yaml:"tenant_id"`
	ClientID         string `yaml:"client_id"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// AuthorityHost is the Entra endpoint, https://login.microsoftonline.com/
	// when empty (another for sovereign clouds, or a test's fake).
	AuthorityHost string `yaml:"authority_host"`
}

// ClientSecret reports whether the config names a service principal.
func (e *EntraConfig) ClientSecret() bool {
	return e != nil && (e.TenantID != "" || e.ClientID != "" || e.ClientSecretEnv != "" || e.ClientSecretFile != "")
}

func (a AuthConfig) validateEntra(v *validator, p path) {
	if a.Header != "" || a.KeyEnv != "" || a.KeyFile != "" || len(a.Keys) > 0 {
		v.errf(p, `type "entra" takes no header, key_env, key_file or keys; its tokens come from entra`)
	}
	e := a.Entra
	if e == nil {
		return
	}
	ep := p.key("entra")
	if e.ClientSecret() {
		if e.TenantID == "" || e.ClientID == "" {
			v.errf(ep, "a client secret credential needs tenant_id and client_id")
		}
		switch {
		case (e.ClientSecretEnv == "") == (e.ClientSecretFile == ""):
			v.errf(ep, "set one of client_secret_env and client_secret_file")
		case e.ClientSecretEnv != "" && !isEnvName(e.ClientSecretEnv):
			v.errf(ep.key("client_secret_env"), errEnvName)
		}
	}
	if h := e.AuthorityHost; h != "" && (!strings.HasPrefix(h, "https://") || strings.ContainsAny(h, "?# ")) {
		v.errf(ep.key("authority_host"), "%q must be an https URL", h)
	}
}

// TokenSource is a bearer token kept fresh in the background (Entra's:
// package azureauth). Bearer never waits: it returns the header value held
// now, or why there is none.
type TokenSource interface {
	Bearer() (string, error)
}

// WireAPI is the API a provider is called with, as routing sees it: its
// schema's, but Messages for Bedrock (its Anthropic models take Messages
// bodies; attempts make them InvokeModel or Converse calls) and the
// publisher's for Vertex (Claude's Messages, or Gemini's API).
func (pc ProviderConfig) WireAPI() API {
	switch {
	case pc.Schema == APIBedrock:
		return APIAnthropic
	case pc.Schema == APIVertex && pc.Publisher == VertexAnthropic:
		return APIAnthropic
	case pc.Schema == APIVertex:
		return APIGemini
	}
	return pc.Schema
}
