// Package xds serves Envoy its listeners, routes and clusters over ADS
// (go-control-plane's server and snapshot cache), built by the envoy
// package from the running gateway config, so that a reload that adds a
// provider, changes its url or adds a fallback chain reaches Envoy without
// a restart.
//
// Each Envoy names, in its node metadata, the `extproc envoy-config` flags
// its bootstrap was printed with (envoy.NodeArgsKey); Envoys with the same
// flags share one snapshot. Every successful reload builds a new version
// of every snapshot before the new config serves requests.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"switchyard/envoy"
	"switchyard/routing"
)

// BuildFunc makes the resources of an Envoy printed with args, for the
// gateway config r.
type BuildFunc func(args []string, r *routing.Router) (*envoy.Resources, error)

// Server is the ADS server and the snapshots it serves.
type Server struct {
	build BuildFunc
	log   *slog.Logger
	cache cachev3.SnapshotCache
	ads   serverv3.Server
	nacks prometheus.Counter

	mu      sync.Mutex
	current *routing.Router
	version uint64
	nodes   map[string][]string // snapshot key -> the flags it is built with
}

// New makes a server whose snapshots are built with build from the config
// of the last Update, which must come before the server is registered.
func New(ctx context.Context, build BuildFunc, logger *slog.Logger, reg prometheus.Registerer) *Server {
	s := &Server{build: build, log: logger, nodes: map[string][]string{}}
	s.nacks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_xds_rejected_total",
		Help: "Resources Envoy rejected (NACK), by update: the running Envoy keeps its previous resources.",
	})
	reg.MustRegister(s.nacks)
	// ADS: a response waits until Envoy has named every resource it wants,
	// so the versions it acknowledges are consistent.
	s.cache = cachev3.NewSnapshotCache(true, argsHash{}, log.LoggerFuncs{
		DebugFunc: func(f string, a ...any) { logger.Debug("xds: " + fmt.Sprintf(f, a...)) },
		InfoFunc:  func(f string, a ...any) { logger.Debug("xds: " + fmt.Sprintf(f, a...)) },
		WarnFunc:  func(f string, a ...any) { logger.Warn("xds: " + fmt.Sprintf(f, a...)) },
		ErrorFunc: func(f string, a ...any) { logger.Error("xds: " + fmt.Sprintf(f, a...)) },
	})
	s.ads = serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{StreamRequestFunc: s.onRequest})
	return s
}

// Register adds the ADS service to gs, beside ext_proc.
func (s *Server) Register(gs *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, s.ads)
}

// Update builds a new version of every snapshot from r and sets them. If
// any cannot be built, none is set and the error says why.
func (s *Server) Update(ctx context.Context, r *routing.Router) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	version := s.version + 1
	snaps := map[string]*cachev3.Snapshot{}
	for key, args := range s.nodes {
		snap, err := s.snapshot(args, r, version)
		if err != nil {
			return err
		}
		snaps[key] = snap
	}
	for key, snap := range snaps {
		if err := s.cache.SetSnapshot(ctx, key, snap); err != nil {
			return fmt.Errorf("setting xds snapshot: %w", err)
		}
	}
	s.current, s.version = r, version
	if len(snaps) > 0 {
		s.log.Info("xds snapshot updated", "version", version, "envoys", len(snaps))
	}
	return nil
}

// onRequest sees every discovery request: it counts rejections and builds
// the snapshot of an Envoy it has not seen yet, before its first watch.
func (s *Server) onRequest(_ int64, req *discoverygrpc.DiscoveryRequest) error {
	if req.GetErrorDetail() != nil {
		s.nacks.Inc()
		s.log.Error("envoy rejected xds resources; it keeps its previous ones", "type", req.GetTypeUrl(),
			"version", req.GetVersionInfo(), "err", req.GetErrorDetail().GetMessage())
	}
	node := req.GetNode()
	if node == nil {
		return errors.New("xds request without a node")
	}
	args, err := nodeArgs(node)
	if err != nil {
		return err
	}
	key := argsKey(args)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nodes[key]; ok {
		return nil
	}
	if s.current == nil {
		return errors.New("xds request before the first config")
	}
	snap, err := s.snapshot(args, s.current, s.version)
	if err != nil {
		s.log.Error("building xds resources for a new envoy", "node", node.GetId(), "err", err)
		return err
	}
	if err := s.cache.SetSnapshot(context.Background(), key, snap); err != nil {
		return fmt.Errorf("setting xds snapshot: %w", err)
	}
	s.nodes[key] = args
	s.log.Info("envoy connected for xds", "node", node.GetId(), "version", s.version)
	return nil
}

func (s *Server) snapshot(args []string, r *routing.Router, version uint64) (*cachev3.Snapshot, error) {
	res, err := s.build(args, r)
	if err != nil {
		return nil, fmt.Errorf("building xds resources: %w", err)
	}
	var listeners, routes, clusters []types.Resource
	for _, l := range res.Listeners {
		listeners = append(listeners, l)
	}
	for _, rc := range res.Routes {
		routes = append(routes, rc)
	}
	for _, c := range res.Clusters {
		clusters = append(clusters, c)
	}
	snap, err := cachev3.NewSnapshot(strconv.FormatUint(version, 10), map[resource.Type][]types.Resource{
		resource.ListenerType: listeners,
		resource.RouteType:    routes,
		resource.ClusterType:  clusters,
	})
	if err != nil {
		return nil, fmt.Errorf("making xds snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("making xds snapshot: %w", err)
	}
	return snap, nil
}

// nodeArgs reads the flags an Envoy's bootstrap was printed with.
func nodeArgs(node *corev3.Node) ([]string, error) {
	v, ok := node.GetMetadata().GetFields()[envoy.NodeArgsKey]
	if !ok {
		return nil, fmt.Errorf("envoy node %q has no %s in its metadata: print its bootstrap with `extproc envoy-config -xds`", node.GetId(), envoy.NodeArgsKey)
	}
	var args []string
	for _, a := range v.GetListValue().GetValues() {
		args = append(args, a.GetStringValue())
	}
	return args, nil
}

func argsKey(args []string) string { return strings.Join(args, "\x00") }

// argsHash keys snapshots by the flags an Envoy was printed with.
type argsHash struct{}

func (argsHash) ID(node *corev3.Node) string {
	args, err := nodeArgs(node)
	if err != nil {
		return ""
	}
	return argsKey(args)
}

var _ cachev3.NodeHash = argsHash{}
