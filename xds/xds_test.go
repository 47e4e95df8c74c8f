package xds

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"switchyard/envoy"
	"switchyard/routing"
)

func load(t *testing.T, yaml string) *routing.Router {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := routing.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func node(t *testing.T, args ...string) *corev3.Node {
	t.Helper()
	list := make([]any, len(args))
	for i, a := range args {
		list[i] = a
	}
	meta, err := structpb.NewStruct(map[string]any{envoy.NodeArgsKey: list})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: envoy.NodeID, Metadata: meta}
}

const (
	oneProvider  = "providers:\n  - {name: a, url: 'http://127.0.0.1:1', schema: openai}\nroutes:\n  - {model: m, provider: a}\n"
	twoProviders = "providers:\n  - {name: a, url: 'http://127.0.0.1:1', schema: openai}\n  - {name: b, url: 'http://127.0.0.1:2', schema: openai}\nroutes:\n  - {model: m, provider: b}\n"
)

// build makes the resources of the flags' extproc address, as
// `extproc -xds` does from the whole envoy-config flag set.
func build(args []string, r *routing.Router) (*envoy.Resources, error) {
	if len(args) != 1 {
		return nil, errors.New("want one argument, the extproc address")
	}
	return envoy.Build(envoy.Options{ExtProc: args[0], Providers: r.Providers(), RetryRoutes: r.RetryRoutes(), MaxBodyBytes: r.MaxBodyBytes()})
}

// TestSnapshotsFollowReloads: an Envoy gets the snapshot of the running
// config when it first asks; Update brings a new version with the new
// clusters and returns once every Envoy has accepted it; Envoys printed
// with other flags get their own snapshot; a rejected version is refused
// and the running config's resources are served again.
func TestSnapshotsFollowReloads(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(t.Context(), build, slog.New(slog.DiscardHandler), reg)
	if err := s.Update(t.Context(), load(t, oneProvider)); err != nil {
		t.Fatal(err)
	}
	envoys := []*corev3.Node{node(t, "unix:/tmp/a.sock"), node(t, "unix:/tmp/b.sock")}
	for i, n := range envoys {
		if err := s.onRequest(int64(i), &discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType}); err != nil {
			t.Fatal(err)
		}
	}
	clusters := func(n *corev3.Node) (string, int) {
		t.Helper()
		snap, err := s.cache.GetSnapshot(argsHash{}.ID(n))
		if err != nil {
			t.Fatal(err)
		}
		return snap.GetVersion(resource.ClusterType), len(snap.GetResources(resource.ClusterType))
	}
	if v, n := clusters(envoys[0]); v != "1" || n != 3 { // a, usage|a, translate|a
		t.Errorf("first snapshot: version %q with %d clusters, want 1 with 3", v, n)
	}
	// update runs Update while the Envoys answer each new version as
	// answer says.
	update := func(r *routing.Router, answer func(version string) *discoverygrpc.DiscoveryRequest) error {
		done := make(chan error, 1)
		go func() { done <- s.Update(t.Context(), r) }()
		answered := ""
		for {
			select {
			case err := <-done:
				return err
			case <-time.After(time.Millisecond):
			}
			v, _ := clusters(envoys[0])
			if v == answered {
				continue
			}
			answered = v
			for i, n := range envoys {
				req := answer(v)
				req.Node, req.TypeUrl = n, resource.ClusterType
				if err := s.onRequest(int64(i), req); err != nil {
					t.Error(err)
				}
			}
		}
	}
	accept := func(v string) *discoverygrpc.DiscoveryRequest { return &discoverygrpc.DiscoveryRequest{VersionInfo: v} }
	if err := update(load(t, twoProviders), accept); err != nil {
		t.Fatal(err)
	}
	for _, n := range envoys {
		if v, c := clusters(n); v != "2" || c != 6 {
			t.Errorf("after the update: version %q with %d clusters, want 2 with 6", v, c)
		}
	}
	reject := func(v string) *discoverygrpc.DiscoveryRequest {
		if v == "3" {
			return &discoverygrpc.DiscoveryRequest{VersionInfo: "2", ErrorDetail: &status.Status{Message: "rejected"}}
		}
		return accept(v)
	}
	if err := update(load(t, oneProvider), reject); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("Update of a rejected version: %v, want the rejection", err)
	}
	if v, c := clusters(envoys[0]); v != "4" || c != 6 {
		t.Errorf("after the rejection: version %q with %d clusters, want the running config's 6 again as 4", v, c)
	}
	if n := testutil.ToFloat64(s.nacks); n != 2 {
		t.Errorf("switchyard_xds_rejected_total = %v after two Envoys rejected, want 2", n)
	}

	// A config the resources cannot be built for sets no snapshot.
	bad := New(t.Context(), func([]string, *routing.Router) (*envoy.Resources, error) { return nil, errors.New("no") }, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	bad.current = load(t, oneProvider)
	if err := bad.onRequest(1, &discoverygrpc.DiscoveryRequest{Node: envoys[0]}); err == nil {
		t.Error("a node whose resources cannot be built was accepted")
	}
	if err := s.onRequest(9, &discoverygrpc.DiscoveryRequest{Node: &corev3.Node{Id: "other"}}); err == nil {
		t.Error("a node without the envoy-config flags in its metadata was accepted")
	}
}
