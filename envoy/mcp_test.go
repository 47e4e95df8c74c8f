package envoy

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// TestMCPRoutes: with MCP servers the gateway's routes start with the
// decided MCP route (no idle timeout) and hold the /mcp entry route before
// the by-size and no-decision routes; without them neither exists.
func TestMCPRoutes(t *testing.T) {
	t.Parallel()
	names := func(o Options) (out []string, mcpRoute *routev3.Route) {
		r, err := Build(withConfig(t, "testdata/mcp.yaml", o))
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range r.Routes[0].VirtualHosts[0].Routes {
			switch {
			case rt.GetMatch().GetPathSeparatedPrefix() == MCPPathPrefix:
				out = append(out, "mcp entry")
			case len(rt.GetMatch().GetHeaders()) > 0 && rt.GetMatch().GetHeaders()[0].GetStringMatch().GetPrefix() == "mcp/":
				out = append(out, "mcp")
				mcpRoute = rt
			default:
				out = append(out, "other")
			}
		}
		return out, mcpRoute
	}
	// By size: MCP, decided, MCP entry, by size, no decision.
	got, mcp := names(Options{ExtProc: "unix:/tmp/x.sock"})
	if want := []string{"mcp", "other", "mcp entry", "other", "other"}; !slices.Equal(got, want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	if mcp == nil || mcp.GetRoute().GetIdleTimeout().AsDuration() != 0 || mcp.GetRoute().GetTimeout().AsDuration() != 0 {
		t.Errorf("the MCP route may end a silent SSE stream: %v", mcp)
	}
	r, _ := Build(withConfig(t, "testdata/mcp.yaml", Options{ExtProc: "unix:/tmp/x.sock"}))
	clusters := map[string]bool{}
	for _, c := range r.Clusters {
		clusters[c.Name] = true
	}
	if !clusters["mcp/github"] || !clusters["mcp/db"] {
		t.Errorf("clusters %v lack the MCP servers'", clusters)
	}
	o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock"})
	r, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range r.Routes[0].VirtualHosts[0].Routes {
		if rt.GetMatch().GetPathSeparatedPrefix() != "" {
			t.Errorf("a config without MCP servers has an MCP route: %v", rt.GetMatch())
		}
	}
}
