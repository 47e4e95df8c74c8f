package processor

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

func TestServiceNameMatchesProto(t *testing.T) {
	if ServiceName != extprocv3.ExternalProcessor_ServiceDesc.ServiceName {
		t.Errorf("ServiceName %q, proto says %q", ServiceName, extprocv3.ExternalProcessor_ServiceDesc.ServiceName)
	}
}
