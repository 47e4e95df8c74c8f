package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// owners maps an import path prefix to the only packages allowed to import it
// directly; the longest matching prefix decides. limits talks to Envoy's
// rate-limit service and needs its protos (and the type they share), no
// other Envoy API; envoy builds Envoy's configuration as protos, and xds
// serves it (the only user of go-control-plane's server and cache); the
// key store is the only Redis client (the global limits reach Redis
// through envoyproxy/ratelimit). OpenTelemetry stays inside tracing.
var owners = map[string][]string{
	"github.com/envoyproxy/go-control-plane":                                    {"switchyard/processor", "switchyard/envoy", "switchyard/xds"},
	"github.com/envoyproxy/go-control-plane/pkg/":                               {"switchyard/xds"},
	"github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/":           {"switchyard/limits"},
	"github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/": {"switchyard/limits"},
	"github.com/envoyproxy/go-control-plane/envoy/type/v3":                      {"switchyard/processor", "switchyard/limits", "switchyard/envoy"},
	"github.com/yuin/gopher-lua":                                                {"switchyard/luahooks"},
	"github.com/aws/":                                                           {"switchyard/bedrock"},
	// The rest of the gateway hands tracing plain data; only the binary's
	// export links the exporters (and the gRPC compressor they register).
	"go.opentelemetry.io/":                {"switchyard/tracing", "switchyard/tracing/export"},
	"go.opentelemetry.io/otel/exporters/": {"switchyard/tracing/export"},
	"github.com/redis/go-redis/":          {"switchyard/keys"},
}

// owner returns the packages allowed to import imp, and whether any rule
// applies to it.
func owner(imp string) ([]string, bool) {
	best := ""
	for prefix := range owners {
		if strings.HasPrefix(imp, prefix) && len(prefix) > len(best) {
			best = prefix
		}
	}
	return owners[best], best != ""
}

// plainDataImports are the only project packages routing, config and pricing may
// import: none knows Envoy, Lua or the processor. routing holds each
// Bedrock provider's signer (bedrock knows neither either) as it holds
// other providers' keys, and each snapshot's price table (pricing, plain
// data too), matching model names with internal/glob as the table does.
// The key store (keys) knows routing's compiled keys and nothing of the
// request path either.
var plainDataImports = map[string][]string{
	"switchyard/routing": {"switchyard/config", "switchyard/bedrock", "switchyard/pricing", "switchyard/internal/glob"},
	"switchyard/config":  nil,
	"switchyard/pricing": {"switchyard/internal/glob", "switchyard/internal/usage"},
	"switchyard/keys":    {"switchyard/config", "switchyard/routing"},
}

func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports ","}}`, "switchyard/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		checked++
		for _, imp := range strings.Split(imports, ",") {
			if allowed, ok := owner(imp); ok && !contains(allowed, pkg) {
				t.Errorf("%s imports %s; only %v may", pkg, imp, allowed)
			}
			if allowed, limited := plainDataImports[pkg]; limited && strings.HasPrefix(imp, "switchyard/") && !contains(allowed, imp) {
				t.Errorf("%s imports %s: it must stay plain data", pkg, imp)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages listed", checked)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// gatewayExcluded are packages and modules the gateway binary must not link:
// the load-test tools (charts, the k6 bundler, the compose loader, the load
// generator) and the code that exists only for tests and the benchmark.
var gatewayExcluded = []string{
	"gonum.org/v1/plot",
	"github.com/evanw/esbuild",
	"github.com/compose-spec/compose-go",
	"github.com/tsenart/vegeta",
	"switchyard/loadtest",
	"switchyard/e2e",
	"switchyard/internal/launch",
	"switchyard/internal/testkit",
}

// TestGatewayBinaryLeavesOutTestTools: `go version -m bin/extproc` lists the
// modules of the packages `go list -deps ./cmd/extproc` names; none of
// them may be a load-test tool.
func TestGatewayBinaryLeavesOutTestTools(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}`, "switchyard/cmd/extproc").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sawGRPC := false
	for _, line := range lines {
		pkg, mod, _ := strings.Cut(line, " ")
		sawGRPC = sawGRPC || mod == "google.golang.org/grpc"
		for _, x := range gatewayExcluded {
			if pkg == x || strings.HasPrefix(pkg, x+"/") || mod == x || strings.HasPrefix(mod, x+"/") {
				t.Errorf("cmd/extproc links %s (module %q); the gateway binary must leave out %s", pkg, mod, x)
			}
		}
	}
	if !sawGRPC {
		t.Fatalf("go list named no gRPC package among %d: the listing is not the gateway's", len(lines))
	}
}
