package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"switchyard/envoy"
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
}
