//go:build vtprotobuf

package processor

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Built with -tags vtprotobuf, the messages extproc sends must have the
// fast path, or the codec silently falls back to reflection.
var (
	_ vtMarshaler = (*extprocv3.ProcessingResponse)(nil)
	_ vtMarshaler = (*extprocv3.ProcessingRequest)(nil)
)

func TestVTProtoBuilt(t *testing.T) {
	if !VTProto() {
		t.Error("built with -tags vtprotobuf but VTProto() is false")
	}
}
