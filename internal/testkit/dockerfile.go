package testkit

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// CheckEnvoyStage checks the Dockerfile's envoy stage, the Envoy image
// compose and the Kubernetes pod run: it must build on base (the official
// image of the Envoy the config is built for) and copy the body module to
// module, where their bootstraps' -body-module names it.
func CheckEnvoyStage(t *testing.T, dockerfile, base, module string) {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var stage, from string
	var copies []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.EqualFold(f[0], "FROM"):
			stage = ""
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stage = f[3]
			}
			if stage == "envoy" {
				from = f[1]
			}
		case stage == "envoy" && strings.EqualFold(f[0], "COPY") && len(f) >= 3:
			copies = append(copies, f[len(f)-1])
		}
	}
	if from != base || !slices.Contains(copies, module) {
		t.Errorf("%s: the envoy stage is FROM %q and copies to %q; want FROM %s, the body module copied to %s",
			dockerfile, from, copies, base, module)
	}
}
