package envoy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"gopkg.in/yaml.v3"

	"switchyard/config"
	"switchyard/routing"
)

type buildCase struct {
	name, config string
	opts         Options
}

// withConfig fills o from a gateway config, as `extproc envoy-config` does.
func withConfig(t *testing.T, config string, o Options) Options {
	t.Helper()
	r, err := routing.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	o.Providers, o.MaxBodyBytes, o.RetryRoutes, o.MCPServers = r.Providers(), r.MaxBodyBytes(), r.RetryRoutes(), r.MCPServers()
	return o
}

// buildCases are every config the tests render, and the combinations of
// the options that change Envoy's shape; with every > 1, only one
// combination in every.
func buildCases(t *testing.T, every int) []buildCase {
	var cases []buildCase
	for _, c := range committed {
		cases = append(cases, buildCase{"committed " + c.file, c.config, c.opts})
	}
	cfg := "../examples/switchyard.yaml"
	cases = append(cases,
		buildCase{"no ext_proc", cfg, Options{DirectCluster: "mock"}},
		buildCase{"no ext_proc, baseline", cfg, Options{DirectCluster: "mock", BaselinePort: 10001, BaselineCluster: "openai"}},
		buildCase{"fail open, timeouts, ca file, port 0", cfg, Options{ExtProc: "127.0.0.1:9002", FailOpen: true,
			UpstreamIdleTimeout: 7 * time.Second, StreamIdleTimeout: 1500 * time.Millisecond, MessageTimeout: 250 * time.Millisecond,
			CAFile: "/etc/custom/ca.pem", ExtProcStreamsPerConnection: 100, ListenAddress: "0.0.0.0", AdminAddress: "0.0.0.0"}},
		buildCase{"google grpc over tcp, access log", cfg, Options{ExtProc: "127.0.0.1:9002", GRPCClient: GRPCClientGoogle, AccessLog: "/tmp/access.log"}},
		buildCase{"traced, collector by address", cfg, Options{ExtProc: "unix:/tmp/x.sock", TraceCollector: "127.0.0.1:4317", Traced: true}},
		buildCase{"traced by extproc only", cfg, Options{ExtProc: "unix:/tmp/x.sock", Traced: true}},
		buildCase{"heap bound", cfg, Options{ExtProc: "unix:/tmp/x.sock", MaxHeapBytes: 384 << 20}},
		buildCase{"traced, collector by name, fallbacks", "testdata/fallbacks.yaml", Options{ExtProc: "unix:/tmp/x.sock", TraceCollector: "otel-collector:4317"}},
		buildCase{"body module, hooks", cfg, Options{ExtProc: "unix:/tmp/x.sock", BodyModule: "/opt/libswitchyard_body.so", ResponseHeaders: true}},
	)
	combination := 0
	for _, config := range []string{cfg, "testdata/fallbacks.yaml", "testdata/pools.yaml", "testdata/mcp.yaml"} {
		for _, mode := range []string{"", BodyModeFullDuplex, BodyModeBuffered, BodyModeBySize} {
			for _, extproc := range []string{"unix:/tmp/x.sock", "127.0.0.1:9002", "extproc.internal:9002"} {
				for _, grpc := range []string{"", GRPCClientGoogle} {
					for _, hooks := range []bool{false, true} {
						for _, inline := range []bool{false, true} {
							combination++
							if (combination-1)%every != 0 {
								continue
							}
							name := fmt.Sprintf("%s mode=%q extproc=%s grpc=%q hooks=%v usage_inline=%v", filepath.Base(config), mode, extproc, grpc, hooks, inline)
							cases = append(cases, buildCase{name, config, Options{ExtProc: extproc, BodyMode: mode, GRPCClient: grpc, ResponseHeaders: hooks, UsageInline: inline,
								BaselinePort: 10001}})
						}
					}
				}
			}
		}
	}
	for i := range cases {
		o := withConfig(t, cases[i].config, cases[i].opts)
		if o.BaselinePort != 0 && o.BaselineCluster == "" {
			o.BaselineCluster = o.Providers[len(o.Providers)-1].Cluster
		}
		cases[i].opts = o
	}
	return cases
}

// sampleCases are the named cases and a seventh of the combinations,
// which still meets every value of every option: printing and comparing a
// whole config is slow, under the race detector above all.
func sampleCases(t *testing.T) []buildCase { return buildCases(t, 7) }

// parseYAML reads an Envoy YAML config as Envoy does: YAML to JSON, then
// the proto3 JSON mapping.
func parseYAML(t *testing.T, b []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("parsing YAML: %v", err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("YAML to JSON: %v", err)
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(j, bs); err != nil {
		t.Fatalf("decoding the bootstrap: %v", err)
	}
	return bs
}

// diffBootstrap is cmp.Diff with protocmp, which takes a fifth of a second
// for a bootstrap of this size; two equal protos have the same canonical
// JSON (sorted map keys, every Any expanded), which is much faster to
// compare, so the full comparison runs only to explain a difference.
func diffBootstrap(want, got *bootstrapv3.Bootstrap) string {
	w, err1 := protojson.Marshal(want)
	g, err2 := protojson.Marshal(got)
	if err1 == nil && err2 == nil && bytes.Equal(w, g) {
		return ""
	}
	return cmp.Diff(want, got, protocmp.Transform())
}

// TestRenderPrintsTheBootstrap: for every config, the YAML Render prints
// reads back, as Envoy reads it, into exactly the builder's bootstrap.
// (Until the template was removed, the same cases proved the builder equal
// to it.)
func TestRenderPrintsTheBootstrap(t *testing.T) {
	for _, c := range sampleCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := Render(&b, c.opts); err != nil {
				t.Fatal(err)
			}
			want, err := BuildBootstrap(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := diffBootstrap(want, parseYAML(t, b.Bytes())); diff != "" {
				t.Errorf("the printed YAML differs from the bootstrap (-built +printed):\n%s", diff)
			}
		})
	}
}

// TestBuildErrors: the builder refuses options it cannot render, and a
// body limit that does not fit Envoy's 32-bit buffer limits.
func TestBuildErrors(t *testing.T) {
	heldOver4GiB := withConfig(t, "../examples/switchyard.yaml", Options{DirectCluster: "mock", HoldBody: true})
	heldOver4GiB.MaxBodyBytes = 1 << 32
	heldTwice := withConfig(t, "../examples/switchyard.yaml", Options{DirectCluster: "mock", HoldBody: true, BodyModule: "/lib/body.so"})
	for name, o := range map[string]Options{
		"unknown body mode":            {ExtProc: "unix:/x", BodyMode: "STREAMED"},
		"no ext_proc and no cluster":   {},
		"bad extproc port":             {ExtProc: "127.0.0.1:http"},
		"direct cluster not provided":  {DirectCluster: "nope"},
		"baseline without cluster":     {ExtProc: "unix:/x", BaselinePort: 10001},
		"unknown grpc client":          {ExtProc: "unix:/x", GRPCClient: "grpc-go"},
		"body over 4 GiB, buffered":    {ExtProc: "unix:/x", BodyMode: BodyModeBuffered, MaxBodyBytes: 1 << 32},
		"an empty extproc slot":        {ExtProc: "unix:/a,"},
		"google grpc with two slots":   {ExtProc: "unix:/a,unix:/b", GRPCClient: GRPCClientGoogle},
		"trace collector without port": {ExtProc: "unix:/x", TraceCollector: "127.0.0.1"},
		"the body held with ext_proc":  {ExtProc: "unix:/x", HoldBody: true},
		"the body held twice":          heldTwice,
		"body over 4 GiB, held":        heldOver4GiB,
		"a heap bound too small":       {ExtProc: "unix:/x", MaxHeapBytes: 1 << 20},
	} {
		if _, err := BuildBootstrap(o); err == nil {
			t.Errorf("%s: BuildBootstrap succeeded, want an error", name)
		}
	}
}

// TestXDSResourcesAreTheStaticOnes: what an xDS server serves is what the
// static config holds, except that listeners fetch their routes by name
// (RDS over ADS), always receive the attempts namespace and send extproc
// every request header (hooks may be turned on at a reload).
func TestXDSResourcesAreTheStaticOnes(t *testing.T) {
	for _, c := range sampleCases(t) {
		if c.opts.ExtProc == "" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			static, err := BuildBootstrap(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Build(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			clusters := append([]*clusterv3.Cluster{res.ExtProc}, res.Clusters...)
			if diff := cmp.Diff(static.GetStaticResources().GetClusters(), clusters, protocmp.Transform()); diff != "" {
				t.Errorf("clusters (-static +xds):\n%s", diff)
			}
			listeners := static.GetStaticResources().GetListeners()
			if len(listeners) != len(res.Listeners) || len(res.Routes) != len(res.Listeners) {
				t.Fatalf("%d static listeners, %d xds listeners, %d route configurations", len(listeners), len(res.Listeners), len(res.Routes))
			}
			for i, l := range res.Listeners {
				hcm := connectionManager(t, l)
				if got := hcm.GetRds().GetRouteConfigName(); got != res.Routes[i].GetName() || hcm.GetRds().GetConfigSource().GetAds() == nil {
					t.Errorf("listener %s fetches routes %q (ads: %v), want %q over ADS", l.GetName(), got, hcm.GetRds().GetConfigSource().GetAds() != nil, res.Routes[i].GetName())
				}
				want := connectionManager(t, listeners[i])
				if diff := cmp.Diff(want.GetRouteConfig(), res.Routes[i], protocmp.Transform()); diff != "" {
					t.Errorf("routes of %s (-static +xds):\n%s", l.GetName(), diff)
				}
				// The rest of the listener is the same, but for the
				// attempts namespace, which over xDS is always received.
				want.RouteSpecifier, hcm.RouteSpecifier = nil, nil
				opts := []cmp.Option{protocmp.Transform(), protocmp.IgnoreFields(&extprocv3.MetadataOptions_MetadataNamespaces{}, "untyped"),
					protocmp.IgnoreFields(&extprocv3.ExternalProcessor{}, "forward_rules")}
				if diff := cmp.Diff(want, hcm, opts...); diff != "" {
					t.Errorf("listener %s (-static +xds):\n%s", l.GetName(), diff)
				}
			}
		})
	}
}

func connectionManager(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	return hcm
}

// TestTracingOnlyWhenConfigured: with a trace collector the gateway
// listener traces with Envoy's OpenTelemetry tracer, exporting over gRPC
// (HTTP/2) to the collector's cluster, statically and over ADS alike;
// without one nothing about tracing is rendered.
func TestTracingOnlyWhenConfigured(t *testing.T) {
	for _, collector := range []string{"", "127.0.0.1:4317"} {
		o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", TraceCollector: collector})
		static, err := BuildBootstrap(o)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Build(o)
		if err != nil {
			t.Fatal(err)
		}
		for name, l := range map[string]*listenerv3.Listener{"static": static.GetStaticResources().GetListeners()[0], "ads": res.Listeners[0]} {
			tr := connectionManager(t, l).GetTracing()
			if (tr != nil) != (collector != "") {
				t.Fatalf("%s, collector %q: tracing %v", name, collector, tr)
			}
			if tr == nil {
				continue
			}
			otel := &tracev3.OpenTelemetryConfig{}
			if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(otel); err != nil || tr.GetProvider().GetName() != "envoy.tracers.opentelemetry" {
				t.Fatalf("%s: provider %v: %v", name, tr.GetProvider(), err)
			}
			if got := otel.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != TraceCollectorCluster {
				t.Errorf("%s: spans go to cluster %q", name, got)
			}
		}
		for name, clusters := range map[string][]*clusterv3.Cluster{"static": static.GetStaticResources().GetClusters(), "ads": res.Clusters} {
			i := slices.IndexFunc(clusters, func(c *clusterv3.Cluster) bool { return c.GetName() == TraceCollectorCluster })
			if (i >= 0) != (collector != "") {
				t.Fatalf("%s, collector %q: collector cluster at %d", name, collector, i)
			}
			if i < 0 {
				continue
			}
			sa := clusters[i].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 4317 {
				t.Errorf("%s: collector at %v", name, sa)
			}
			if _, ok := clusters[i].GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]; !ok {
				t.Errorf("%s: the collector cluster does not speak HTTP/2 (gRPC)", name)
			}
		}
	}
}

// TestTraceContextForwardedWhenTraced: without hooks the static ext_proc
// filter forwards only the headers extproc reads; the client's trace
// context is among them when extproc traces, and only then.
func TestTraceContextForwardedWhenTraced(t *testing.T) {
	for _, traced := range []bool{false, true} {
		o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", Traced: traced})
		bs, err := BuildBootstrap(o)
		if err != nil {
			t.Fatal(err)
		}
		var ep extprocv3.ExternalProcessor
		for _, f := range connectionManager(t, bs.GetStaticResources().GetListeners()[0]).GetHttpFilters() {
			if f.GetName() == extProcFilterName {
				if err := f.GetTypedConfig().UnmarshalTo(&ep); err != nil {
					t.Fatal(err)
				}
			}
		}
		var allowed []string
		for _, m := range ep.GetForwardRules().GetAllowedHeaders().GetPatterns() {
			allowed = append(allowed, m.GetExact())
		}
		for _, h := range TraceContextHeaders {
			if slices.Contains(allowed, h) != traced {
				t.Errorf("traced %v: %s forwarded: %v (%v)", traced, h, !traced, allowed)
			}
		}
		if !slices.Contains(allowed, ":path") {
			t.Fatalf("traced %v: forward rules %v lack :path", traced, allowed)
		}
	}
}

// TestHeapBound: -max-heap gives Envoy's bootstrap, static or ADS, an
// overload manager that reads the heap against the bound and acts on it,
// and the local reply that answers a request it refuses; without it there
// is none.
func TestHeapBound(t *testing.T) {
	o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", MaxHeapBytes: 384 << 20})
	static, err := BuildBootstrap(o)
	if err != nil {
		t.Fatal(err)
	}
	ads, err := BuildADSBootstrap(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, om := range map[string]*overloadv3.OverloadManager{"static": static.GetOverloadManager(), "ads": ads.GetOverloadManager()} {
		var heap fixedheapv3.FixedHeapConfig
		if len(om.GetResourceMonitors()) != 1 || om.GetResourceMonitors()[0].GetTypedConfig().UnmarshalTo(&heap) != nil || heap.GetMaxHeapSizeBytes() != 384<<20 {
			t.Errorf("%s: resource monitors %v, want the fixed heap at 384 MiB", name, om.GetResourceMonitors())
		}
		var names []string
		for _, a := range om.GetActions() {
			names = append(names, a.GetName())
		}
		for _, p := range om.GetLoadshedPoints() {
			names = append(names, p.GetName())
		}
		for _, want := range []string{"envoy.overload_actions.stop_accepting_requests", "envoy.load_shed_points.http1_server_abort_dispatch"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s: actions %v lack %s", name, names, want)
			}
		}
		// Streams are reset biggest first, not all at once.
		for _, a := range om.GetActions() {
			if a.GetName() == "envoy.overload_actions.reset_high_memory_stream" && a.GetTriggers()[0].GetScaled() == nil {
				t.Errorf("%s: stream resets triggered by %v, want a scaled trigger", name, a.GetTriggers())
			}
		}
	}
	o.MaxHeapBytes = 0
	if bs, err := BuildBootstrap(o); err != nil || bs.GetOverloadManager() != nil {
		t.Errorf("without a bound: overload manager %v (%v), want none", bs.GetOverloadManager(), err)
	}
}

// TestRequestTimeout: the gateway listener bounds how long a request may
// take to arrive (DefaultRequestTimeout unless set; negative: no bound),
// and its 408 gets a reply in the API's shape that names the bound.
func TestRequestTimeout(t *testing.T) {
	for _, c := range []struct {
		set, want time.Duration
	}{{0, DefaultRequestTimeout}, {1500 * time.Millisecond, 1500 * time.Millisecond}, {-1, 0}} {
		o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", RequestTimeout: c.set})
		bs, err := BuildBootstrap(o)
		if err != nil {
			t.Fatal(err)
		}
		hcm := connectionManager(t, bs.GetStaticResources().GetListeners()[0])
		if got := hcm.GetRequestTimeout().AsDuration(); got != c.want {
			t.Errorf("set %v: request timeout %v, want %v", c.set, got, c.want)
		}
		var mapped []string
		for _, m := range hcm.GetLocalReplyConfig().GetMappers() {
			if b, _ := protojson.Marshal(m); strings.Contains(string(b), requestTimeoutDetails) {
				mapped = append(mapped, string(b))
			}
		}
		if c.want == 0 && len(mapped) != 0 || c.want > 0 && (len(mapped) == 0 || !strings.Contains(mapped[0], "within "+seconds(c.want))) {
			t.Errorf("set %v: the 408's mappers %q", c.set, mapped)
		}
	}
	// Below a millisecond Envoy would read no timeout at all.
	o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", RequestTimeout: time.Microsecond})
	if _, err := BuildBootstrap(o); err == nil {
		t.Error("a request timeout of 1µs: built, want an error")
	}
}

// TestIPEndpointsHaveAHostname: the routes rewrite the Host header to an
// endpoint's hostname, which Envoy knows for a name it resolves but not for
// an IP address: a provider reached by IP address has its address as the
// hostname (with a port other than the scheme's), so the client's own Host
// never reaches it.
func TestIPEndpointsHaveAHostname(t *testing.T) {
	res := mustBuild(t, withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock"}))
	checked := 0
	for _, c := range res.Clusters {
		if c.GetType() != clusterv3.Cluster_STATIC || c.GetName() == config.ExtProcClusterName {
			continue
		}
		for _, lle := range c.GetLoadAssignment().GetEndpoints() {
			for _, e := range lle.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				want := config.HostHeader(sa.GetAddress(), int(sa.GetPortValue()), c.GetTransportSocket() != nil)
				if got := e.GetEndpoint().GetHostname(); got != want || got == "" {
					t.Errorf("cluster %s: endpoint hostname %q, want %q", c.GetName(), got, want)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no static provider cluster in examples/switchyard.yaml")
	}
}

// TestUpstreamIdleBound: an upstream idle timeout longer than extproc keeps
// a request's plan is built as that bound.
func TestUpstreamIdleBound(t *testing.T) {
	o := withConfig(t, "../examples/switchyard.yaml", Options{ExtProc: "unix:/tmp/x.sock", UpstreamIdleTimeout: 20 * time.Minute})
	res := mustBuild(t, o)
	checked := 0
	for _, rc := range res.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if d := r.GetRoute().GetIdleTimeout(); d != nil {
					checked++
					if d.AsDuration() != MaxUpstreamIdleTimeout {
						t.Errorf("route %s: idle timeout %v, want %v", r.GetName(), d.AsDuration(), MaxUpstreamIdleTimeout)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no route with an idle timeout")
	}
}
