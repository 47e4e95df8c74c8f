package config

import "strings"

// schemaNames lists the provider schemas, for errors.
const schemaNames = `"openai", "anthropic", "azure-openai" or "gemini"`

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
	if pc.URL == "" && pc.Schema == APIGemini {
		return GeminiDefaultURL
	}
	return pc.URL
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
}
