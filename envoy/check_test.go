package envoy

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"switchyard/routing"
)

// TestCheckTrip: with the check trip the ext_authz filter runs, off, between
// the body module and ext_proc, and only the by-size route turns it on; a
// request its check sent on (the trip header) reaches ext_proc on a route
// of its own before the by-size route, and the decided route keeps ext_proc
// off and the trip header from the provider. The check needs the module.
func TestCheckTrip(t *testing.T) {
	o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", BodyModule: "/opt/libswitchyard_body.so", Check: "unix:/tmp/c.sock"})
	res, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	hcm := connectionManager(t, res.Listeners[0])
	var names []string
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	i := slices.Index(names, checkFilterName)
	if i < 1 || names[i-1] != bodyModuleFilterName || names[i+1] != extProcFilterName || !hcm.GetHttpFilters()[i].GetDisabled() {
		t.Fatalf("filters %v: want ext_authz, off, between the body module and ext_proc", names)
	}
	routes := res.Routes[0].GetVirtualHosts()[0].GetRoutes()
	on := func(r *routev3.Route, filter string) bool { _, ok := r.GetTypedPerFilterConfig()[filter]; return ok }
	body, bySize := -1, -1
	for j, r := range routes {
		h := r.GetMatch().GetHeaders()
		switch {
		case len(h) == 2 && h[1].GetName() == routing.TripHeader:
			body = j
		case len(h) == 1 && h[0].GetName() == "content-length":
			bySize = j
		case len(h) == 1 && h[0].GetName() == routing.ClusterHeader:
			if !on(r, extProcFilterName) || !slices.Contains(r.GetRequestHeadersToRemove(), routing.TripHeader) {
				t.Error("the decided route leaves ext_proc on or the trip header in")
			}
		}
		if on(r, checkFilterName) != (j == bySize) {
			t.Errorf("route %d turns the check on: %v", j, on(r, checkFilterName))
		}
	}
	if body < 0 || bySize < 0 || body > bySize {
		t.Fatalf("body route %d, by-size route %d: want both, the body route first", body, bySize)
	}
	if !slices.ContainsFunc(res.Clusters, func(c *clusterv3.Cluster) bool { return c.GetName() == checkClusterName }) {
		t.Error("no check cluster")
	}
	o.BodyModule = ""
	if _, err := Build(o); err == nil {
		t.Error("a check without the body module was built")
	}
}
