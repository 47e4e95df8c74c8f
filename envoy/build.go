package envoy

import (
	"fmt"
	"math"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Resources are what Envoy needs beside its admin interface: the listeners
// (each with its HTTP connection manager and filters), their route
// configurations and the clusters. Build makes them as an xDS server
// serves them; BuildBootstrap wraps them into a static config.
type Resources struct {
	Listeners []*listenerv3.Listener
	// Routes are the listeners' route configurations, in listener order.
	// Each listener's connection manager names its route configuration by
	// RouteConfiguration.Name (RDS) or holds it inline (static).
	Routes []*routev3.RouteConfiguration
	// Clusters are the providers' clusters. The way to extproc is not
	// among them: it is in every bootstrap, and Envoy refuses to replace
	// a static cluster over xDS.
	Clusters []*clusterv3.Cluster
	// ExtProc is the way to extproc; nil without ext_proc.
	ExtProc *clusterv3.Cluster
}

// Route sources: a static config holds each route configuration inside its
// listener; an xDS one fetches it by name.
type routeSource int

const (
	routesInline routeSource = iota
	routesRDS
)

// Build makes the resources for o as an xDS server serves them: each
// listener's connection manager fetches its route configuration by name
// over ADS.
func Build(o Options) (*Resources, error) {
	d, err := o.settings()
	if err != nil {
		return nil, err
	}
	return d.resources(routesRDS)
}

// BuildBootstrap makes the whole static config for o: the admin interface
// and the resources of Build, each listener holding its route
// configuration inline.
func BuildBootstrap(o Options) (*bootstrapv3.Bootstrap, error) {
	d, err := o.settings()
	if err != nil {
		return nil, err
	}
	r, err := d.resources(routesInline)
	if err != nil {
		return nil, err
	}
	clusters := r.Clusters
	if r.ExtProc != nil {
		clusters = append([]*clusterv3.Cluster{r.ExtProc}, clusters...)
	}
	return &bootstrapv3.Bootstrap{
		Admin: &bootstrapv3.Admin{Address: socketAddress(d.adminAddress, d.adminPort)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: r.Listeners,
			Clusters:  clusters,
		},
		OverloadManager: d.overloadManager(),
		LayeredRuntime:  layeredRuntime(),
	}, nil
}

func (d *settings) resources(src routeSource) (*Resources, error) {
	// Envoy's buffer limits are 32-bit.
	for _, n := range []int64{d.bufferLimitBytes, d.attemptBufferBytes, d.responseBufferBytes, d.holdBodyBytes} {
		if n > math.MaxUint32 {
			return nil, fmt.Errorf("building envoy config: a buffer of %d bytes is over Envoy's limit of %d (lower max_body_bytes)", n, uint32(math.MaxUint32))
		}
	}
	r := &Resources{}
	gateway := d.gatewayRoutes()
	r.Listeners = append(r.Listeners, d.gatewayListener(gateway, src))
	r.Routes = append(r.Routes, gateway)
	if d.baselinePort != 0 {
		baseline := d.baselineRoutes()
		r.Listeners = append(r.Listeners, d.baselineListener(baseline, src))
		r.Routes = append(r.Routes, baseline)
	}
	if d.extProc {
		r.ExtProc = d.extProcCluster(extProcClusterName)
	}
	if d.check {
		r.Clusters = append(r.Clusters, d.checkCluster())
	}
	for _, c := range d.clusters {
		r.Clusters = append(r.Clusters, d.providerCluster(c))
	}
	if d.traceHost != "" {
		// Over ADS it comes with the listener that names it.
		r.Clusters = append(r.Clusters, d.traceCollectorCluster())
	}
	return r, nil
}

// typed packs m into an Any; it fails only for a message that cannot be
// marshalled, which the builder never makes.
func typed(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("packing %T: %v", m, err))
	}
	return a
}

func socketAddress(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

func pipeAddress(path string) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}
}

func duration(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
