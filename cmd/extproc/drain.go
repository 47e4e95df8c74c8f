package main

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// checkedHealth is the gRPC health service, remembering when it was last
// asked: whether an Envoy health-checks this instance and so will stop
// sending it streams once it answers NOT_SERVING.
type checkedHealth struct {
	*health.Server
	last atomic.Int64 // unix nanoseconds of the last Check; 0: never
}

func (h *checkedHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.last.Store(time.Now().UnixNano())
	return h.Server.Check(ctx, req)
}

// checkedWithin reports whether a Check came within d.
func (h *checkedHealth) checkedWithin(d time.Duration) bool {
	last := h.last.Load()
	return last != 0 && time.Since(time.Unix(0, last)) <= d
}

// drainPoll is how often the quiet wait looks at the streams opened.
const drainPoll = 50 * time.Millisecond

// waitQuiet returns once opened has not changed for quiet, or at limit;
// it reports whether the quiet came.
func waitQuiet(opened func() uint64, quiet, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	last, lastAt := opened(), time.Now()
	for {
		now := time.Now()
		if now.Sub(lastAt) >= quiet {
			return true
		}
		if now.After(deadline) {
			return false
		}
		time.Sleep(drainPoll)
		if n := opened(); n != last {
			last, lastAt = n, time.Now()
		}
	}
}
