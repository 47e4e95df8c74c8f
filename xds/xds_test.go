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
func build(args []string, r *routing.Router, older []*routing.Router) (*envoy.Resources, error) {
	if len(args) != 1 {
		return nil, errors.New("want one argument, the extproc address")
	}
	options := func(r *routing.Router) envoy.Options {
		return envoy.Options{ExtProc: args[0], Providers: r.Providers(), RetryRoutes: r.RetryRoutes(), MaxBodyBytes: r.MaxBodyBytes()}
	}
	var olds []envoy.Options
	for _, o := range older {
		olds = append(olds, options(o))
	}
	return envoy.Build(options(r).Retaining(olds...))
}

// TestSnapshotsFollowReloads: an Envoy gets the snapshot of the running
// config when it first asks; Update brings a new version with the new
// clusters and returns once every Envoy has accepted it; Envoys printed
// with other flags get their own snapshot; a rejected version is refused
// and the running config's resources are served again.
func TestSnapshotsFollowReloads(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(t.Context(), build, time.Hour, slog.New(slog.DiscardHandler), reg)
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
				s.onResponse(int64(i), &discoverygrpc.DiscoveryResponse{Nonce: "n" + v, VersionInfo: v})
				req := answer(v)
				req.Node, req.TypeUrl, req.ResponseNonce = n, resource.ClusterType, "n"+v
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
	bad := New(t.Context(), func([]string, *routing.Router, []*routing.Router) (*envoy.Resources, error) {
		return nil, errors.New("no")
	}, 0, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	bad.current = load(t, oneProvider)
	if err := bad.onRequest(1, &discoverygrpc.DiscoveryRequest{Node: envoys[0]}); err == nil {
		t.Error("a node whose resources cannot be built was accepted")
	}
	if err := s.onRequest(9, &discoverygrpc.DiscoveryRequest{Node: &corev3.Node{Id: "other"}}); err == nil {
		t.Error("a node without the envoy-config flags in its metadata was accepted")
	}
}

// TestRemovedClustersStayForGrace: a reload that removes a provider keeps
// its clusters in the version it pushes (requests the older config planned
// may still reach them), and a later version, once the grace period has
// passed, removes them.
func TestRemovedClustersStayForGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	s := New(t.Context(), build, grace, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err := s.Update(t.Context(), load(t, twoProviders)); err != nil {
		t.Fatal(err)
	}
	n := node(t, "unix:/tmp/a.sock")
	if err := s.onRequest(1, &discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	clusters := func() (string, int) {
		snap, err := s.cache.GetSnapshot(argsHash{}.ID(n))
		if err != nil {
			t.Fatal(err)
		}
		return snap.GetVersion(resource.ClusterType), len(snap.GetResources(resource.ClusterType))
	}
	done := make(chan error, 1)
	go func() { done <- s.Update(t.Context(), load(t, oneProvider)) }()
	for acked := false; !acked; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			acked = true
		case <-time.After(time.Millisecond):
			if v, _ := clusters(); v == "2" {
				_ = s.onRequest(1, &discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType, VersionInfo: v})
			}
		}
	}
	updated := time.Now()
	if v, c := clusters(); v != "2" || c != 6 {
		t.Errorf("the reload removing b: version %q with %d clusters, want 2 with b's still there (6)", v, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, c := clusters()
		if v == "3" && c == 3 {
			if since := time.Since(updated); since < grace/2 {
				t.Errorf("b's clusters removed %v after the reload, before the grace period of %v", since, grace)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("version %q with %d clusters 5 s after the reload, want 3 without b's (3)", v, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReloadRemovingAFlagsCluster: a reload that removes the provider an
// Envoy's flags name (-baseline-listen with -direct-cluster) is refused at
// once, not accepted while the grace period keeps the cluster and broken
// when it ends.
func TestReloadRemovingAFlagsCluster(t *testing.T) {
	direct := func(args []string, r *routing.Router, older []*routing.Router) (*envoy.Resources, error) {
		options := func(r *routing.Router) envoy.Options {
			return envoy.Options{ExtProc: args[0], BaselinePort: 10001, BaselineCluster: args[1], Providers: r.Providers(), MaxBodyBytes: r.MaxBodyBytes()}
		}
		var olds []envoy.Options
		for _, o := range older {
			olds = append(olds, options(o))
		}
		return envoy.Build(options(r).Retaining(olds...))
	}
	s := New(t.Context(), direct, time.Hour, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err := s.Update(t.Context(), load(t, twoProviders)); err != nil {
		t.Fatal(err)
	}
	if err := s.onRequest(1, &discoverygrpc.DiscoveryRequest{Node: node(t, "unix:/tmp/a.sock", "b"), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	withoutB := "providers:\n  - {name: a, url: 'http://127.0.0.1:1', schema: openai}\nroutes:\n  - {model: m, provider: a}\n"
	if err := s.Update(t.Context(), load(t, withoutB)); err == nil || !strings.Contains(err.Error(), `cluster "b"`) {
		t.Errorf("Update without the flags' cluster b: %v, want it refused", err)
	}
	if s.current == nil || len(s.current.Providers()) != 2 {
		t.Error("the refused config became the running one")
	}
}

// TestUpdateNamesClustersAgainstHeldConfigs: a provider removed, then added
// again at another url while the config that had it is held for its grace,
// gets a cluster of its own: the held one still serves that config's
// requests, with its key, at the old url.
func TestUpdateNamesClustersAgainstHeldConfigs(t *testing.T) {
	s := New(t.Context(), build, time.Hour, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	withoutA := "providers:\n  - {name: b, url: 'http://127.0.0.1:2', schema: openai}\nroutes:\n  - {model: m, provider: b}\n"
	aElsewhere := "providers:\n  - {name: a, url: 'http://127.0.0.1:3', schema: openai}\nroutes:\n  - {model: m, provider: a}\n"
	for _, yaml := range []string{oneProvider, withoutA} {
		if err := s.Update(t.Context(), load(t, yaml)); err != nil {
			t.Fatal(err)
		}
	}
	again := load(t, aElsewhere)
	if err := s.Update(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if got := again.Providers()[0].Cluster; !strings.HasPrefix(got, "a~") {
		t.Errorf("a added again at another url within the grace: cluster %q, want a~ and its endpoint's", got)
	}
}
