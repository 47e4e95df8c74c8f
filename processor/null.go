package processor

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"switchyard/routing"
)

// NullServer is the floor of the ext_proc hop, for the load benchmark's
// null path: the same Envoy config as the gateway, and a processor that
// reads nothing and only routes. Every request goes to Cluster: the
// headers are answered at once with the routing header (in full-duplex
// mode, and when Envoy keeps the body and its body module summarized it),
// and in full-duplex mode each body chunk is sent back as it came, held no
// longer than its own message. What the gateway costs beyond this is the gateway's own
// work; what this costs beyond Envoy alone is the trip.
type NullServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	Cluster string
}

var _ extprocv3.ExternalProcessorServer = (*NullServer)(nil)

// Register adds the null ext_proc service to a gRPC server.
func (s *NullServer) Register(gs *grpc.Server) {
	extprocv3.RegisterExternalProcessorServer(gs, s)
}

// Process answers one request's messages.
func (s *NullServer) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	route := &extprocv3.CommonResponse{ClearRouteCache: true, HeaderMutation: &extprocv3.HeaderMutation{
		SetHeaders: []*corev3.HeaderValueOption{setHeader(routing.ClusterHeader, s.Cluster)}}}
	duplex, bodyless := false, false
	return serveStream(stream, func(_ context.Context, msg *extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
		if pc := msg.GetProtocolConfig(); pc != nil {
			duplex = pc.GetRequestBodyMode() == filterv3.ProcessingMode_FULL_DUPLEX_STREAMED
			bodyless = pc.GetRequestBodyMode() == filterv3.ProcessingMode_NONE
		}
		var r extprocv3.ProcessingResponse
		switch v := msg.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			h := &extprocv3.HeadersResponse{}
			if duplex || bodyless {
				h.Response = route
			}
			r.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: h}
		case *extprocv3.ProcessingRequest_RequestBody:
			b := &extprocv3.BodyResponse{}
			if duplex {
				b.Response = &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
					Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{
						Body: v.RequestBody.GetBody(), EndOfStream: v.RequestBody.GetEndOfStream()}}}}
			} else {
				b.Response = route
			}
			r.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: b}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			r.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			r.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			r.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			r.Response = &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}
		default:
			return nil
		}
		return []*extprocv3.ProcessingResponse{&r}
	}, nil, true)
}
