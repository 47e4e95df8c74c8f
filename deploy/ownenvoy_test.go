package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"switchyard/envoy"
	"switchyard/internal/launch"
)

const ownEnvoy = "../examples/own-envoy.yaml"

// TestOwnEnvoyIsValid runs `envoy --mode validate` on the example of an
// existing Envoy with Switchyard added.
func TestOwnEnvoyIsValid(t *testing.T) {
	t.Parallel()
	bin, err := launch.FindEnvoy("", envoy.Version)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--mode", "validate", "-c", ownEnvoy, "--log-level", "warn").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("OK")) {
		t.Errorf("envoy rejects %s: %v\n%s", ownEnvoy, err, tail(string(out), 8))
	}
}

// TestOwnEnvoyAddsWhatExtprocPrints keeps the added parts of the example
// what `extproc envoy-config -xds` prints for the flags in its node
// metadata: the node, the ext_proc and xDS clusters, the ADS sources and
// the runtime layer.
func TestOwnEnvoyAddsWhatExtprocPrints(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(ownEnvoy)
	if err != nil {
		t.Fatal(err)
	}
	args := bootstrapArgs(t, example)
	if !strings.Contains(string(example), "extproc envoy-config "+strings.Join(args, " ")+"\n") {
		t.Errorf("the command in %s's comment is not the one in its node metadata: %q", ownEnvoy, args)
	}
	printed := decodeBootstrap(t, extproc(t, filepath.Dir(ownEnvoy), append([]string{"envoy-config"}, args...)...))
	own := decodeBootstrap(t, example)

	if diff := cmp.Diff(printed["node"], own["node"]); diff != "" {
		t.Errorf("node (-printed +%s):\n%s", ownEnvoy, diff)
	}
	for _, key := range []string{"dynamic_resources", "layered_runtime"} {
		if diff := cmp.Diff(printed[key], own[key]); diff != "" {
			t.Errorf("%s (-printed +%s):\n%s", key, ownEnvoy, diff)
		}
	}
	ownClusters := clustersByName(t, own)
	for name, c := range clustersByName(t, printed) {
		if diff := cmp.Diff(c, ownClusters[name]); diff != "" {
			t.Errorf("cluster %s (-printed +%s):\n%s", name, ownEnvoy, diff)
		}
	}
	if _, ok := ownClusters["backend"]; !ok || len(ownClusters) < 3 {
		t.Errorf("%s should keep an existing cluster beside Switchyard's: %v", ownEnvoy, ownClusters)
	}
}

func decodeBootstrap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func clustersByName(t *testing.T, bootstrap map[string]any) map[string]any {
	t.Helper()
	static, _ := bootstrap["static_resources"].(map[string]any)
	list, _ := static["clusters"].([]any)
	m := map[string]any{}
	for _, c := range list {
		name := fmt.Sprint(c.(map[string]any)["name"])
		m[name] = c
	}
	return m
}

// TestOwnEnvoyServesBesideItsListener starts the example's Envoy (ports 0,
// the socket in a temporary directory) beside `extproc -xds` with the
// example gateway config: Envoy must get Switchyard's listener over ADS,
// keep its own, and answer an agent's request through extproc.
func TestOwnEnvoyServesBesideItsListener(t *testing.T) {
	t.Parallel()
	bin, err := launch.FindEnvoy("", envoy.Version)
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(ownEnvoy)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "extproc.sock")
	cfg := strings.NewReplacer("/run/switchyard/extproc.sock", sock, "port_value: 9901", "port_value: 0",
		"port_value: 8080", "port_value: 0", `- "10000"`, `- "0"`).Replace(string(example))
	write(t, filepath.Join(dir, "envoy.yaml"), cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrFile := filepath.Join(dir, "extproc.addr")
	ext := start(t, extprocBin, []string{"-xds", "-config", "../examples/switchyard.yaml", "-grpc", "unix:" + sock, "-metrics", "", "-addr-file", addrFile})
	if _, err := launch.WaitExtproc(ctx, addrFile, ext); err != nil {
		t.Fatal(err)
	}
	adminFile := filepath.Join(dir, "admin")
	env := start(t, bin, append([]string{"-c", filepath.Join(dir, "envoy.yaml")}, launch.EnvoyFlags(adminFile)...))
	admin, err := launch.WaitEnvoy(ctx, adminFile, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := launch.EnvoyListener(ctx, admin, "existing"); err != nil {
		t.Error(err)
	}
	listener, err := launch.EnvoyListener(ctx, admin, "switchyard")
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := post(t, "http://"+listener+"/v1/chat/completions", `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`)
	if status != http.StatusNotFound || !strings.Contains(body, "model_not_found") {
		t.Errorf("a request to Switchyard's listener: %d %s, want extproc's 404 model_not_found", status, body)
	}
}
