package deploy

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The line scripts/run.sh appends to the config for `make run-global`,
// with the service's address in the cluster.
const rateLimitLine = "\nrate_limit_service: {address: \"ratelimit:8081\", failure_mode: allow}\n"

// TestGlobalLimitsOverlay checks the overlay against `make run-global`: the
// base's config with rate_limit_service appended, pointing at the
// ratelimit Service; the service's config as extproc prints it; the
// service started with run.sh's environment; Redis where it looks.
func TestGlobalLimitsOverlay(t *testing.T) {
	t.Parallel()
	base, err := os.ReadFile(filepath.Join(baseDir, "switchyard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := os.ReadFile(filepath.Join(overlayDir, "switchyard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(overlay) != string(base)+rateLimitLine {
		t.Errorf("%s/switchyard.yaml must be the base's config with %q appended", overlayDir, rateLimitLine)
	}
	checkPrinted(t, filepath.Join(overlayDir, "ratelimit-config.yaml"), extproc(t, overlayDir, "ratelimit-config", "-config", "switchyard.yaml"))

	o := mustRender(t, overlayDir)
	if got := o.configMaps["switchyard-config"].Data["switchyard.yaml"]; got != string(overlay) {
		t.Error("the overlay's pod does not get the overlay's config")
	}
	var cfg struct {
		RateLimitService struct {
			Address string `json:"address"`
		} `json:"rate_limit_service"`
	}
	if err := yaml.Unmarshal(overlay, &cfg); err != nil {
		t.Fatal(err)
	}
	checkServiceAddress(t, o, "ratelimit", cfg.RateLimitService.Address)
	// A change of service takes a restart: the pod template names it.
	if got := o.deployments["switchyard"].Spec.Template.Annotations["switchyard/rate-limit-service"]; got != cfg.RateLimitService.Address {
		t.Errorf("the switchyard pods are annotated with rate-limit service %q, the config names %q", got, cfg.RateLimitService.Address)
	}

	d := o.deployments["ratelimit"]
	if d == nil || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("no ratelimit Deployment with one container")
	}
	rl := &d.Spec.Template.Spec.Containers[0]
	var names []string
	for _, e := range rl.Env {
		names = append(names, e.Name)
	}
	// run.sh serves gRPC on a Unix socket; in a cluster it is a port.
	var want []string
	for _, n := range readRunSh(t).ratelimitEnv {
		want = append(want, strings.Replace(n, "GRPC_UDS", "GRPC_PORT", 1))
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("ratelimit's environment %q, scripts/run.sh's %q (GRPC_UDS as GRPC_PORT)", names, want)
	}
	checkPort(t, rl, "grpc", env(rl, "GRPC_PORT"))
	checkServiceAddress(t, o, "redis", env(rl, "REDIS_URL"))
	configDir := env(rl, "RUNTIME_ROOT") + "/" + env(rl, "RUNTIME_SUBDIRECTORY") + "/config"
	v := mountedVolume(t, &d.Spec.Template.Spec, rl, configDir)
	cm := configMapByPrefix(t, o, "switchyard-ratelimit-")
	if v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("ratelimit reads %s from volume %s, not the ConfigMap %s", configDir, v.Name, cm.Name)
	}
	printed, err := os.ReadFile(filepath.Join(overlayDir, "ratelimit-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["config.yaml"] != string(printed) {
		t.Error("the ConfigMap does not hold ratelimit-config.yaml as config.yaml")
	}
}

// checkServiceAddress checks that host:port is the Service name's port,
// and that the port reaches a port its pods declare.
func checkServiceAddress(t *testing.T, o *objects, name, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != name {
		t.Errorf("address %q: want the Service %s", addr, name)
		return
	}
	s := o.services[name]
	if s == nil {
		t.Errorf("no Service %s", name)
		return
	}
	for _, sp := range s.Spec.Ports {
		if strconv.Itoa(int(sp.Port)) == port {
			if !declaresPort(o.deployments[name], sp.TargetPort.String()) {
				t.Errorf("Service %s port %s targets %s, which its pods do not declare", name, port, sp.TargetPort.String())
			}
			return
		}
	}
	t.Errorf("Service %s has no port %s", name, port)
}
