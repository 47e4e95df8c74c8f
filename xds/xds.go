// Package xds serves Envoy its listeners, routes and clusters over ADS
// (go-control-plane's server and snapshot cache), built by the envoy
// package from the running gateway config, so that a reload that adds a
// provider, changes its url or adds a fallback chain reaches Envoy without
// a restart.
//
// Each Envoy names, in its node metadata, the `extproc envoy-config` flags
// its bootstrap was printed with (envoy.NodeArgsKey); Envoys with the same
// flags share one snapshot. A reload builds a new version of every
// snapshot and waits until every connected Envoy has accepted it before the
// new config serves requests; a version an Envoy rejects fails the reload.
//
// What a reload removes (a provider's clusters, a retry route entry) stays
// in the snapshots for a grace period: requests the older config planned
// may still be on their way to Envoy's router, or about to retry on an
// attempt cluster, and must not meet a cluster Envoy has dropped. A later
// version removes them, and Envoy drains them.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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
// gateway config r, keeping what the older configs (newest first) need
// that r does not have.
type BuildFunc func(args []string, r *routing.Router, older []*routing.Router) (*envoy.Resources, error)

// DefaultRemovalGrace is how long what a reload removes stays in Envoy: it
// outlasts a request's planning and the fallback attempts it may still
// make (each bounded by its route's first_byte_timeout).
const DefaultRemovalGrace = 60 * time.Second

// AckTimeout bounds how long Update waits for every connected Envoy to
// accept a new version.
const AckTimeout = 5 * time.Second

// Server is the ADS server and the snapshots it serves.
type Server struct {
	build BuildFunc
	log   *slog.Logger
	cache cachev3.SnapshotCache
	ads   serverv3.Server
	nacks prometheus.Counter
	grace time.Duration

	// update serializes Update; mu guards what follows. Update does not
	// hold mu while it waits for Envoy, whose answers need it.
	update  sync.Mutex
	mu      sync.Mutex
	current *routing.Router
	// retained are older configs whose resources Envoy keeps until their
	// grace period ends, newest first; expire drops them.
	retained []retainedConfig
	expiry   *time.Timer
	version  uint64
	nodes    map[string][]string // snapshot key -> the flags it is built with
	streams  map[int64]*stream
	// changed is closed, and replaced, whenever a stream acknowledges,
	// rejects or closes.
	changed chan struct{}
}

// stream is what one ADS stream has told the server.
type stream struct {
	key      string
	acked    map[string]string // type URL -> last version accepted
	sent     map[string]string // response nonce -> version, until answered
	rejected map[string]string // version -> why Envoy rejected it
}

// retainedConfig is a config a reload replaced, kept in the snapshots
// until its grace period ends.
type retainedConfig struct {
	r     *routing.Router
	until time.Time
}

// New makes a server whose snapshots are built with build from the config
// of the last Update, which must come before the server is registered.
// What a reload removes stays in Envoy for grace (0: removed at once).
func New(ctx context.Context, build BuildFunc, grace time.Duration, logger *slog.Logger, reg prometheus.Registerer) *Server {
	s := &Server{build: build, log: logger, grace: grace, nodes: map[string][]string{}, streams: map[int64]*stream{}, changed: make(chan struct{})}
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
	s.ads = serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: s.onRequest,
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
			s.onResponse(id, resp)
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) {
			s.mu.Lock()
			delete(s.streams, id)
			s.notifyLocked()
			s.mu.Unlock()
		},
	})
	return s
}

// Register adds the ADS service to gs, beside ext_proc.
func (s *Server) Register(gs *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, s.ads)
}

// Update builds a new version of every snapshot from r, sets them, and
// waits until every connected Envoy has accepted it, so that r serves
// requests only once Envoy has its clusters. If a snapshot cannot be
// built, nothing changes; if an Envoy rejects it or does not answer within
// AckTimeout, the resources of the running config are set again (under a
// newer version) and the error says why: the reload must be refused. A
// config is built alone too, as it will be when the grace ends. A
// provider or MCP server of r whose endpoint moved gets a cluster of its
// own (routing.Router.MoveClusters), so r must not serve yet. The
// new version keeps what the running config had and r lacks; it goes once
// the grace period has passed (expire).
func (s *Server) Update(ctx context.Context, r *routing.Router) error {
	s.update.Lock()
	defer s.update.Unlock()
	s.mu.Lock()
	// r's clusters are named against every config Envoy still holds,
	// before Envoy learns them.
	older := s.olderLocked(s.current)
	r.MoveClusters(older...)
	version := s.version + 1
	// r alone first: what only older configs have goes once their grace
	// ends, and r must build without it then (a cluster an Envoy's flags
	// name among it).
	if _, err := s.snapshots(r, nil, version); err != nil {
		s.mu.Unlock()
		return err
	}
	snaps, err := s.snapshots(r, older, version)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.setLocked(ctx, snaps); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()

	if err := s.waitAccepted(ctx, version); err != nil {
		if rerr := s.restore(ctx, version+1); rerr != nil {
			// Not a notAccepted of its own: the reload's outcome is err's.
			return fmt.Errorf("%w; restoring the running config: %v", err, rerr)
		}
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != nil {
		s.retained = slices.Insert(s.retained, 0, retainedConfig{r: s.current, until: time.Now().Add(s.grace)})
		s.scheduleExpiryLocked()
	}
	s.current, s.version = r, version
	// An Envoy that connected while this one waited got the old config.
	// r serves from here on, whatever becomes of that Envoy: its failure
	// is logged, not the reload's.
	late, err := s.snapshots(r, s.olderLocked(nil), version)
	if err == nil {
		for key := range snaps {
			delete(late, key)
		}
		err = s.setLocked(ctx, late)
	}
	if err != nil {
		s.log.Error("xds resources for an envoy that connected during the update", "version", version, "err", err)
	}
	if len(s.nodes) > 0 {
		s.log.Info("xds snapshot accepted", "version", version, "envoys", len(s.nodes))
	}
	return nil
}

// restore sets the running config's resources again, under version, and
// waits until Envoy has accepted them. Envoy applies the clusters of a
// version it rejects that it could build (a changed url among them), so
// the running config is not what it serves until then.
func (s *Server) restore(ctx context.Context, version uint64) error {
	s.mu.Lock()
	back, err := s.snapshots(s.current, s.olderLocked(nil), version)
	if err == nil {
		err = s.setLocked(ctx, back)
	}
	s.version = version
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.waitAccepted(ctx, version)
}

// olderLocked lists the configs whose resources the snapshots keep beside
// the newest: the retained ones, after first (when not nil). s.mu is held.
func (s *Server) olderLocked(first *routing.Router) []*routing.Router {
	var older []*routing.Router
	if first != nil {
		older = append(older, first)
	}
	for _, rc := range s.retained {
		older = append(older, rc.r)
	}
	return older
}

// scheduleExpiryLocked arms the timer for the first retained config's end
// of grace. s.mu is held.
func (s *Server) scheduleExpiryLocked() {
	if len(s.retained) == 0 {
		return
	}
	first := s.retained[0].until
	for _, rc := range s.retained {
		if rc.until.Before(first) {
			first = rc.until
		}
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.expiry = time.AfterFunc(time.Until(first), s.expire)
}

// expire drops the retained configs whose grace period has ended and sets
// snapshots without what only they had: Envoy drains those clusters.
func (s *Server) expire() {
	s.update.Lock()
	defer s.update.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	kept := s.retained[:0]
	for _, rc := range s.retained {
		if rc.until.After(now) {
			kept = append(kept, rc)
		}
	}
	if len(kept) == len(s.retained) {
		s.scheduleExpiryLocked()
		return
	}
	s.retained = kept
	s.scheduleExpiryLocked()
	version := s.version + 1
	snaps, err := s.snapshots(s.current, s.olderLocked(nil), version)
	if err == nil {
		err = s.setLocked(context.Background(), snaps)
	}
	if err != nil {
		s.log.Error("removing the xds resources of older configs", "err", err)
		return
	}
	s.version = version
	s.log.Info("xds resources of older configs removed", "version", version, "retained", len(kept))
}

// snapshots builds a snapshot of r, keeping what older need, for every
// known Envoy. s.mu is held.
func (s *Server) snapshots(r *routing.Router, older []*routing.Router, version uint64) (map[string]*cachev3.Snapshot, error) {
	snaps := map[string]*cachev3.Snapshot{}
	if r == nil {
		return snaps, nil
	}
	for key, args := range s.nodes {
		snap, err := s.snapshot(args, r, older, version)
		if err != nil {
			return nil, err
		}
		snaps[key] = snap
	}
	return snaps, nil
}

func (s *Server) setLocked(ctx context.Context, snaps map[string]*cachev3.Snapshot) error {
	for key, snap := range snaps {
		if err := s.cache.SetSnapshot(ctx, key, snap); err != nil {
			return fmt.Errorf("setting xds snapshot: %w", err)
		}
	}
	return nil
}

// waitAccepted waits until every open stream has accepted version for
// each type it asked for, or one rejects something.
func (s *Server) waitAccepted(ctx context.Context, version uint64) error {
	want := strconv.FormatUint(version, 10)
	timeout := time.NewTimer(AckTimeout)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		done := true
		for _, st := range s.streams {
			if reason, ok := st.rejected[want]; ok {
				s.mu.Unlock()
				return fmt.Errorf("envoy rejected xds version %d: %s", version, reason)
			}
			for _, v := range st.acked {
				if v != want {
					done = false
				}
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-timeout.C:
			return notAccepted{version}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// onResponse records the version of each response about to be sent, by
// nonce: a NACK names the response it rejects by its nonce.
func (s *Server) onResponse(id int64, resp *discoverygrpc.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[id]; st != nil {
		st.sent[resp.GetNonce()] = resp.GetVersionInfo()
	}
}

// onRequest sees every discovery request: it records what the stream
// accepted or rejected, and builds the snapshot of an Envoy it has not
// seen yet, before its first watch.
func (s *Server) onRequest(id int64, req *discoverygrpc.DiscoveryRequest) error {
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
	st := s.streams[id]
	if st == nil {
		st = &stream{key: key, acked: map[string]string{}, sent: map[string]string{}, rejected: map[string]string{}}
		s.streams[id] = st
	}
	if d := req.GetErrorDetail(); d != nil {
		// The nonce names the response rejected; VersionInfo is the last
		// version Envoy accepted.
		s.nacks.Inc()
		version := st.sent[req.GetResponseNonce()]
		st.rejected[version] = d.GetMessage()
		s.log.Error("envoy rejected xds resources; it keeps its previous ones", "type", req.GetTypeUrl(),
			"version", version, "err", d.GetMessage())
	} else {
		// The first request of a type (no version yet) counts as wanting
		// it: "" is never the version waited for.
		st.acked[req.GetTypeUrl()] = req.GetVersionInfo()
	}
	delete(st.sent, req.GetResponseNonce())
	s.notifyLocked()
	if _, ok := s.nodes[key]; ok {
		return nil
	}
	if s.current == nil {
		return errors.New("xds request before the first config")
	}
	snap, err := s.snapshot(args, s.current, s.olderLocked(nil), s.version)
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

func (s *Server) snapshot(args []string, r *routing.Router, older []*routing.Router, version uint64) (*cachev3.Snapshot, error) {
	res, err := s.build(args, r, older)
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

// notAccepted is a version some Envoy did not answer within AckTimeout: a
// slow or restarting Envoy, which may accept the same config later, unlike
// one that rejected it. The reload's watch tries it again (Temporary).
type notAccepted struct{ version uint64 }

func (e notAccepted) Error() string {
	return fmt.Sprintf("envoy did not accept xds version %d within %s", e.version, AckTimeout)
}

// Temporary reports that the same config may be accepted later.
func (notAccepted) Temporary() bool { return true }
