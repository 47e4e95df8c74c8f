package deploy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"switchyard/internal/testkit"
)

var update = flag.Bool("update", false, "print the committed Envoy bootstrap and rate-limit config again")

// extprocBin is extproc built from this tree: the printed configs are
// compared with what it prints. bodyModuleLib is Envoy's body module built
// from it, which the pod's Envoy image carries.
var extprocBin, bodyModuleLib string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "switchyard-deploy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if extprocBin, err = testkit.BuildExtproc(dir); err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	if bodyModuleLib, err = testkit.BuildBodyModule(dir); err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	return m.Run()
}

// extproc runs extproc with args in dir and returns what it printed.
func extproc(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(extprocBin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("extproc %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// checkPrinted compares a committed file with what was printed for it, or
// writes it with -update.
func checkPrinted(t *testing.T, path string, printed []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, printed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, printed) {
		t.Errorf("%s is not what extproc prints: run `go test ./deploy -update`", path)
	}
}
