package mockllm

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pySDK is the venv `make sdks` fills with the pinned openai and anthropic
// packages, relative to this package.
const pySDK = "../../.tools/pysdk"

// TestSDKToolCalls reads the mock's tool-call answers, streamed and not, and
// its answers to tool results, with the official SDKs' stream helpers and
// types (testdata/sdk_tools.py): the SDKs must accept every event.
func TestSDKToolCalls(t *testing.T) {
	t.Parallel()
	py := filepath.Join(pySDK, "bin", "python")
	if out, err := exec.Command(py, "-c", "import openai, anthropic").CombinedOutput(); err != nil {
		t.Fatalf("the openai and anthropic Python SDKs are required: run `make sdks` (installs the pinned "+
			"versions from PyPI into .tools/pysdk): %s: %v\n%s", py, err, out)
	}
	srv := httptest.NewServer(New(fast))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "sdk_tools.py"), srv.URL, ToolArgString, ToolResultPrefix).CombinedOutput()
	t.Logf("sdk_tools.py:\n%s", out)
	if err != nil {
		t.Fatalf("the SDKs rejected the mock's tool calls: %v", err)
	}
	if !strings.Contains(string(out), `{"passed": 3}`) {
		t.Fatal("sdk_tools.py did not finish its checks")
	}
}
