package envoy

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"switchyard/internal/launch"
)

var update = flag.Bool("update", false, "rewrite the printed configs committed in envoy/")

// committed are the printed configs in the repository and how each is made.
// envoy.yaml is the static config (`extproc envoy-config` without -xds);
// docker-compose.yaml mounts compose.yaml, an ADS bootstrap: ads are the
// `extproc envoy-config` flags it is printed with, which extproc reads back
// from its node metadata (cmd/extproc checks the command prints it).
var committed = []struct {
	file, config string
	opts         Options
	ads          []string
}{
	{"envoy.yaml", "../examples/switchyard.yaml", Options{ListenPort: DefaultListenPort, AdminPort: DefaultAdminPort, ExtProc: "unix:/tmp/switchyard-extproc.sock"}, nil},
	{"compose.yaml", "../examples/compose.switchyard.yaml", Options{
		ListenAddress: "0.0.0.0", ListenPort: DefaultListenPort, AdminPort: DefaultAdminPort, ExtProc: "unix:/run/switchyard/extproc.sock",
		BaselinePort: 10001, BaselineCluster: "mock", BodyModule: ImageBodyModule,
	}, []string{"-config", "/etc/switchyard/switchyard.yaml", "-listen-address", "0.0.0.0", "-extproc", "unix:/run/switchyard/extproc.sock",
		"-baseline-listen", "10001", "-direct-cluster", "mock", "-body-module", ImageBodyModule, "-xds"}},
}

func render(t *testing.T, config string, o Options) []byte {
	t.Helper()
	o = withConfig(t, config, o)
	var b bytes.Buffer
	if err := Render(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCommittedConfigsAreRendered keeps the committed configs identical to
// what the builder prints, so compose, `make run` and the tests share one setup.
func TestCommittedConfigsAreRendered(t *testing.T) {
	for _, c := range committed {
		t.Run(c.file, func(t *testing.T) {
			got := render(t, c.config, c.opts)
			if c.ads != nil {
				var b bytes.Buffer
				if err := RenderADS(&b, withConfig(t, c.config, c.opts), c.ads); err != nil {
					t.Fatal(err)
				}
				got = b.Bytes()
			}
			if *update {
				if err := os.WriteFile(c.file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("envoy/%s is stale: run `go test ./envoy -update`", c.file)
			}
		})
	}
}

// TestConfigsValidate runs `envoy --mode validate` on every committed config
// and on each variant the builder can produce.
func TestConfigsValidate(t *testing.T) {
	bin, err := launch.FindEnvoy("", Version)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := map[string][]byte{}
	for _, c := range committed {
		b, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		cases["committed "+c.file] = b
	}
	cfg := "../examples/switchyard.yaml"
	cases["buffered"] = render(t, cfg, Options{ExtProc: "unix:/tmp/x.sock", BodyMode: BodyModeBuffered})
	cases["fail open over tcp"] = render(t, cfg, Options{ExtProc: "127.0.0.1:9002", FailOpen: true})
	cases["no ext_proc"] = render(t, cfg, Options{DirectCluster: "mock"})
	held := render(t, cfg, Options{DirectCluster: "mock", HoldBody: true})
	cases["no ext_proc, the body held"] = held
	if !bytes.Contains(held, []byte("max_request_bytes: 10485761")) || bytes.Index(held, []byte(bufferFilterName)) > bytes.Index(held, []byte(routerFilterName)) {
		t.Errorf("the held-body config lacks the buffer filter at the body limit before the router")
	}
	fallbacks := render(t, "testdata/fallbacks.yaml", Options{ExtProc: "unix:/tmp/x.sock"})
	cases["fallbacks"] = fallbacks
	for _, want := range []string{"attempt|anthropic-eu", "per_try_timeout: 20s", "retriable_status_codes: [429, 529]", "num_retries: 1"} {
		if !bytes.Contains(fallbacks, []byte(want)) {
			t.Errorf("the fallback config lacks %q", want)
		}
	}
	mcp := render(t, "testdata/mcp.yaml", Options{ExtProc: "unix:/tmp/x.sock"})
	cases["mcp servers"] = mcp
	for _, want := range []string{"name: mcp/github", "path_separated_prefix: /mcp", "prefix: mcp/"} {
		if !bytes.Contains(mcp, []byte(want)) {
			t.Errorf("the MCP config lacks %q", want)
		}
	}
	cases["by size with hooks, two retry policies and a key pool"] = render(t, "testdata/pools.yaml",
		Options{ExtProc: "unix:/tmp/x.sock", BodyMode: BodyModeBySize, ResponseHeaders: true, UsageInline: true})
	var ads bytes.Buffer
	if err := RenderADS(&ads, withConfig(t, cfg, Options{ExtProc: "unix:/tmp/x.sock"}), []string{"-xds"}); err != nil {
		t.Fatal(err)
	}
	cases["ads bootstrap"] = ads.Bytes()
	const slots = "unix:/tmp/a.sock,unix:/tmp/b.sock"
	twoSlots := render(t, cfg, Options{ExtProc: slots})
	cases["two extproc slots"] = twoSlots
	for _, want := range []string{"path: /tmp/b.sock", "grpc_health_check", "consecutive_local_origin_failure: 1"} {
		if !bytes.Contains(twoSlots, []byte(want)) {
			t.Errorf("the two-slot config lacks %q", want)
		}
	}
	if one := render(t, cfg, Options{ExtProc: "unix:/tmp/x.sock"}); bytes.Contains(one, []byte("health_checks")) {
		t.Error("a single extproc is health-checked: the one-address config changed for its users")
	}
	ads.Reset()
	if err := RenderADS(&ads, withConfig(t, cfg, Options{ExtProc: slots + ",127.0.0.1:9002,localhost:9003"}), []string{"-xds"}); err != nil {
		t.Fatal(err)
	}
	cases["ads bootstrap, four slots over unix, ip and dns"] = ads.Bytes()
	cases["google grpc over unix"] = render(t, cfg, Options{ExtProc: "unix:/tmp/x.sock", GRPCClient: GRPCClientGoogle})
	cases["google grpc over tcp, access log"] = render(t, cfg, Options{ExtProc: "127.0.0.1:9002", GRPCClient: GRPCClientGoogle, AccessLog: filepath.Join(dir, "access.log")})
	for name, yaml := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(path, yaml, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--mode", "validate", "-c", path, "--log-level", "warn").CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("OK")) {
				t.Errorf("envoy rejects the %s config: %v\n%s", name, err, tailLines(string(out), 8))
			}
		})
	}
}

// tailLines keeps Envoy's verdict (the last lines) and drops its config dump.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
