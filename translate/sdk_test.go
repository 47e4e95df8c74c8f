package translate

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pySDK is the venv `make sdks` fills with the pinned openai and anthropic
// packages, relative to the module root.
const pySDK = "../.tools/pysdk"

// TestGoldenAgainstSDKs validates every golden output with the official
// SDKs (testdata/sdk_check.py): requests against their create-params types,
// responses, errors and stream events against their models, and each stream
// through the SDK's own accumulator.
func TestGoldenAgainstSDKs(t *testing.T) {
	t.Parallel()
	py := filepath.Join(pySDK, "bin", "python")
	if out, err := exec.Command(py, "-c", "import openai, anthropic").CombinedOutput(); err != nil {
		t.Fatalf("the openai and anthropic Python SDKs are required: run `make sdks` (installs the pinned "+
			"versions into .tools/pysdk): %s: %v\n%s", py, err, out)
	}
	out, err := exec.Command(py, filepath.Join("testdata", "sdk_check.py"), "testdata").CombinedOutput()
	if err != nil {
		t.Fatalf("an SDK rejected a golden output: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"checked": `) {
		t.Fatalf("sdk_check.py did not finish:\n%s", out)
	}
	t.Logf("sdk_check.py: %s", out)
}
