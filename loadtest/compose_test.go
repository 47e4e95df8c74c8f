package loadtest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"switchyard/envoy"
	"switchyard/internal/testkit"
)

// loadCompose loads the repository's compose file with every profile
// enabled and no interpolation from the caller's environment, so the result
// does not depend on who runs the test.
func loadCompose(t *testing.T, repo string) *types.Project {
	t.Helper()
	file := filepath.Join(repo, "docker-compose.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  repo,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: data}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("switchyard", true)
		o.Profiles = []string{"*"}
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("loading docker-compose.yaml: %v", err)
	}
	return p
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, repo)

	wantServices := map[string][]string{ // service -> profiles
		"envoy":   nil,
		"extproc": nil,
		"mockllm": nil,
		"k6":      {"loadtest"},
		// README "Observability".
		"prometheus": {"observability"},
		"grafana":    {"observability"},
		"jaeger":     {"observability"},
	}
	for name, profiles := range wantServices {
		s, err := p.GetService(name)
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		if !slices.Equal(s.Profiles, profiles) {
			t.Errorf("service %s profiles = %q, want %q", name, s.Profiles, profiles)
		}
	}
	if e, err := p.GetService("envoy"); err == nil {
		if e.Build == nil || e.Build.Target != "envoy" {
			t.Errorf("envoy service: want it built from the Dockerfile's envoy stage, got build %+v", e.Build)
		} else {
			testkit.CheckEnvoyStage(t, filepath.Join(e.Build.Context, e.Build.Dockerfile), "envoyproxy/envoy:v"+envoy.Version, envoy.ImageBodyModule)
		}
		bootstrap, err := os.ReadFile(filepath.Join(repo, "envoy/compose.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(bootstrap), "- -body-module\n      - "+envoy.ImageBodyModule+"\n") {
			t.Errorf("envoy/compose.yaml is not printed with -body-module %s", envoy.ImageBodyModule)
		}
	}
	if ext, err := p.GetService("extproc"); err == nil {
		cmd := strings.Join(ext.Command, " ")
		if want := "extproc -config /etc/switchyard/switchyard.yaml -grpc unix:/run/switchyard/extproc.sock -metrics 0.0.0.0:9090 -xds"; cmd != want {
			t.Errorf("extproc command = %q, want %q", cmd, want)
		}
		if !sharesVolume(p, "extproc", "envoy", "/run/switchyard") {
			t.Errorf("extproc and envoy do not share a volume at /run/switchyard for the socket")
		}
	}

	// Every local file the stack needs must exist in the repository.
	type ref struct{ service, what, path string }
	var refs []ref
	for _, s := range p.AllServices() {
		if s.Build != nil {
			refs = append(refs, ref{s.Name, "build context", s.Build.Context})
			df := s.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			refs = append(refs, ref{s.Name, "Dockerfile", df})
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				refs = append(refs, ref{s.Name, "bind mount " + v.Target, v.Source})
			}
		}
	}
	// The k6 scripts the loadtest service runs from its /scripts mount.
	for _, f := range []string{"all.js", "chat.js", "stream.js", "lib.js"} {
		refs = append(refs, ref{"k6", "k6 script", filepath.Join(repo, "loadtest/k6", f)})
	}
	if len(refs) < 8 {
		t.Fatalf("found only %d file references; did the loader drop services? %+v", len(refs), refs)
	}
	for _, r := range refs {
		rel, err := filepath.Rel(repo, r.path)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("%s: %s %q is outside the repository", r.service, r.what, r.path)
			continue
		}
		if _, err := os.Stat(r.path); err != nil {
			t.Errorf("%s: %s %s: %v", r.service, r.what, rel, err)
		}
	}

	checkObservability(t, p, repo)

	// The k6 service must run the script that exists under its mount.
	if k6, err := p.GetService("k6"); err == nil {
		script := strings.Join(k6.Command, " ")
		if !strings.Contains(script, "/scripts/all.js") {
			t.Errorf("k6 command %q does not run /scripts/all.js", script)
		}
	}
}

func sharesVolume(p *types.Project, a, b, target string) bool {
	sa, errA := p.GetService(a)
	sb, errB := p.GetService(b)
	if errA != nil || errB != nil {
		return false
	}
	for _, va := range sa.Volumes {
		for _, vb := range sb.Volumes {
			if va.Type == types.VolumeTypeVolume && vb.Type == types.VolumeTypeVolume &&
				va.Source == vb.Source && va.Target == target && vb.Target == target {
				return true
			}
		}
	}
	return false
}

// TestComposeCheckCatchesMissingFiles proves the loader-based check sees a
// bind mount whose source is missing.
func TestComposeCheckCatchesMissingFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	compose := "services:\n  a:\n    image: x\n    volumes:\n      - ./nope.yaml:/etc/nope.yaml:ro\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, dir)
	s, err := p.GetService("a")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Volumes) != 1 || s.Volumes[0].Type != types.VolumeTypeBind {
		t.Fatalf("volumes = %+v", s.Volumes)
	}
	if want := filepath.Join(dir, "nope.yaml"); s.Volumes[0].Source != want {
		t.Errorf("bind source = %q, want %q", s.Volumes[0].Source, want)
	}
	if _, err := os.Stat(s.Volumes[0].Source); err == nil {
		t.Errorf("missing file reported as present")
	}
}

// checkObservability: Prometheus scrapes extproc at the port extproc's
// -metrics listens on, and Grafana mounts the provisioning and the
// dashboards where deploy/grafana's provisioning looks for them.
func checkObservability(t *testing.T, p *types.Project, repo string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if ext, err := p.GetService("extproc"); err == nil {
		i := slices.Index(ext.Command, "-metrics")
		if i < 0 || i+1 >= len(ext.Command) {
			t.Fatalf("extproc command %q has no -metrics", ext.Command)
		}
		_, port, _ := strings.Cut(ext.Command[i+1], ":")
		if !strings.Contains(string(data), `"extproc:`+port+`"`) {
			t.Errorf("deploy/prometheus/prometheus.yml does not scrape extproc:%s:\n%s", port, data)
		}
	}
	mounts := map[string]string{} // target -> source, relative to the repository
	if g, err := p.GetService("grafana"); err == nil {
		for _, v := range g.Volumes {
			rel, _ := filepath.Rel(repo, v.Source)
			mounts[v.Target] = rel
		}
	}
	for target, source := range map[string]string{
		"/etc/grafana/provisioning":   "deploy/grafana/provisioning",
		"/var/lib/grafana/dashboards": "deploy/grafana/dashboards",
	} {
		if mounts[target] != source {
			t.Errorf("grafana mounts %q at %s, want %s", mounts[target], target, source)
		}
	}
}
