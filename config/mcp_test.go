package config

import (
	"strings"
	"testing"
)

func TestMCPServersConfig(t *testing.T) {
	t.Parallel()
	const base = "providers: [{name: p, url: \"http://127.0.0.1:1\", schema: openai}]\n"
	tests := []struct {
		name, yaml string
		want       string // a substring of the error; "" for valid
	}{
		{"valid", `mcp_servers:
  - {name: github, url: "https://mcp.example.com/mcp?x=1", auth: {type: bearer, key_env: GH}}
  - {name: db, url: "http://127.0.0.1:8080/"}
client_keys: [{name: a, key_env: A, mcp_tools: ["github/search_*", "db/*"]}]`, ""},
		{"name", `mcp_servers: [{name: Git Hub, url: "http://h/mcp"}]`, `line 2: mcp_servers[0].name: "Git Hub" must match [a-z0-9_-]+`},
		{"separator", `mcp_servers: [{name: a__b, url: "http://h/mcp"}]`, `"a__b" must not hold "__"`},
		{"separator's start", `mcp_servers: [{name: a_, url: "http://h/mcp"}]`, `"a_" must not hold "__" nor end in "_"`},
		{"duplicate", `mcp_servers: [{name: a, url: "http://h/mcp"}, {name: a, url: "http://h/mcp"}]`, `duplicate MCP server name "a"`},
		{"url", `mcp_servers: [{name: a, url: "ftp://h/mcp"}]`, `must start with http:// or https://`},
		{"user info", `mcp_servers: [{name: a, url: "http://u:p@h/mcp"}]`, `must not hold user info`},
		{"auth type", `mcp_servers: [{name: a, url: "http://h/mcp", auth: {type: entra}}]`, `"none", "bearer" or "header" for an MCP server`},
		{"auth key", `mcp_servers: [{name: a, url: "http://h/mcp", auth: {type: bearer}}]`, `one of key_env and key_file is required`},
		{"pool", `mcp_servers: [{name: a, url: "http://h/mcp", auth: {type: bearer, keys: [{key_env: A}]}}]`, `key pools are for providers`},
		{"tool pattern", `client_keys: [{name: a, key_env: A, mcp_tools: ["search_*"]}]`, `client_keys[0].mcp_tools[0]: "search_*" must be "server/tool"`},
		{"unknown field", `mcp_servers: [{name: a, url: "http://h/mcp", path: /x}]`, `path`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode([]byte(base + tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestMCPServerURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]MCPURL{
		"https://mcp.example.com/mcp":    {URL: URL{Scheme: "https", Host: "mcp.example.com", Port: 443}, Path: "/mcp"},
		"http://127.0.0.1:8080":          {URL: URL{Scheme: "http", Host: "127.0.0.1", Port: 8080}, Path: "/"},
		"http://h:81/a/b?tenant=x&y=%20": {URL: URL{Scheme: "http", Host: "h", Port: 81}, Path: "/a/b?tenant=x&y=%20"},
	} {
		if got := (MCPServerConfig{URL: in}).ParsedURL(); got != want {
			t.Errorf("%s: %+v, want %+v", in, got, want)
		}
	}
}

func TestMCPServersNeedClusters(t *testing.T) {
	t.Parallel()
	const base = "providers: [{name: p, url: \"http://127.0.0.1:1\", schema: openai}]\n"
	running, err := Decode([]byte(base + `mcp_servers: [{name: a, url: "http://h/mcp"}, {name: b, url: "http://h/mcp"}]`))
	if err != nil {
		t.Fatal(err)
	}
	next, err := Decode([]byte(base + `mcp_servers: [{name: a, url: "http://h:81/mcp"}, {name: c, url: "http://h/mcp"}]`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ClustersChanged(running, next), "; ")
	if want := `mcp_servers[0].url; mcp_servers[1] (new MCP server "c")`; got != want {
		t.Errorf("ClustersChanged = %q, want %q", got, want)
	}
	if got := ClustersChanged(next, next); len(got) != 0 {
		t.Errorf("an unchanged config changed clusters: %v", got)
	}
}
