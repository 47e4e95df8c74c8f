package envoy

import (
	"slices"
	"testing"

	"switchyard/config"
	"switchyard/routing"
)

// TestRetainingKeepsWhatOlderConfigsNeed: resources built retaining an
// older config keep its providers' clusters and its retry entries (with
// the attempt clusters they need) beside the newest config's; nothing is
// kept twice.
func TestRetainingKeepsWhatOlderConfigsNeed(t *testing.T) {
	older := withConfig(t, "testdata/fallbacks.yaml", Options{ExtProc: "unix:/tmp/x.sock"})
	newest := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock"})
	if len(newest.RetryRoutes) != 0 || len(older.RetryRoutes) == 0 {
		t.Fatalf("want fallbacks only in the older config: %d and %d retry routes", len(newest.RetryRoutes), len(older.RetryRoutes))
	}
	res := mustBuild(t, newest.Retaining(older, older))
	var names []string
	for _, c := range res.Clusters {
		names = append(names, c.GetName())
	}
	for _, want := range []*Resources{mustBuild(t, newest), mustBuild(t, older)} {
		for _, c := range want.Clusters {
			if !slices.Contains(names, c.GetName()) {
				t.Errorf("cluster %q is not retained", c.GetName())
			}
		}
	}
	slices.Sort(names)
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("a cluster is there twice: %v", names)
	}
	routes := res.Routes[0].GetVirtualHosts()[0].GetRoutes()
	if got, want := len(routes), len(mustBuild(t, older).Routes[0].GetVirtualHosts()[0].GetRoutes()); got != want {
		t.Errorf("%d route entries, want the older config's %d (its retry entries kept)", got, want)
	}
}

func mustBuild(t *testing.T, o Options) *Resources {
	t.Helper()
	r, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRetainingKeepsMCPServers: a reload that removes an MCP server keeps
// its cluster and the /mcp routes for the grace period, as a provider's:
// requests the older config sent to it may be on their way to Envoy's
// router.
func TestRetainingKeepsMCPServers(t *testing.T) {
	older := withConfig(t, "testdata/mcp.yaml", Options{ExtProc: "unix:/tmp/x.sock"})
	newest := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock"})
	if len(older.MCPServers) == 0 || len(newest.MCPServers) != 0 {
		t.Fatalf("want MCP servers only in the older config: %d and %d", len(older.MCPServers), len(newest.MCPServers))
	}
	res := mustBuild(t, newest.Retaining(older, older))
	var names []string
	for _, c := range res.Clusters {
		names = append(names, c.GetName())
	}
	for _, s := range older.MCPServers {
		if !slices.Contains(names, s.Cluster) {
			t.Errorf("MCP cluster %q is not retained: %v", s.Cluster, names)
		}
	}
	slices.Sort(names)
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("a cluster is there twice: %v", names)
	}
	mcpRoutes := 0
	for _, r := range res.Routes[0].GetVirtualHosts()[0].GetRoutes() {
		if r.GetMatch().GetPathSeparatedPrefix() == MCPPathPrefix {
			mcpRoutes++
		}
	}
	if mcpRoutes == 0 {
		t.Error("no /mcp route retained")
	}
}

// TestRetainingKeepsAMovedProvidersOldCluster: a provider whose endpoint a
// live reload moved has a new cluster at the new endpoint, and its old
// cluster stays at the old one for the grace period (the older config's
// requests carry its name and its key); a listener that the flags send to
// the provider's cluster follows it to the new endpoint.
func TestRetainingKeepsAMovedProvidersOldCluster(t *testing.T) {
	load := func(port string) *routing.Router {
		cfg, err := config.Decode([]byte("providers:\n  - {name: a, url: 'http://127.0.0.1:" + port + "', schema: openai}\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := routing.Compile(cfg, config.Env{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	old, moved := load("1001"), load("1002")
	moved.MoveClusters(old)
	options := func(r *routing.Router) Options {
		return Options{ExtProc: "unix:/tmp/x.sock", BaselinePort: 10001, BaselineCluster: "a", Providers: r.Providers(), MaxBodyBytes: r.MaxBodyBytes()}
	}
	res := mustBuild(t, options(moved).Retaining(options(old)))
	ports := map[string]uint32{}
	for _, c := range res.Clusters {
		ports[c.GetName()] = c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
	}
	newName := moved.Providers()[0].Cluster
	if ports["a"] != 1001 || newName == "a" || ports[newName] != 1002 {
		t.Errorf("clusters %v; want a at 1001 and %s at 1002", ports, newName)
	}
	baseline := 0
	for _, rc := range res.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			if vh.GetName() == "baseline" {
				baseline++
				if got := vh.GetRoutes()[0].GetRoute().GetCluster(); got != newName {
					t.Errorf("the baseline listener goes to %q, want %q", got, newName)
				}
			}
		}
	}
	if baseline == 0 {
		t.Error("no baseline virtual host")
	}
}
