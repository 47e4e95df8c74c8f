package config

import (
	"regexp"
	"strings"
)

// APIVertex is Google Vertex AI: Claude (publisher "anthropic") through
// rawPredict with the Messages body, Gemini (publisher "google") through
// generateContent with Gemini's.
const APIVertex API = "vertex"

// AuthGCP is the auth type of Google OAuth access tokens from Application
// Default Credentials (package gcpauth), refreshed in the background.
const AuthGCP = "gcp_oauth"

// The Vertex publishers a provider reaches.
const (
	VertexAnthropic = "anthropic"
	VertexGoogle    = "google"
)

// vertexURL is where a vertex provider without a url is reached: the
// region's endpoint, a multi-region's (us, eu), or the global one.
func (pc ProviderConfig) vertexURL() string {
	switch pc.Region {
	case "global":
		return "https://aiplatform.googleapis.com"
	case "us", "eu":
		return "https://aiplatform." + pc.Region + ".rep.googleapis.com"
	}
	return "https://" + pc.Region + "-aiplatform.googleapis.com"
}

// PathPrefixOrDefault is the provider's path_prefix, or its schema's:
// for vertex, the publisher's models under the project and region.
func (pc ProviderConfig) PathPrefixOrDefault() string {
	switch {
	case pc.PathPrefix != "":
		return pc.PathPrefix
	case pc.Schema == APIVertex:
		return "/v1/projects/" + pc.Project + "/locations/" + pc.Region + "/publishers/" + pc.Publisher
	}
	return pc.Schema.DefaultPathPrefix()
}

var (
	// A project ID (6 to 30 lowercase letters, digits and hyphens) or number.
	projectRE = regexp.MustCompile(`^([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$`)
	// A region such as us-east5 or europe-west1, a multi-region, or global.
	regionRE = regexp.MustCompile(`^([a-z]+(-[a-z]+)*[0-9]+|global|us|eu)$`)
)

// validateVertex checks the fields of schema "vertex", and that the others
// do not use them.
func (pc ProviderConfig) validateVertex(v *validator, p path) {
	if pc.Schema != APIVertex {
		for _, f := range [...]struct{ name, val string }{{"project", pc.Project}, {"region", pc.Region}, {"publisher", pc.Publisher}} {
			if f.val != "" {
				v.errf(p.key(f.name), `is only used with schema "vertex"`)
			}
		}
		if pc.Auth.Type == AuthGCP {
			v.errf(p.key("auth").key("type"), `%q is only used with schema "vertex"`, AuthGCP)
		}
		return
	}
	if !projectRE.MatchString(pc.Project) {
		v.errf(p.key("project"), "%q is not a Google Cloud project ID (6 to 30 lowercase letters, digits and hyphens) or number", pc.Project)
	}
	if !regionRE.MatchString(pc.Region) {
		v.errf(p.key("region"), "%q is not a Vertex AI region (such as us-east5, europe-west1 or global)", pc.Region)
	}
	if pc.Publisher != VertexAnthropic && pc.Publisher != VertexGoogle {
		v.errf(p.key("publisher"), `must be %q (Claude) or %q (Gemini), got %q`, VertexAnthropic, VertexGoogle, pc.Publisher)
	}
	if pc.Auth.Type != AuthGCP && pc.Auth.Type != "none" {
		v.errf(p.key("auth").key("type"), `must be %q (or "none") with schema "vertex"`, AuthGCP)
	}
}

func (a AuthConfig) validateGCP(v *validator, p path) {
	if a.Header != "" || a.KeyEnv != "" || a.KeyFile != "" || len(a.Keys) > 0 || a.Entra != nil {
		v.errf(p, `type %q takes no header, key_env, key_file, keys or entra; its tokens come from Application Default Credentials or credentials_file`, AuthGCP)
	}
	if f := a.CredentialsFile; f != "" && (strings.TrimSpace(f) != f || hasControl(f)) {
		v.errf(p.key("credentials_file"), "%q is not a plain file name", f)
	}
}
