package envoy

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	"switchyard/routing"
)

// TestBodyModuleKeepsBigBodies: with the body module, its filter runs
// before ext_proc on the big-body route alone, where ext_proc gets no body
// but the module's summary; extproc may ask for the body (the filter's own
// mode is BUFFERED, so Envoy takes its mode_override), and every other
// request keeps full duplex through its route.
func TestBodyModuleKeepsBigBodies(t *testing.T) {
	for _, hooks := range []bool{false, true} {
		o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", BodyModule: "/opt/libswitchyard_body.so", ResponseHeaders: hooks})
		res, err := Build(o)
		if err != nil {
			t.Fatal(err)
		}
		hcm := connectionManager(t, res.Listeners[0])
		names := make([]string, 0, len(hcm.GetHttpFilters()))
		for _, f := range hcm.GetHttpFilters() {
			names = append(names, f.GetName())
		}
		i := slices.Index(names, bodyModuleFilterName)
		if i < 0 || names[i+1] != extProcFilterName || !hcm.GetHttpFilters()[i].GetDisabled() {
			t.Fatalf("filters %v: want the body module, off, just before ext_proc", names)
		}
		ep := &extprocv3.ExternalProcessor{}
		if err := hcm.GetHttpFilters()[i+1].GetTypedConfig().UnmarshalTo(ep); err != nil {
			t.Fatal(err)
		}
		if !ep.GetAllowModeOverride() || ep.GetProcessingMode().GetRequestBodyMode() != extprocv3.ProcessingMode_BUFFERED ||
			!slices.Equal(ep.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(), []string{routing.BodyNamespace}) {
			t.Errorf("ext_proc: mode override %v, body mode %v, forwarded %v", ep.GetAllowModeOverride(),
				ep.GetProcessingMode().GetRequestBodyMode(), ep.GetMetadataOptions().GetForwardingNamespaces())
		}
		var bySize, noDecision *routev3.Route
		for _, r := range res.Routes[0].GetVirtualHosts()[0].GetRoutes() {
			switch {
			case r.GetMatch().GetPrefix() != "/" || r.GetDirectResponse() == nil:
			case len(r.GetMatch().GetHeaders()) == 1 && r.GetMatch().GetHeaders()[0].GetName() == "content-length":
				bySize = r
			case len(r.GetMatch().GetHeaders()) == 0:
				noDecision = r
			}
		}
		if bySize == nil || noDecision == nil {
			t.Fatal("no big-body route or no route without a decision")
		}
		if _, ok := bySize.GetTypedPerFilterConfig()[bodyModuleFilterName]; !ok {
			t.Error("the big-body route does not turn the body module on")
		}
		if _, ok := noDecision.GetTypedPerFilterConfig()[bodyModuleFilterName]; ok {
			t.Error("the route of other requests turns the body module on")
		}
		for r, want := range map[*routev3.Route]extprocv3.ProcessingMode_BodySendMode{
			bySize: extprocv3.ProcessingMode_NONE, noDecision: extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED,
		} {
			per := &extprocv3.ExtProcPerRoute{}
			if err := r.GetTypedPerFilterConfig()[extProcFilterName].UnmarshalTo(per); err != nil {
				t.Fatal(err)
			}
			mode := per.GetOverrides().GetProcessingMode()
			if mode.GetRequestBodyMode() != want || (mode.GetResponseHeaderMode() == extprocv3.ProcessingMode_SEND) != hooks {
				t.Errorf("hooks %v: route %v: mode %v, want body %v", hooks, r.GetMatch(), mode, want)
			}
		}
	}
	if _, err := Build(Options{ExtProc: "unix:/x", BodyMode: BodyModeFullDuplex, BodyModule: "/opt/libswitchyard_body.so"}); err == nil {
		t.Error("a body module in full-duplex mode built, want an error")
	}
}

// TestBodyModuleWithoutExtProc: Envoy alone with the body module (a
// benchmark's baseline) holds and scans every body: the module is on for
// every request, just before the router, and there is no ext_proc.
func TestBodyModuleWithoutExtProc(t *testing.T) {
	res, err := Build(withConfig(t, "../examples/switchyard.yaml", Options{DirectCluster: "mock", BodyModule: "/opt/libswitchyard_body.so"}))
	if err != nil {
		t.Fatal(err)
	}
	filters := connectionManager(t, res.Listeners[0]).GetHttpFilters()
	names := make([]string, 0, len(filters))
	for _, f := range filters {
		names = append(names, f.GetName())
	}
	i := slices.Index(names, bodyModuleFilterName)
	if i < 0 || names[i+1] != routerFilterName || filters[i].GetDisabled() || slices.Contains(names, extProcFilterName) {
		t.Fatalf("filters %v (module disabled: %v): want the body module, on, just before the router, and no ext_proc",
			names, i >= 0 && filters[i].GetDisabled())
	}
	for _, r := range res.Routes[0].GetVirtualHosts()[0].GetRoutes() {
		if _, ok := r.GetTypedPerFilterConfig()[bodyModuleFilterName]; ok {
			t.Errorf("route %v configures the module: every route has it already", r.GetMatch())
		}
	}
}
