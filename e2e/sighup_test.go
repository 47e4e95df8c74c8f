package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloads: the config path is a link to a file in another
// directory, where the watcher sees no event; SIGHUP reloads it.
func TestSIGHUPReloads(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "A"), startUpstream(t, "B")
	real := filepath.Join(t.TempDir(), "real.yaml")
	writeFile(t, real, standardConfig(a, b, ""))
	link := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, "", gatewayOptions{configFile: link, extraEnv: testEnv})
	status := func() int {
		return gw.do(t, "POST", "/v1/chat/completions", bearer(clientKeyA), `{"model":"hup-model"}`).status
	}
	if got := status(); got != 404 {
		t.Fatalf("before the change: %d, want 404", got)
	}
	writeFile(t, real, standardConfig(a, b, "  - model: hup-model\n    provider: alpha\n"))
	time.Sleep(500 * time.Millisecond) // longer than the watcher's debounce
	if got := status(); got != 404 {
		t.Fatalf("the change was picked up without SIGHUP (%d): this test no longer isolates the signal", got)
	}
	if err := syscall.Kill(gw.extprocPID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for status() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the config\n%s", grep(gw.metrics(t), "switchyard_config"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
