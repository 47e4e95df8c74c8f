package envoy

import (
	"os"
	"path/filepath"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// TestGoogleErrorsFilter: the clusters of Claude on Vertex that answer
// Messages clients as they are (its own, its usage and attempt clusters)
// run the Google errors filter after their own, sending extproc only the
// answer's status and content type, body on demand; its translate cluster
// and every other provider's clusters do not.
func TestGoogleErrorsFilter(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte(`providers:
  - {name: vc, schema: vertex, project: my-project, region: us-east5, publisher: anthropic, auth: {type: none}}
  - {name: vg, schema: vertex, project: my-project, region: us-east5, publisher: google, auth: {type: none}}
  - {name: oa, schema: openai, url: "http://127.0.0.1:9"}
routes:
  - {model: c, provider: vc, fallbacks: [{provider: oa}]}
  - {model: g, provider: vg, fallbacks: [{provider: oa}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := mustBuild(t, withConfig(t, cfg, Options{ExtProc: "unix:/tmp/x.sock"}))
	want := map[string]bool{"vc": true, "usage|vc": true, "attempt|vc": true}
	seen := 0
	for _, cl := range res.Clusters {
		var filters []*hcmv3.HttpFilter
		if a := cl.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]; a != nil {
			var po httpv3.HttpProtocolOptions
			if err := a.UnmarshalTo(&po); err != nil {
				t.Fatal(err)
			}
			filters = po.GetHttpFilters()
		}
		var ge *extprocv3.ExternalProcessor
		for i, f := range filters {
			if f.GetName() == googleErrorsFilterName {
				ge = &extprocv3.ExternalProcessor{}
				if err := f.GetTypedConfig().UnmarshalTo(ge); err != nil {
					t.Fatal(err)
				}
				if i != len(filters)-2 {
					t.Errorf("%s: the Google errors filter is not the last before the codec", cl.GetName())
				}
			}
		}
		if (ge != nil) != want[cl.GetName()] {
			t.Errorf("%s: Google errors filter %t, want %t", cl.GetName(), ge != nil, want[cl.GetName()])
		}
		if ge == nil {
			continue
		}
		seen++
		m := ge.GetProcessingMode()
		if !ge.GetAllowModeOverride() || !ge.GetFailureModeAllow() || ge.GetObservabilityMode() ||
			m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SEND || m.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE ||
			m.GetRequestHeaderMode() != extprocv3.ProcessingMode_SKIP || len(ge.GetForwardRules().GetAllowedHeaders().GetPatterns()) != 2 {
			t.Errorf("%s: the Google errors filter is %v", cl.GetName(), ge)
		}
	}
	if seen != len(want) {
		t.Errorf("%d clusters with the filter, want %d", seen, len(want))
	}
}
