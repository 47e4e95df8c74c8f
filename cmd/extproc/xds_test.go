package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"switchyard/envoy"
	"switchyard/routing"
)

// TestComposeBootstrapIsPrinted: envoy/compose.yaml, which docker compose
// mounts, is what `extproc envoy-config` prints with the flags in its node
// metadata (the config path aside, which is the container's), and extproc
// builds that Envoy's listeners (the gateway's and the baseline's) from
// those flags.
func TestComposeBootstrapIsPrinted(t *testing.T) {
	const file, config = "../../envoy/compose.yaml", "../../examples/compose.switchyard.yaml"
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var bs struct {
		Node struct {
			Metadata map[string][]string `yaml:"metadata"`
		} `yaml:"node"`
	}
	if err := yaml.Unmarshal(want, &bs); err != nil {
		t.Fatal(err)
	}
	args := bs.Node.Metadata[envoy.NodeArgsKey]
	i := slices.Index(args, "-config")
	if i < 0 || i+1 >= len(args) || !slices.Contains(args, "-xds") {
		t.Fatalf("%s: node metadata flags %q lack -config or -xds", file, args)
	}
	local := slices.Clone(args)
	local[i+1] = config
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"envoy-config"}, local...), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	got := bytes.ReplaceAll(out.Bytes(), []byte(config), []byte(args[i+1]))
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what `extproc envoy-config %q` prints: run `go test ./envoy -update`", file, args)
	}
	res, err := buildXDS(args, mustLoad(t, config), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Listeners) != 2 {
		t.Errorf("extproc builds %d listeners for the compose Envoy, want 2 (gateway and baseline)", len(res.Listeners))
	}
	// The compose Envoy is the Dockerfile's envoy image, with the body module.
	for _, l := range res.Listeners {
		text := protojson.Format(l)
		if has := strings.Contains(text, envoy.ImageBodyModule); has != (l.GetName() != "baseline") {
			t.Errorf("listener %s loads the image's body module: %v", l.GetName(), has)
		}
	}
}

// acceptAll stands for Envoy on ADS accepting every version.
type acceptAll struct{ updates int }

func (a *acceptAll) Update(context.Context, *routing.Router) error { a.updates++; return nil }

// TestBodyLimitReloadsOverXDS: with Envoy on ADS a max_body_bytes change
// reloads live, up to the limit extproc's gRPC server was sized for at
// start; past it the reload needs a restart.
func TestBodyLimitReloadsOverXDS(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	write := func(limit int64) {
		t.Helper()
		if err := os.WriteFile(path, []byte(fmt.Sprintf("max_body_bytes: %d\n%s", limit, minimalConfig)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1 << 20)
	envoy := &acceptAll{}
	h, err := newConfigHolder(path, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), envoy, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, limit := range []int64{5, xdsBodyCeiling} {
		write(limit)
		if err := h.Reload(); err != nil || h.Current().MaxBodyBytes() != limit {
			t.Errorf("max_body_bytes %d over xDS: %v, limit %d", limit, err, h.Current().MaxBodyBytes())
		}
	}
	write(xdsBodyCeiling + 1)
	if err := h.Reload(); err == nil || !strings.Contains(err.Error(), "max_body_bytes") {
		t.Errorf("max_body_bytes past the gRPC server's limit reloaded: %v", err)
	}
	if envoy.updates != 3 {
		t.Errorf("%d updates sent to Envoy, want 3 (the first load and two reloads)", envoy.updates)
	}
	if got := grpcMaxMsg(maxBodyCeiling(1<<20, true)); got < xdsBodyCeiling {
		t.Errorf("the gRPC message limit with -xds is %d, under the body ceiling %d", got, xdsBodyCeiling)
	}
}
