package envoy

import (
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"switchyard/config"
	"switchyard/routing"
)

// PhaseGoogleErrors marks the streams of the Google errors filter: one
// per answer of Claude on Vertex AI that reaches a Messages client as it
// is, which extproc sees only the status of unless it is an error.
const PhaseGoogleErrors = "google_errors"

// GoogleErrorsHeaders are the headers the Google errors filter sends.
var GoogleErrorsHeaders = []string{":status", "content-type"}

const googleErrorsFilterName = "switchyard.google_errors"

// googleErrors reports whether the clusters of provider p carry the Google
// errors filter: Claude on Vertex AI, whose errors of Google's own platform
// (401, 403, 429, 5xx, in Google's shape) Messages clients must get in
// Anthropic's.
func googleErrors(p routing.Provider) bool { return p.Vertex && p.Schema == config.APIAnthropic }

// googleErrorsFilter is the filter: extproc gets each answer's status
// (one round trip for the headers, no body) and asks for the body, with
// mode_override, only when it is an error, to rewrite it in Anthropic's
// shape. It fails open: an answer is never lost to it.
func (d *settings) googleErrorsFilter() *hcmv3.HttpFilter {
	ep := &extprocv3.ExternalProcessor{
		GrpcService:      d.upstreamService(PhaseGoogleErrors),
		FailureModeAllow: true,
		StatusOnError:    &typev3.HttpStatus{Code: typev3.StatusCode_BadGateway},
		MessageTimeout:   duration(2 * time.Second),
		ForwardRules:     allowedHeaders(GoogleErrorsHeaders),
		// An error's status, type and length are set with its new body.
		AllowContentLengthHeader: true,
		AllowModeOverride:        true,
		MutationRules:            allowAllRouting(),
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
	}
	return &hcmv3.HttpFilter{Name: googleErrorsFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(ep)}}
}
