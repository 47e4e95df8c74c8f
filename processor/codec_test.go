package processor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"
)

// TestCodecRoundTrip: what Codec encodes, the protobuf library decodes to
// the same message and vice versa, for the messages extproc sends and
// receives and for one without vtprotobuf code (health).
func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	bc := benchCases()[1]
	srv := newTestServer(t, nil)
	st := decisionStream(fullDuplex, bc)
	runDecision(t, srv, st)
	msgs := []proto.Message{
		headersMsg(fullDuplex, false, bc.headers...),
		bodyMsg(bc.body, true),
		&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING},
		&extprocv3.ProcessingResponse{},
	}
	for _, r := range st.sent {
		msgs = append(msgs, r)
	}
	for i, m := range msgs {
		data, err := Codec{}.Marshal(m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		wire := data.Materialize()
		data.Free()
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(wire) != len(want) {
			t.Errorf("message %d: %d bytes, the library encodes %d", i, len(wire), len(want))
		}
		got := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(wire, got); err != nil {
			t.Fatalf("message %d: library cannot decode: %v", i, err)
		}
		if diff := cmp.Diff(m, got, protocmp.Transform()); diff != "" {
			t.Errorf("message %d: round trip (-want +got):\n%s", i, diff)
		}
		// Codec decodes the library's encoding, whole or split across frames.
		half := len(want) / 2
		for _, in := range []mem.BufferSlice{
			{mem.SliceBuffer(want)},
			{mem.SliceBuffer(want[:half]), mem.SliceBuffer(want[half:])},
		} {
			back := m.ProtoReflect().New().Interface()
			if err := (Codec{}).Unmarshal(in, back); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if diff := cmp.Diff(m, back, protocmp.Transform()); diff != "" {
				t.Errorf("message %d: decoded (-want +got):\n%s", i, diff)
			}
		}
	}
}

// TestCodecRejectsNonProto: a value that is no message is an error, not a panic.
func TestCodecRejectsNonProto(t *testing.T) {
	t.Parallel()
	if _, err := (Codec{}).Marshal(struct{}{}); err == nil {
		t.Error("Marshal(struct{}) succeeded")
	}
	if err := (Codec{}).Unmarshal(nil, &struct{}{}); err == nil {
		t.Error("Unmarshal into struct{} succeeded")
	}
	var hv corev3.HeaderValue
	if err := (Codec{}).Unmarshal(nil, &hv); err != nil {
		t.Errorf("empty input: %v", err)
	}
}

// startGRPCWith serves srv with opts on a Unix socket and returns a client
// connected to it.
func startGRPCWith(b testing.TB, srv *Server, opts ...grpc.ServerOption) extprocv3.ExternalProcessorClient {
	b.Helper()
	dir, err := os.MkdirTemp("", "extproc-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn)
}

// BenchmarkServerOptions is BenchmarkFullDuplex/plain with each server
// option extproc may serve with, alone, to measure each on its own.
func BenchmarkServerOptions(b *testing.B) {
	variants := []struct {
		name string
		opts []grpc.ServerOption
	}{
		{"default", nil},
		{"vtcodec", []grpc.ServerOption{grpc.ForceServerCodecV2(Codec{})}},
		{"stream_workers", []grpc.ServerOption{grpc.NumStreamWorkers(2)}},
		{"shared_write_buffer", []grpc.ServerOption{grpc.SharedWriteBuffer(true)}},
		{"windows", []grpc.ServerOption{grpc.InitialWindowSize(1 << 20), grpc.InitialConnWindowSize(16 << 20)}},
	}
	bc := benchCases()[0]
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			client := startGRPCWith(b, newTestServer(b, nil), v.opts...)
			hdr := headersMsg(fullDuplex, false, bc.headers...)
			body := bodyMsg(bc.body, true)
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				fullDuplexRequest(b, ctx, client, hdr, body)
			}
			// CPU time (client and server) is steadier than wall time on a
			// shared machine: other processes' load delays, but is not billed.
			b.ReportMetric(float64(processCPU(b)-cpu0)/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is this process's user+system CPU time.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCodecMarshal compares encoding the answers extproc sends.
func BenchmarkCodecMarshal(b *testing.B) {
	srv := newTestServer(b, nil)
	st := decisionStream(fullDuplex, benchCases()[1])
	runDecision(b, srv, st)
	msg := st.sent[1]
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vtproto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := Codec{}.Marshal(msg)
			if err != nil {
				b.Fatal(err)
			}
			d.Free()
		}
	})
}

// TestDirtyPool: buffers come back at the length asked for, in the
// smallest class that holds it (powers of two to 64 KB, then steps of
// 64 KB), and go back to it; sizes past the classes are not pooled.
func TestDirtyPool(t *testing.T) {
	t.Parallel()
	p := &dirtyPool{}
	for _, tc := range []struct{ n, cap int }{{0, 256}, {1, 256}, {256, 256}, {257, 512}, {64 << 10, 64 << 10},
		{64<<10 + 1, 128 << 10}, {256 << 10, 256 << 10}, {256<<10 + 1, 320 << 10}, {1<<20 + 20, 1<<20 + 64<<10}, {16 << 20, 16 << 20}, {16<<20 + 1, 16<<20 + 1}} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", tc.n, len(*b), cap(*b), tc.cap)
		}
		p.Put(b)
	}
	odd := make([]byte, 300)
	p.Put(&odd) // not a class's size: dropped, not handed out short
	if b := p.Get(300); cap(*b) != 512 {
		t.Errorf("Get(300) after Put of a 300-byte buffer: cap %d, want 512", cap(*b))
	}
}
