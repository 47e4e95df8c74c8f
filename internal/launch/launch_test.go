package launch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAdmin answers like Envoy's admin API: /ready, and /listeners with one
// listener named switchyard on port 4321.
func fakeAdmin(t *testing.T, ready *bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			if !*ready {
				http.Error(w, "PRE_INITIALIZING", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "LIVE")
		case "/listeners":
			fmt.Fprint(w, `{"listener_statuses":[{"name":"baseline","local_address":{"socket_address":{"address":"127.0.0.1","port_value":1234}}},`+
				`{"name":"switchyard","local_address":{"socket_address":{"address":"127.0.0.1","port_value":4321}}}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestWaitEnvoyAndListener(t *testing.T) {
	t.Parallel()
	ready := true
	admin := fakeAdmin(t, &ready)
	file := filepath.Join(t.TempDir(), "admin.addr")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The file appears later, empty first, as Envoy writes it.
	go func() {
		os.WriteFile(file, nil, 0o600)
		os.WriteFile(file, []byte(admin), 0o600)
	}()
	got, err := WaitEnvoy(ctx, file, nil)
	if err != nil || got != admin {
		t.Fatalf("WaitEnvoy = %q, %v; want %q", got, err, admin)
	}
	l, err := EnvoyListener(ctx, admin, "switchyard")
	if err != nil || l != "127.0.0.1:4321" {
		t.Errorf("EnvoyListener = %q, %v; want 127.0.0.1:4321", l, err)
	}
	if _, err := EnvoyListener(ctx, admin, "nope"); err == nil {
		t.Error("EnvoyListener found a listener that does not exist")
	}
}

func TestWaitEnvoyGivesUp(t *testing.T) {
	t.Parallel()
	ready := false
	admin := fakeAdmin(t, &ready)
	file := filepath.Join(t.TempDir(), "admin.addr")
	os.WriteFile(file, []byte(admin), 0o600)
	exited := make(chan struct{})
	close(exited)
	if _, err := WaitEnvoy(context.Background(), file, exited); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitEnvoy after the process exited: %v, want an error saying so", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := WaitEnvoy(ctx, file, nil); err == nil || !strings.Contains(err.Error(), "PRE_INITIALIZING") {
		t.Errorf("WaitEnvoy on an Envoy that never gets ready: %v, want the last /ready answer", err)
	}
}

func TestWaitExtproc(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "addrs.json")
	os.WriteFile(file, []byte(`{"grpc":"unix:/tmp/x.sock","metrics":"127.0.0.1:9"}`+"\n"), 0o600)
	got, err := WaitExtproc(context.Background(), file, nil)
	if err != nil || got != (Extproc{GRPC: "unix:/tmp/x.sock", Metrics: "127.0.0.1:9"}) {
		t.Errorf("WaitExtproc = %+v, %v", got, err)
	}
}

func TestFindEnvoyChecksTheVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fake := filepath.Join(dir, "envoy")
	script := "#!/bin/sh\necho 'envoy  version: abc/1.39.2/Clean/RELEASE/BoringSSL'\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindEnvoy(fake, "1.39.0"); err != nil {
		t.Errorf("a 1.39 patch release for 1.39.0: %v", err)
	}
	if _, err := FindEnvoy(fake, "1.40.0"); err == nil || !strings.Contains(err.Error(), "is not Envoy 1.40") {
		t.Errorf("Envoy 1.39 for 1.40.0: %v, want a version error", err)
	}
}
