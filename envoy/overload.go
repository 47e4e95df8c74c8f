package envoy

import (
	"time"

	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
)

// The overload manager's resource and the pressures it acts at.
const (
	heapMonitor = "envoy.resource_monitors.fixed_heap"
	// From refuseAt of the bound new requests are refused and freed memory
	// goes back to the system; from shedAt uploads in progress are refused.
	refuseAt   = 0.90
	shedAt     = 0.95
	resetAllAt = 0.99
	// overloadRefresh is how often Envoy reads its heap: what arrives
	// between two reads is how far a flood can pass the bound.
	overloadRefresh = 100 * time.Millisecond
	// trackStreamsFrom is the smallest stream buffer (a power of two) that
	// the HTTP/2 reset action weighs: 256 KiB, an agent's body an hour in.
	trackStreamsFrom = 18
	// overloadDetails are the response code details of every reply Envoy
	// makes when it refuses a request for want of memory: 503 from its
	// connection manager, 500 from its HTTP/1 codec; both reach the client
	// as 503 overloaded in the API's shape (localReplies).
	overloadDetails = "overload"
	// minHeapBytes is the least bound that leaves Envoy room to start.
	minHeapBytes = 32 << 20
)

// overloadManager bounds Envoy's heap at Options.MaxHeapBytes (nil: no
// bound), so that a flood of big bodies, which Envoy holds until the
// gateway has decided, cannot grow it past the container's memory. From
// refuseAt of the bound Envoy refuses new requests (503 overloaded in the
// called API's shape) and hands freed memory back; from shedAt an HTTP/1
// upload in progress is refused the same way when its next bytes arrive
// (the connection closes) and HTTP/2 connections are told to go away; an
// HTTP/1 request whose body has arrived goes on. HTTP/2 streams are reset
// from shedAt, those holding the most memory first, and at resetAllAt any
// holding 2^trackStreamsFrom bytes or more, a body that has arrived too:
// Envoy's only way to take memory back from an HTTP/2 stream.
func (d *settings) overloadManager() *overloadv3.OverloadManager {
	if d.maxHeapBytes == 0 {
		return nil
	}
	at := func(p float64) []*overloadv3.Trigger {
		return []*overloadv3.Trigger{{Name: heapMonitor, TriggerOneof: &overloadv3.Trigger_Threshold{
			Threshold: &overloadv3.ThresholdTrigger{Value: p}}}}
	}
	action := func(name string, p float64) *overloadv3.OverloadAction {
		return &overloadv3.OverloadAction{Name: "envoy.overload_actions." + name, Triggers: at(p)}
	}
	// Resetting streams scales from shedAt to resetAllAt: the streams
	// holding the most memory first, every one holding trackStreamsFrom or
	// more at resetAllAt (a threshold would reset them all at once).
	reset := &overloadv3.OverloadAction{Name: "envoy.overload_actions.reset_high_memory_stream", Triggers: []*overloadv3.Trigger{{
		Name: heapMonitor, TriggerOneof: &overloadv3.Trigger_Scaled{Scaled: &overloadv3.ScaledTrigger{ScalingThreshold: shedAt, SaturationThreshold: resetAllAt}},
	}}}
	shed := func(name string, p float64) *overloadv3.LoadShedPoint {
		return &overloadv3.LoadShedPoint{Name: "envoy.load_shed_points." + name, Triggers: at(p)}
	}
	return &overloadv3.OverloadManager{
		RefreshInterval: duration(overloadRefresh),
		ResourceMonitors: []*overloadv3.ResourceMonitor{{Name: heapMonitor, ConfigType: &overloadv3.ResourceMonitor_TypedConfig{
			TypedConfig: typed(&fixedheapv3.FixedHeapConfig{MaxHeapSizeBytes: uint64(d.maxHeapBytes)})}}},
		Actions: []*overloadv3.OverloadAction{
			action("shrink_heap", refuseAt),
			action("stop_accepting_requests", refuseAt),
			reset,
		},
		LoadshedPoints: []*overloadv3.LoadShedPoint{
			shed("http1_server_abort_dispatch", shedAt),
			shed("http2_server_go_away_on_dispatch", shedAt),
		},
		BufferFactoryConfig: &overloadv3.BufferFactoryConfig{MinimumAccountToTrackPowerOfTwo: trackStreamsFrom},
	}
}
