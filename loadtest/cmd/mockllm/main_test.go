package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/loadtest/mockllm"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    mockllm.Options
		wantErr string
	}{
		{name: "defaults", want: mockllm.Options{Latency: 60 * time.Millisecond, StreamChunks: 10, ChunkInterval: 5 * time.Millisecond}},
		{name: "zero latency means none", args: []string{"-latency", "0", "-interval", "0"}, want: mockllm.Options{Latency: -1, StreamChunks: 10, ChunkInterval: -1}},
		{name: "all set", args: []string{"-latency", "1s", "-chunks", "3", "-interval", "2ms"}, want: mockllm.Options{Latency: time.Second, StreamChunks: 3, ChunkInterval: 2 * time.Millisecond}},
		{name: "bad values joined", args: []string{"-latency", "-1s", "-chunks", "0"}, wantErr: "-latency must not be negative\n-chunks must be at least 1"},
		{name: "extra args", args: []string{"x"}, wantErr: `unexpected arguments ["x"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, f.options()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
