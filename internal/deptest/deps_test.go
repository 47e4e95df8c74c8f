package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// owners maps an import path prefix to the only packages allowed to import it
// directly.
var owners = map[string][]string{
	"github.com/envoyproxy/go-control-plane": {"switchyard/processor"},
	"github.com/yuin/gopher-lua":             {"switchyard/luahooks"},
}

// plainDataImports are the only project packages routing and config may
// import: neither knows Envoy, Lua or the processor.
var plainDataImports = map[string][]string{
	"switchyard/routing": {"switchyard/config"},
	"switchyard/config":  nil,
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
			for prefix, allowed := range owners {
				if strings.HasPrefix(imp, prefix) && !contains(allowed, pkg) {
					t.Errorf("%s imports %s; only %v may", pkg, imp, allowed)
				}
			}
			if (pkg == "switchyard/routing" || pkg == "switchyard/config") && strings.HasPrefix(imp, "switchyard/") && !contains(plainDataImports[pkg], imp) {
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
