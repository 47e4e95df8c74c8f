package routing

import (
	"strings"
	"testing"

	"switchyard/config"
)

func mcpRouter(t *testing.T) *Router {
	t.Helper()
	cfg, err := config.Decode([]byte(`
providers: [{name: p, url: "http://127.0.0.1:1", schema: openai}]
mcp_servers:
  - {name: github, url: "https://mcp.example.com/v1/mcp", auth: {type: header, header: X-Api-Key, key_env: GH}}
  - {name: db, url: "http://127.0.0.1:9000/mcp", auth: {type: bearer, key_env: MISSING}}
client_keys:
  - {name: all, key_env: K_ALL}
  - {name: some, key_env: K_SOME, mcp_tools: ["github/search_*", "github/get_?"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	env := config.Env{Getenv: func(name string) (string, bool) {
		v, ok := map[string]string{"GH": "gh-secret", "K_ALL": "key-all", "K_SOME": "key-some"}[name]
		return v, ok
	}}
	r, err := Compile(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMCPServers(t *testing.T) {
	t.Parallel()
	r := mcpRouter(t)
	gh := r.MCPServer("github")
	if gh == nil || gh.Cluster != "mcp/github" || gh.Path != "/v1/mcp" || !gh.TLS || gh.Port != 443 ||
		gh.Credential == nil || *gh.Credential != (Header{Name: "x-api-key", Value: "gh-secret"}) {
		t.Fatalf("github = %+v", gh)
	}
	if strings.Join(gh.Strip, ",") != "authorization,api-key" {
		t.Errorf("github strips %v, want every client key header but its own", gh.Strip)
	}
	if db := r.MCPServer("db"); db == nil || db.Credential != nil || !strings.Contains(db.Unavailable, "MISSING") {
		t.Errorf("db without its key = %+v, want unavailable", db)
	}
	for _, s := range r.MCPServers() {
		if s.Credential != nil {
			t.Errorf("MCPServers (for Envoy) hands out %s's credential", s.Name)
		}
	}
	if r.MCPServer("nope") != nil {
		t.Error("unknown server found")
	}
}

func TestMCPToolAllowList(t *testing.T) {
	t.Parallel()
	r := mcpRouter(t)
	all, _ := r.Authenticate("key-all")
	some, _ := r.Authenticate("key-some")
	tests := []struct {
		p            Principal
		server, tool string
		want         bool
	}{
		{all, "db", "drop_table", true},
		{some, "github", "search_code", true},
		{some, "github", "get_x", true},
		{some, "github", "get_xy", false},
		{some, "github", "delete_repo", false},
		{some, "db", "search_x", false},
	}
	for _, tc := range tests {
		if got := tc.p.AllowsMCPTool(tc.server, tc.tool); got != tc.want {
			t.Errorf("%s may call %s/%s: %v, want %v", tc.p.Name, tc.server, tc.tool, got, tc.want)
		}
	}
	if !some.AllowsMCPServer("github") || some.AllowsMCPServer("db") || !all.AllowsMCPServer("db") {
		t.Error("server reach does not follow the allow-list")
	}
}

// TestMCPMethodAllowList: a key with mcp_tools reaches only tools and the
// lifecycle of a server; a key without one reaches every method.
func TestMCPMethodAllowList(t *testing.T) {
	t.Parallel()
	r := mcpRouter(t)
	all, _ := r.Authenticate("key-all")
	some, _ := r.Authenticate("key-some")
	for method, want := range map[string]bool{
		"initialize": true, "ping": true, "notifications/initialized": true, "notifications/cancelled": true,
		"server/discover": true, "subscriptions/listen": true, "tools/list": true, "tools/call": true, "": true,
		"resources/read": false, "resources/list": false, "resources/templates/list": false, "resources/subscribe": false,
		"prompts/get": false, "prompts/list": false, "completion/complete": false, "logging/setLevel": true,
		"tasks/get": true, "tasks/result": true, "tasks/list": false, "tasks/cancel": true, "tasks/other": false,
		"notifications": false, "x/notifications/y": false,
	} {
		if got := some.AllowsMCPMethod(method); got != want {
			t.Errorf("a key with mcp_tools may send %q: %v, want %v", method, got, want)
		}
		if !all.AllowsMCPMethod(method) {
			t.Errorf("a key without mcp_tools may not send %q", method)
		}
	}
}
