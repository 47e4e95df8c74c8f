package routing

import (
	"strings"
	"testing"

	"switchyard/config"
)

// TestMoveClusters: after a reload that moves a provider's endpoint, its
// requests name a cluster of their own, while the requests the running
// config planned keep naming the old one; a provider that stayed keeps its
// cluster; one that moves back takes its name again once no config Envoy
// holds has that cluster elsewhere.
func TestMoveClusters(t *testing.T) {
	t.Parallel()
	cfg := func(aPort string) *Router {
		return compilePoolYAML(t, "providers:\n"+
			"  - {name: a, url: 'http://127.0.0.1:"+aPort+"', schema: openai}\n"+
			"  - {name: b, url: 'http://127.0.0.1:9', schema: openai, cluster: b-cluster}\n"+
			"routes:\n  - {model: m, provider: a}\n  - {model: n, provider: b}\n", config.Env{})
	}
	cluster := func(r *Router, model string) string {
		t.Helper()
		d, err := r.Decide(t.Context(), &Request{Model: model, API: config.APIOpenAI})
		if err != nil {
			t.Fatal(err)
		}
		return d.Cluster
	}
	first := cfg("1")
	first.MoveClusters()
	moved := cfg("2")
	moved.MoveClusters(first)
	if got := cluster(first, "m"); got != "a" {
		t.Errorf("the running config's cluster %q, want a", got)
	}
	movedA := cluster(moved, "m")
	if !strings.HasPrefix(movedA, "a~") {
		t.Errorf("the moved provider's cluster %q, want a~ and its endpoint's", movedA)
	}
	if got := cluster(moved, "n"); got != "b-cluster" {
		t.Errorf("the provider that stayed: cluster %q, want b-cluster", got)
	}
	for _, p := range moved.Providers() {
		if p.Name == "a" && (p.Cluster != movedA || p.ConfigCluster != "a" || p.Port != 2) {
			t.Errorf("moved provider %+v", p)
		}
	}
	same := cfg("2")
	same.MoveClusters(moved)
	if got := cluster(same, "m"); got != movedA {
		t.Errorf("a reload that keeps the moved endpoint: cluster %q, want %q still", got, movedA)
	}
	back := cfg("1")
	back.MoveClusters(same, moved, first)
	if got := cluster(back, "m"); got != "a" {
		t.Errorf("moved back while the first config is held: cluster %q, want a, at that endpoint still", got)
	}
	back = cfg("1")
	back.MoveClusters(same)
	if got := cluster(back, "m"); got != "a" {
		t.Errorf("moved back once no held config has a: cluster %q, want a", got)
	}

	// Removed, then added again at another endpoint while the config that
	// had it is held: not that config's cluster.
	without := compilePoolYAML(t, "providers:\n  - {name: b, url: 'http://127.0.0.1:9', schema: openai, cluster: b-cluster}\n", config.Env{})
	without.MoveClusters(first)
	again := cfg("3")
	again.MoveClusters(without, first)
	if got := cluster(again, "m"); got == "a" || !strings.HasPrefix(got, "a~") {
		t.Errorf("added again elsewhere within the grace: cluster %q, want a~ and its endpoint's", got)
	}
}

// TestMoveMCPClusters: an MCP server whose url moves gets a cluster of its
// own too (its requests carry its key); one that stayed keeps its cluster.
func TestMoveMCPClusters(t *testing.T) {
	t.Parallel()
	cfg := func(port string) *Router {
		return compilePoolYAML(t, "providers:\n  - {name: a, url: 'http://127.0.0.1:1', schema: openai}\n"+
			"mcp_servers:\n  - {name: gh, url: 'http://127.0.0.1:"+port+"/mcp'}\n  - {name: docs, url: 'http://127.0.0.1:7/mcp'}\n", config.Env{})
	}
	first, moved := cfg("5"), cfg("6")
	moved.MoveClusters(first)
	if got := moved.MCPServer("gh").Cluster; !strings.HasPrefix(got, "mcp/gh~") {
		t.Errorf("moved MCP server's cluster %q, want mcp/gh~ and its endpoint's", got)
	}
	if got := moved.MCPServer("docs").Cluster; got != "mcp/docs" {
		t.Errorf("MCP server that stayed: cluster %q, want mcp/docs", got)
	}
	if got := first.MCPServer("gh").Cluster; got != "mcp/gh" {
		t.Errorf("the running config's MCP cluster %q, want mcp/gh", got)
	}
}
