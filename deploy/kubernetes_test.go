package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"switchyard/envoy"
	"switchyard/internal/testkit"
)

const (
	baseDir    = "kubernetes/base"
	overlayDir = "kubernetes/overlays/global-limits"
	// bootstrapHeader opens the committed bootstrap, before what extproc
	// prints.
	bootstrapHeader = "# deploy/kubernetes/base/envoy.yaml: Envoy's bootstrap in the pod; `go test ./deploy -update` prints it again.\n"
)

// Flags the pod passes that `make run` does not, and why. Every flag
// scripts/run.sh passes must be in the pod too.
var (
	// -xds: the pod's Envoy takes its resources over ADS, so a config
	// change is live; -drain-timeout: sized with the pod's grace period.
	podOnlyServe = []string{"-xds", "-drain-timeout"}
	// -listen-address: a pod serves on its own IP, not loopback; -max-heap:
	// its Envoy has a memory limit to stay under.
	podOnlyEnvoyConfig = []string{"-xds", "-listen-address", "-max-heap"}
	podOnlyEnvoy       []string
)

// objects are one kustomization's output, decoded strictly by kind.
type objects struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	pdbs        map[string]*policyv1.PodDisruptionBudget
}

// render builds the kustomization in dir with the kustomize API, as
// `kubectl apply -k` does, and decodes every object into its k8s.io/api
// type, refusing unknown fields and kinds.
func render(dir string) (*objects, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	o := &objects{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, pdbs: map[string]*policyv1.PodDisruptionBudget{}}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		if err := o.decode(y); err != nil {
			return nil, fmt.Errorf("%s %s: %w", res.GetKind(), res.GetName(), err)
		}
	}
	return o, nil
}

func (o *objects) decode(y []byte) error {
	var kind struct{ APIVersion, Kind string }
	if err := yaml.Unmarshal(y, &kind); err != nil {
		return err
	}
	switch kind.APIVersion + " " + kind.Kind {
	case "apps/v1 Deployment":
		return decodeInto(y, o.deployments)
	case "v1 Service":
		return decodeInto(y, o.services)
	case "v1 ConfigMap":
		return decodeInto(y, o.configMaps)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(y, o.pdbs)
	}
	return fmt.Errorf("unexpected kind %s %s", kind.APIVersion, kind.Kind)
}

// named is an object with a name.
type named interface{ GetName() string }

func decodeInto[T any, PT interface {
	*T
	named
}](y []byte, into map[string]PT) error {
	obj := PT(new(T))
	if err := decodeStrict(y, obj); err != nil {
		return err
	}
	into[obj.GetName()] = obj
	return nil
}

// decodeStrict decodes y as the API server does in strict mode: field names
// match case-sensitively, and an unknown or duplicate field is an error.
func decodeStrict(y []byte, into any) error {
	j, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, into)
	return errors.Join(append(strict, err)...)
}

func mustRender(t *testing.T, dir string) *objects {
	t.Helper()
	o, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestKubernetesRenders(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		dir                                  string
		deployments, services, configs, pdbs []string
	}{
		{baseDir, []string{"switchyard"}, []string{"switchyard"}, []string{"switchyard-config", "switchyard-hooks", "switchyard-envoy-"}, []string{"switchyard"}},
		{overlayDir, []string{"ratelimit", "redis", "switchyard"}, []string{"ratelimit", "redis", "switchyard"},
			[]string{"switchyard-config", "switchyard-envoy-", "switchyard-hooks", "switchyard-ratelimit-"}, []string{"ratelimit", "switchyard"}},
	} {
		t.Run(c.dir, func(t *testing.T) {
			o := mustRender(t, c.dir)
			check := func(what string, got, want []string) {
				t.Helper()
				slices.Sort(got)
				slices.Sort(want)
				ok := len(got) == len(want)
				for i := 0; ok && i < len(got); i++ {
					// A name ending in - carries kustomize's hash suffix.
					ok = got[i] == want[i] || strings.HasSuffix(want[i], "-") && strings.HasPrefix(got[i], want[i])
				}
				if !ok {
					t.Errorf("%s: got %q, want %q", what, got, want)
				}
			}
			check("deployments", slices.Collect(maps.Keys(o.deployments)), c.deployments)
			check("services", slices.Collect(maps.Keys(o.services)), c.services)
			check("config maps", slices.Collect(maps.Keys(o.configMaps)), c.configs)
			check("disruption budgets", slices.Collect(maps.Keys(o.pdbs)), c.pdbs)
		})
	}
}

// TestStrictDecodingRejectsUnknownFields proves render would catch a typo:
// kustomize itself passes unknown fields through.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, object, want string }{
		{"container field", `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i
          readinesProbe: {tcpSocket: {port: 1}}
`, `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n", `mapping key "data" already defined`},
		{"service field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, targetport: 2}]}\n", `unknown field "spec.ports[0].targetport"`},
		{"unknown kind", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n", "unexpected kind v1 Secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write(t, filepath.Join(dir, "kustomization.yaml"), "resources: [object.yaml]\n")
			write(t, filepath.Join(dir, "object.yaml"), c.object)
			_, err := render(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("render: %v, want an error with %q", err, c.want)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pod is the switchyard pod's parts the tests look at.
type pod struct {
	spec             *corev1.PodSpec
	extproc, envoy   *corev1.Container
	serve, envoyArgs map[string]string
}

func switchyardPod(t *testing.T, o *objects) pod {
	t.Helper()
	d := o.deployments["switchyard"]
	if d == nil {
		t.Fatal("no switchyard Deployment")
	}
	p := pod{spec: &d.Spec.Template.Spec}
	for i := range p.spec.Containers {
		switch c := &p.spec.Containers[i]; c.Name {
		case "extproc":
			p.extproc = c
		case "envoy":
			p.envoy = c
		}
	}
	if p.extproc == nil || p.envoy == nil || len(p.spec.Containers) != 2 {
		t.Fatalf("the switchyard pod must run extproc and envoy, and only them: %+v", p.spec.Containers)
	}
	p.serve = flagValues(p.extproc.Args, "-xds")
	p.envoyArgs = flagValues(p.envoy.Args, "--disable-hot-restart")
	return p
}

// bootstrapArgs are the `extproc envoy-config` flags the committed
// bootstrap was printed with: its node metadata.
func bootstrapArgs(t *testing.T, bootstrap []byte) []string {
	t.Helper()
	var bs struct {
		Node struct {
			Metadata map[string][]string `json:"metadata"`
		} `json:"node"`
	}
	if err := yaml.Unmarshal(bootstrap, &bs); err != nil {
		t.Fatal(err)
	}
	args := bs.Node.Metadata[envoy.NodeArgsKey]
	if len(args) == 0 {
		t.Fatalf("the bootstrap has no %s in its node metadata", envoy.NodeArgsKey)
	}
	return args
}

// TestEnvoyBootstrapIsPrinted keeps the pod's Envoy bootstrap what
// `extproc envoy-config` prints with the flags it names, for the config
// beside it.
func TestEnvoyBootstrapIsPrinted(t *testing.T) {
	t.Parallel()
	file := filepath.Join(baseDir, "envoy.yaml")
	committed, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	args := bootstrapArgs(t, committed)
	printed := extproc(t, baseDir, append([]string{"envoy-config"}, args...)...)
	checkPrinted(t, file, append([]byte(bootstrapHeader), printed...))

	if c := flagValues(args, "-xds")["-config"]; c != "switchyard.yaml" {
		t.Errorf("the bootstrap is printed for -config %q, want the pod's switchyard.yaml beside it", c)
	}
	o := mustRender(t, baseDir)
	cm := configMapByPrefix(t, o, "switchyard-envoy-")
	if got := cm.Data["envoy.yaml"]; got != string(committed) {
		t.Errorf("ConfigMap %s does not hold %s", cm.Name, file)
	}
}

func configMapByPrefix(t *testing.T, o *objects, prefix string) *corev1.ConfigMap {
	t.Helper()
	for name, cm := range o.configMaps {
		if strings.HasPrefix(name, prefix) {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %s*", prefix)
	return nil
}

// checkFlags reports flags run.sh passes that the pod does not, and flags
// the pod passes that neither run.sh nor podOnly names.
func checkFlags(t *testing.T, what string, runSh, pod map[string]string, podOnly []string) {
	t.Helper()
	for f := range runSh {
		if _, ok := pod[f]; !ok {
			t.Errorf("%s: scripts/run.sh passes %s, the pod does not", what, f)
		}
	}
	for f := range pod {
		if _, ok := runSh[f]; !ok && !slices.Contains(podOnly, f) {
			t.Errorf("%s: the pod passes %s, which scripts/run.sh does not (add it to both, or to the pod-only list with why)", what, f)
		}
	}
}

// TestPodRunsWhatMakeRunRuns compares the pod's commands with
// scripts/run.sh's, flag by flag, and checks that the files and addresses
// they name are the pod's: the config and hooks from their ConfigMaps, the
// keys from the Secret, the socket in the shared emptyDir, the ports.
func TestPodRunsWhatMakeRunRuns(t *testing.T) {
	t.Parallel()
	rs := readRunSh(t)
	o := mustRender(t, baseDir)
	p := switchyardPod(t, o)
	bootstrap := configMapByPrefix(t, o, "switchyard-envoy-").Data["envoy.yaml"]
	ec := flagValues(bootstrapArgs(t, []byte(bootstrap)), "-xds")

	checkFlags(t, "extproc", flagValues(rs.serve, "-xds"), p.serve, podOnlyServe)
	checkFlags(t, "extproc envoy-config", flagValues(rs.envoyConfig, "-xds"), ec, podOnlyEnvoyConfig)
	checkFlags(t, "envoy", flagValues(rs.envoy, "--disable-hot-restart"), p.envoyArgs, podOnlyEnvoy)
	if p.envoyArgs["--log-level"] != flagValues(rs.envoy, "--disable-hot-restart")["--log-level"] {
		t.Errorf("envoy --log-level %q, scripts/run.sh %q", p.envoyArgs["--log-level"], flagValues(rs.envoy)["--log-level"])
	}
	if _, xds := p.serve["-xds"]; xds {
		if _, ok := ec["-xds"]; !ok {
			t.Error("extproc serves xDS but the bootstrap is not printed with -xds")
		}
	}

	// The socket: extproc listens where Envoy connects, in the emptyDir both mount.
	sock, ok := strings.CutPrefix(p.serve["-grpc"], "unix:")
	if !ok {
		t.Fatalf("extproc -grpc %q: want a Unix socket", p.serve["-grpc"])
	}
	if ec["-extproc"] != p.serve["-grpc"] {
		t.Errorf("Envoy connects to %q, extproc listens on %q", ec["-extproc"], p.serve["-grpc"])
	}
	for _, c := range []*corev1.Container{p.extproc, p.envoy} {
		v := mountedVolume(t, p.spec, c, path.Dir(sock))
		if v.EmptyDir == nil {
			t.Errorf("%s: the socket directory is volume %s, want an emptyDir", c.Name, v.Name)
		}
	}

	// The files: config, hooks and keys from their ConfigMaps and Secret.
	cfgPath := p.serve["-config"]
	cfgVol := mountedVolume(t, p.spec, p.extproc, path.Dir(cfgPath))
	if cfgVol.ConfigMap == nil || cfgVol.ConfigMap.Name != "switchyard-config" {
		t.Fatalf("extproc -config %s: not in the ConfigMap switchyard-config", cfgPath)
	}
	cfg := o.configMaps["switchyard-config"].Data[path.Base(cfgPath)]
	want, err := os.ReadFile(filepath.Join(baseDir, ec["-config"]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg != string(want) {
		t.Errorf("the pod's config is not %s, the config its Envoy bootstrap is printed for", ec["-config"])
	}
	var gw struct {
		Hooks struct {
			Dir string `json:"dir"`
		} `json:"hooks"`
		Providers []struct {
			Auth struct {
				KeyFile string `json:"key_file"`
			} `json:"auth"`
		} `json:"providers"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &gw); err != nil {
		t.Fatal(err)
	}
	if v := mountedVolume(t, p.spec, p.extproc, gw.Hooks.Dir); v.ConfigMap == nil || v.ConfigMap.Name != "switchyard-hooks" {
		t.Errorf("hooks dir %s: not the ConfigMap switchyard-hooks", gw.Hooks.Dir)
	}
	for _, pr := range gw.Providers {
		if v := mountedVolume(t, p.spec, p.extproc, path.Dir(pr.Auth.KeyFile)); v.Secret == nil {
			t.Errorf("key_file %s: not in a Secret", pr.Auth.KeyFile)
		}
	}
	envoyCfg := p.envoyArgs["-c"]
	if v := mountedVolume(t, p.spec, p.envoy, path.Dir(envoyCfg)); v.ConfigMap == nil || !strings.HasPrefix(v.ConfigMap.Name, "switchyard-envoy-") {
		t.Errorf("envoy -c %s: not the ConfigMap switchyard-envoy", envoyCfg)
	}

	// The ports: what the flags bind is what the pod declares and probes.
	checkPort(t, p.envoy, "http", ec["-listen"])
	checkPort(t, p.extproc, "metrics", strings.TrimPrefix(p.serve["-metrics"], "0.0.0.0:"))
	if got := env(p.envoy, "ENVOY_ADMIN_PORT"); got != ec["-admin"] {
		t.Errorf("envoy's ENVOY_ADMIN_PORT is %q, its admin port %q", got, ec["-admin"])
	}
	// Envoy is the Dockerfile's envoy stage: the official image of the
	// version the config is built for, with the body module the bootstrap names.
	if got, want := p.envoy.Image, "switchyard-envoy:local"; got != want {
		t.Errorf("envoy image %s, want %s (the Dockerfile's envoy stage)", got, want)
	}
	testkit.CheckEnvoyStage(t, "../Dockerfile", "envoyproxy/envoy:v"+envoy.Version, envoy.ImageBodyModule)
	// Envoy's heap bound leaves a quarter of its memory limit to the rest
	// of the process: its binary's pages, the module's runtime, stacks.
	limit := p.envoy.Resources.Limits.Memory().Value()
	if heap, err := strconv.ParseInt(ec["-max-heap"], 10, 64); err != nil || heap <= 0 || heap > limit*3/4 {
		t.Errorf("envoy's -max-heap %q against its memory limit of %d: want a bound of at most three quarters of it", ec["-max-heap"], limit)
	}
	if ec["-body-module"] != envoy.ImageBodyModule {
		t.Errorf("the bootstrap is printed with -body-module %q, want the image's %s", ec["-body-module"], envoy.ImageBodyModule)
	}
}

// mountedVolume is the volume c mounts at dir.
func mountedVolume(t *testing.T, spec *corev1.PodSpec, c *corev1.Container, dir string) *corev1.Volume {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == m.Name {
				return &spec.Volumes[i]
			}
		}
	}
	t.Fatalf("%s mounts nothing at %s", c.Name, dir)
	return nil
}

func checkPort(t *testing.T, c *corev1.Container, name, want string) {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			if strconv.Itoa(int(p.ContainerPort)) != want {
				t.Errorf("%s port %s is %d, the flags bind %s", c.Name, name, p.ContainerPort, want)
			}
			return
		}
	}
	t.Errorf("%s declares no port %s", c.Name, name)
}

func env(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestPodSecurityProbesAndRollout checks what a rollout without failed
// requests and a locked-down pod need, in the base and in the overlay.
func TestPodSecurityProbesAndRollout(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{baseDir, overlayDir} {
		o := mustRender(t, dir)
		for name, d := range o.deployments {
			t.Run(dir+"/"+name, func(t *testing.T) {
				checkLockedDown(t, &d.Spec.Template.Spec)
				checkSelectors(t, o, d)
				checkConfigMapsExist(t, o, &d.Spec.Template.Spec)
			})
		}
	}
	o := mustRender(t, baseDir)
	p, d := switchyardPod(t, o), o.deployments["switchyard"]
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable.String() != "0" || ru.MaxSurge.String() != "1" {
		t.Errorf("rolling update %+v: want maxUnavailable 0, maxSurge 1", ru)
	}
	if h := p.extproc.ReadinessProbe; h == nil || h.HTTPGet == nil || h.HTTPGet.Path != "/healthz" || h.HTTPGet.Port.String() != "metrics" {
		t.Errorf("extproc readiness %+v: want GET /healthz on its metrics port", h)
	}
	if h := p.envoy.ReadinessProbe; h == nil || h.Exec == nil || !strings.Contains(strings.Join(h.Exec.Command, " "), "GET /ready") {
		t.Errorf("envoy readiness %+v: want its admin /ready", h)
	}
	// Shutdown: extproc serves until Envoy's preStop drain is over, then
	// drains its own streams; the grace period covers both.
	drain, err := time.ParseDuration(p.serve["-drain-timeout"])
	if err != nil {
		t.Fatalf("extproc -drain-timeout: %v", err)
	}
	pre := p.extproc.Lifecycle
	if pre == nil || pre.PreStop == nil || pre.PreStop.Sleep == nil {
		t.Fatal("extproc has no preStop sleep")
	}
	sleep := time.Duration(pre.PreStop.Sleep.Seconds) * time.Second
	envoyDrain := envoyPreStopBound(t, p.envoy)
	if envoyDrain > sleep {
		t.Errorf("envoy's preStop may drain for %v, but extproc stops serving after %v", envoyDrain, sleep)
	}
	grace := time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
	if grace < sleep+drain {
		t.Errorf("terminationGracePeriodSeconds %v < extproc's preStop %v + -drain-timeout %v", grace, sleep, drain)
	}
}

// envoyPreStopBound is how long Envoy's preStop script may run: its first
// sleep and the number of one-second polls after it.
func envoyPreStopBound(t *testing.T, c *corev1.Container) time.Duration {
	t.Helper()
	first, polls := envoyPreStop(t, c)
	return first + polls
}

// envoyPreStopFirstWait is the preStop's first sleep: the drain time.
func envoyPreStopFirstWait(t *testing.T, c *corev1.Container) time.Duration {
	t.Helper()
	first, _ := envoyPreStop(t, c)
	return first
}

// envoyPreStop reads the preStop script's first sleep and its polls.
func envoyPreStop(t *testing.T, c *corev1.Container) (first, polls time.Duration) {
	t.Helper()
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("envoy has no preStop script")
	}
	script := strings.Join(c.Lifecycle.PreStop.Exec.Command, " ")
	var sleep, n int
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if s, ok := strings.CutPrefix(line, "sleep "); ok && sleep == 0 {
			sleep, _ = strconv.Atoi(s)
		}
		if s, ok := strings.CutPrefix(line, "for _ in $(seq 1 "); ok {
			n, _ = strconv.Atoi(strings.TrimSuffix(s, "); do"))
		}
	}
	if sleep == 0 || n == 0 {
		t.Fatalf("envoy's preStop script: no initial sleep or poll count found:\n%s", script)
	}
	return time.Duration(sleep) * time.Second, time.Duration(n) * time.Second
}

// checkLockedDown: non-root, no privilege escalation, a read-only root
// file system, no capabilities, requests and a memory limit, a readiness
// probe.
func checkLockedDown(t *testing.T, spec *corev1.PodSpec) {
	t.Helper()
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("pod security context %+v: want runAsNonRoot and a non-zero runAsUser", sc)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no security context", c.Name)
			continue
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: privilege escalation allowed", c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: root file system writable", c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s: privileged", c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: capabilities %+v, want drop ALL and none added", c.Name, sc.Capabilities)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %+v: want CPU and memory requests and a memory limit", c.Name, c.Resources)
		}
		if c.ReadinessProbe == nil {
			t.Errorf("%s: no readiness probe", c.Name)
		}
	}
}

// checkSelectors: the Deployment's pods are the ones its Service and its
// disruption budget select.
func checkSelectors(t *testing.T, o *objects, d *appsv1.Deployment) {
	t.Helper()
	labels := d.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(d.Spec.Selector.MatchLabels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, labels)
	}
	if s := o.services[d.Name]; s != nil {
		if !matches(s.Spec.Selector) {
			t.Errorf("Service %s selects %v, the pods are %v", s.Name, s.Spec.Selector, labels)
		}
		for _, sp := range s.Spec.Ports {
			if !declaresPort(d, sp.TargetPort.String()) {
				t.Errorf("Service %s targets port %s, which no container declares", s.Name, sp.TargetPort.String())
			}
		}
	}
	if pdb := o.pdbs[d.Name]; pdb != nil && !matches(pdb.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget %s selects %v, the pods are %v", pdb.Name, pdb.Spec.Selector.MatchLabels, labels)
	}
	if d.Name == "switchyard" || d.Name == "ratelimit" {
		if o.pdbs[d.Name] == nil {
			t.Errorf("%s has no PodDisruptionBudget", d.Name)
		}
	}
}

// checkConfigMapsExist: every ConfigMap a pod mounts is among the rendered
// objects (kustomize renamed the references to generated ones).
func checkConfigMapsExist(t *testing.T, o *objects, spec *corev1.PodSpec) {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && o.configMaps[v.ConfigMap.Name] == nil {
			t.Errorf("volume %s mounts ConfigMap %s, which is not rendered", v.Name, v.ConfigMap.Name)
		}
	}
}

func declaresPort(d *appsv1.Deployment, name string) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// TestHooksAreTheExample keeps the base's hook the repository's example.
func TestHooksAreTheExample(t *testing.T) {
	t.Parallel()
	got, err := os.ReadFile(filepath.Join(baseDir, "hooks/tag_from_header.lua"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../hooks/examples/tag_from_header.lua")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("deploy/kubernetes/base/hooks/tag_from_header.lua is not hooks/examples/tag_from_header.lua")
	}
}
