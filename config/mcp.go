package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// MCP servers (Model Context Protocol, JSON-RPC over streamable HTTP): tool
// servers an agent reaches through the gateway at /mcp/<name>, with the
// client's key checked and the server's own credential injected.
//
//	mcp_servers:
//	  - name: github                       # [a-z0-9_-]+, unique
//	    url: https://mcp.example.com/mcp   # the server's MCP endpoint, path included
//	    auth: {type: bearer, key_env: GITHUB_MCP_TOKEN}   # none, bearer or header
//	client_keys:
//	  - name: team-a
//	    mcp_tools: ["github/search_*", "db/*"]   # optional allow-list of server/tool globs; with it, tools only

// MCPServerConfig is one MCP server.
type MCPServerConfig struct {
	Name string `yaml:"name"`
	// URL is the server's MCP endpoint as MCP clients write it: scheme,
	// host, optional port and the path.
	URL  string     `yaml:"url"`
	Auth AuthConfig `yaml:"auth"`
}

// MCPClusterPrefix starts every MCP server's Envoy cluster name. A "/"
// cannot be in a provider's cluster name, so the two never collide, and
// Envoy's route for MCP streams matches the routing header by this prefix.
const MCPClusterPrefix = "mcp/"

// ClusterName is the server's Envoy cluster.
func (mc MCPServerConfig) ClusterName() string { return MCPClusterPrefix + mc.Name }

// MCPURL is the parsed url of an MCP server.
type MCPURL struct {
	URL
	Path string // the endpoint's path, "/" at least, with its query string
}

// ParsedURL returns the server's url parsed; mc must be valid.
func (mc MCPServerConfig) ParsedURL() MCPURL {
	u, _ := parseMCPURL(mc.URL)
	return u
}

func parseMCPURL(s string) (MCPURL, error) {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return MCPURL{}, fmt.Errorf("%q is not a url", s)
	}
	if u.Fragment != "" {
		return MCPURL{}, fmt.Errorf("%q must not have a fragment", s)
	}
	origin, err := parseProviderURL((&url.URL{Scheme: u.Scheme, Host: u.Host, User: u.User}).String())
	if err != nil {
		return MCPURL{}, err
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if hasSpaceOrControl(path) {
		return MCPURL{}, fmt.Errorf("%q has an invalid path", s)
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return MCPURL{URL: origin, Path: path}, nil
}

// validateMCP checks mcp_servers and the keys' mcp_tools.
func (c *Config) validateMCP(v *validator) {
	names := map[string]int{}
	for i, mc := range c.MCPServers {
		p := path{"mcp_servers", i}
		switch {
		case mc.Name == "":
			v.errf(p.key("name"), "is required")
		case !isName(mc.Name):
			v.errf(p.key("name"), "%q must match [a-z0-9_-]+", mc.Name)
		case strings.Contains(mc.Name, "__") || strings.HasSuffix(mc.Name, "_"):
			// a_'s tool x and a's tool _x would both be a___x.
			v.errf(p.key("name"), `%q must not hold "__" nor end in "_": /mcp names tools <server>__<tool>`, mc.Name)
		default:
			if j, dup := names[mc.Name]; dup {
				v.errf(p.key("name"), "duplicate MCP server name %q (also mcp_servers[%d])", mc.Name, j)
			}
			names[mc.Name] = i
		}
		if _, err := parseMCPURL(mc.URL); err != nil {
			v.errf(p.key("url"), "%v", err)
		}
		switch mc.Auth.Type {
		case "", "none", "bearer", "header":
			if len(mc.Auth.Keys) > 0 {
				v.errf(p.key("auth").key("keys"), "key pools are for providers; an MCP server takes one key")
			}
			mc.Auth.validate(v, p.key("auth"))
		default:
			v.errf(p.key("auth").key("type"), `must be "none", "bearer" or "header" for an MCP server, got %q`, mc.Auth.Type)
		}
	}
	for i, kc := range c.ClientKeys {
		for j, t := range kc.MCPTools {
			if err := CheckMCPTool(t); err != nil {
				v.errf(path{"client_keys", i, "mcp_tools", j}, "%v", err)
			}
		}
	}
}

// CheckMCPTool checks one entry of a key's MCP tool allow-list.
func CheckMCPTool(t string) error {
	server, tool, ok := strings.Cut(t, "/")
	if !ok || server == "" || tool == "" {
		return fmt.Errorf(`%q must be "server/tool", each part a name or a glob`, t)
	}
	return checkPattern(t)
}

// mcpClustersChanged lists the MCP servers whose Envoy clusters are new or
// changed (ClustersChanged): a new server, or another url. A url whose
// origin stays the same changes only the path extproc sets, but one rule is
// simpler to state than two.
func mcpClustersChanged(running, next *Config) []string {
	var fields []string
	for i, nm := range next.MCPServers {
		j := slices.IndexFunc(running.MCPServers, func(rm MCPServerConfig) bool { return rm.Name == nm.Name })
		switch {
		case j < 0:
			fields = append(fields, fmt.Sprintf("mcp_servers[%d] (new MCP server %q)", i, nm.Name))
		case running.MCPServers[j].URL != nm.URL:
			fields = append(fields, fmt.Sprintf("mcp_servers[%d].url", i))
		}
	}
	return fields
}
