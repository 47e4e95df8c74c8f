package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/loadtest/mockllm"
)

// pySDK is the venv `make sdks` fills with the pinned openai and anthropic
// packages.
const pySDK = ".tools/pysdk"

// sdkPython returns the venv's python once it can import both SDKs; without
// them the test fails and says how to install them.
func sdkPython(t *testing.T) string {
	t.Helper()
	py := filepath.Join(repoRoot(t), pySDK, "bin", "python")
	out, err := exec.Command(py, "-c", "import openai, anthropic").CombinedOutput()
	if err != nil {
		t.Fatalf("the openai and anthropic Python SDKs are required: run `make sdks` (installs the pinned "+
			"versions from PyPI into %s): %s: %v\n%s", pySDK, py, err, out)
	}
	return py
}

// TestSDKStreamParsers reads the mock's Responses, chat and Messages
// answers, streamed and not, through the gateway with the official SDKs'
// stream helpers and validates every event against the SDKs' types
// (testdata/sdk_streams.py). Agent CLIs are built on the same event
// contracts: a missing response.output_item.added makes Codex log
// "OutputTextDelta without active item".
func TestSDKStreamParsers(t *testing.T) {
	t.Parallel()
	py := sdkPython(t)
	mock := startMock(t)
	gw := startGateway(t, exampleConfig(t, mock.URL), gatewayOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "sdk_streams.py"),
		gw.url, "mock-gpt", "mock-claude", mockllm.Answer)
	out, err := cmd.CombinedOutput()
	t.Logf("sdk_streams.py:\n%s", out)
	if err != nil {
		t.Fatalf("the SDKs rejected the mock's answers through the gateway: %v", err)
	}
	if !strings.Contains(string(out), `{"passed": 3}`) {
		t.Fatalf("sdk_streams.py did not finish its checks")
	}
}
