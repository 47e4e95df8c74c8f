package envoy

import (
	"errors"
	"io"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/config"
)

// XDSClusterName is the static cluster Envoy fetches its resources
// through: extproc's gRPC address, which serves ADS beside ext_proc.
const XDSClusterName = config.XDSClusterName

// NodeID is the node name of an Envoy that takes its resources over ADS.
const NodeID = "switchyard"

// NodeArgsKey is the field of the node metadata that holds the
// `extproc envoy-config` flags the bootstrap was printed with: extproc
// builds that Envoy's resources with the same flags and its current config.
const NodeArgsKey = "switchyard_envoy_config_args"

// BuildADSBootstrap makes the minimal config of an Envoy that takes its
// listeners, routes and clusters from extproc over ADS: the admin
// interface, the ext_proc cluster, the xDS cluster and where the dynamic
// resources come from. args go into the node metadata (NodeArgsKey).
//
// Until the first snapshot arrives Envoy has no listener and so serves
// nothing; while extproc is down it keeps the resources it last accepted.
func BuildADSBootstrap(o Options, args []string) (*bootstrapv3.Bootstrap, error) {
	d, err := o.settings()
	if err != nil {
		return nil, err
	}
	if !d.extProc {
		return nil, errors.New("building an ADS bootstrap: the resources come from extproc, which needs an extproc address")
	}
	if _, err := d.resources(routesRDS); err != nil {
		return nil, err
	}
	list := make([]any, len(args))
	for i, a := range args {
		list[i] = a
	}
	meta, err := structpb.NewStruct(map[string]any{NodeArgsKey: list})
	if err != nil {
		return nil, err
	}
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	// One ADS stream on its own connection: the ext_proc cluster's
	// connections carry request streams.
	xds := d.extProcCluster(XDSClusterName)
	return &bootstrapv3.Bootstrap{
		Node:  &corev3.Node{Id: NodeID, Cluster: NodeID, Metadata: meta},
		Admin: &bootstrapv3.Admin{Address: socketAddress(d.adminAddress, d.adminPort)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{d.extProcCluster(extProcClusterName), xds},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices:        []*corev3.GrpcService{{TargetSpecifier: envoyGRPC(XDSClusterName)}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		OverloadManager: d.overloadManager(),
		LayeredRuntime:  layeredRuntime(),
	}, nil
}

// RenderADS writes BuildADSBootstrap's config as YAML.
func RenderADS(w io.Writer, o Options, args []string) error {
	bs, err := BuildADSBootstrap(o, args)
	if err != nil {
		return err
	}
	return writeYAML(w, bs)
}
