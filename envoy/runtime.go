package envoy

import (
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// sideStreamFlowControl is the Envoy runtime feature that ties each
// ext_proc filter to its gRPC stream: when that stream, or the connection
// to extproc it shares with every other request's, goes over its buffer's
// high watermark, the filter pauses its request, and resumes it below the
// low one. Envoy 1.40 crashes in that pause or resume once request bodies
// back up that connection, as translated and counted requests' do (the
// measurements and the traced stacks are in docs/PERFORMANCE.md, "Envoy
// crashed under translated big requests when extproc fell behind";
// TestTranslatedConversationsBackUpExtproc).
//
// Nothing measured got worse without the pause: a request body Envoy sends
// extproc queues at most itself, within the request's buffer limit; the
// answer chunks a translation streams there wait in the ext_proc filter's
// own queue, which has its watermarks; an answer observed for its usage
// queues for extproc at most the answer itself.
const sideStreamFlowControl = "envoy.reloadable_features.grpc_side_stream_flow_control"

// layeredRuntime is Envoy's runtime: one static layer turning off the
// features above. Envoy's admin interface cannot change it.
func layeredRuntime() *bootstrapv3.LayeredRuntime {
	return &bootstrapv3.LayeredRuntime{Layers: []*bootstrapv3.RuntimeLayer{{
		Name: "switchyard",
		LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: &structpb.Struct{Fields: map[string]*structpb.Value{
			sideStreamFlowControl: structpb.NewBoolValue(false),
		}}},
	}}}
}
