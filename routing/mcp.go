package routing

import (
	"fmt"
	"strings"

	"switchyard/config"
)

// MCPSessionHeader carries an MCP session's id, set by the server in its
// answer to initialize and sent back by the client on every request.
const MCPSessionHeader = "mcp-session-id"

// OriginalPathHeader is the client's path of a request whose path extproc
// rewrote, for Envoy's spans (their http.url): an MCP server's path may
// carry its token in the query, which must not reach a trace.
const OriginalPathHeader = "x-envoy-original-path"

// MCPClientAPI is the client API extproc puts in ClientNamespace for an
// MCP request, so that the errors Envoy answers itself are JSON-RPC's.
const MCPClientAPI = "mcp"

// MCPServer is a compiled MCP server: where its requests go and the
// credential they carry. Credential is shared: callers must not modify it.
type MCPServer struct {
	Name    string
	Cluster string
	Scheme  string
	Host    string
	Port    int
	TLS     bool
	// Path is the server's MCP endpoint path, with its query string.
	Path string
	// Credential is the server's own key, nil for auth none.
	Credential *Header
	// Strip are the client key headers to remove: every one but the one
	// Credential travels in (which it replaces).
	Strip []string
	// Unavailable, when set, is why the server cannot be used (its key
	// could not be loaded); its requests are refused with this.
	Unavailable string
}

// mcpToolPattern is one entry of a key's mcp_tools: a server glob and a
// tool glob.
type mcpToolPattern struct {
	server, tool pattern
}

func (r *Router) compileMCP(env config.Env) {
	if len(r.config.MCPServers) == 0 {
		return
	}
	r.mcpServers = make(map[string]*MCPServer, len(r.config.MCPServers))
	for _, mc := range r.config.MCPServers {
		u := mc.ParsedURL()
		s := &MCPServer{Name: mc.Name, Cluster: mc.ClusterName(), Scheme: u.Scheme, Host: u.Host, Port: u.Port,
			TLS: u.Scheme == "https", Path: u.Path}
		if mc.Auth.Type == "bearer" || mc.Auth.Type == "header" {
			key, problem := env.Key(mc.Auth.KeyEnv, mc.Auth.KeyFile)
			if problem != "" {
				s.Unavailable = fmt.Sprintf("MCP server %q has no credentials: %s", mc.Name, problem)
			} else {
				s.Credential = credentialHeader(mc.Auth, key)
			}
		}
		for _, h := range ClientKeyHeaders {
			if s.Credential == nil || s.Credential.Name != h {
				s.Strip = append(s.Strip, h)
			}
		}
		r.mcpServers[mc.Name] = s
		r.mcpOrder = append(r.mcpOrder, s)
	}
}

// MCPServer returns the MCP server of this name, or nil.
func (r *Router) MCPServer(name string) *MCPServer { return r.mcpServers[name] }

// MCPServers lists the MCP servers in config order, for Envoy's clusters.
func (r *Router) MCPServers() []MCPServer {
	out := make([]MCPServer, len(r.mcpOrder))
	for i, s := range r.mcpOrder {
		out[i] = *s
		out[i].Credential = nil // Envoy's config never needs it
	}
	return out
}

func compileMCPTools(list []string) []mcpToolPattern {
	var out []mcpToolPattern
	for _, t := range list {
		server, tool, _ := strings.Cut(t, "/") // validated
		out = append(out, mcpToolPattern{server: newPattern(server), tool: newPattern(tool)})
	}
	return out
}

// AllowsMCPServer reports whether the principal may reach any tool of the
// MCP server: an allow-list that names none of its tools keeps the whole
// server out of reach.
func (p Principal) AllowsMCPServer(server string) bool {
	if len(p.mcpTools) == 0 {
		return true
	}
	for _, t := range p.mcpTools {
		if t.server.match(server) {
			return true
		}
	}
	return false
}

// AllowsMCPTool reports whether the principal may call the tool of the MCP
// server.
func (p Principal) AllowsMCPTool(server, tool string) bool {
	if len(p.mcpTools) == 0 {
		return true
	}
	for _, t := range p.mcpTools {
		if t.server.match(server) && t.tool.match(tool) {
			return true
		}
	}
	return false
}

// AllowsMCPMethod reports whether the principal may send a message of the
// JSON-RPC method to an MCP server it may use; a tools/call's tool is
// AllowsMCPTool's to decide. A key with an allow-list reaches tools only:
// the lifecycle (initialize, ping, notifications, logging/setLevel, and
// the 2026-07-28 protocol's server/discover and subscriptions/listen, its
// stream of server notifications), tools/list, tools/call, the task a
// tools/call may start (tasks/get, tasks/result, tasks/cancel: its id is
// the server's, and tasks/list, which would show every key's, is not
// here), and a reply to a server's own request
// (method ""). Resources, prompts, completions and every other method are
// refused, or a key allowed github/search_* could still read all of
// github's resources.
func (p Principal) AllowsMCPMethod(method string) bool {
	if len(p.mcpTools) == 0 {
		return true
	}
	switch method {
	case "", "initialize", "ping", "logging/setLevel", "server/discover", "subscriptions/listen", "tools/list", "tools/call",
		"tasks/get", "tasks/result", "tasks/cancel":
		return true
	}
	return strings.HasPrefix(method, "notifications/")
}

// MCPServerList lists the MCP servers in config order, with their
// credentials, for the aggregated /mcp endpoint. Shared: callers must not
// modify them.
func (r *Router) MCPServerList() []*MCPServer { return r.mcpOrder }
