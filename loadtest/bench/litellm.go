package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// LiteLLMVersion is the LiteLLM release `make bench PEERS=litellm` installs
// from PyPI (litellm[proxy]) into .tools/litellm.
const LiteLLMVersion = "1.106.12"

// RolePeer marks the process of a peer gateway (LiteLLM); the report sums
// it apart from Envoy and extproc.
const RolePeer = "peer"

// liteLLMConfig routes the benchmark's model to the mock: no database, no
// callbacks, no budget or spend tracking; the proxy as a plain gateway.
func liteLLMConfig(upstream, masterKey string) string {
	return "model_list:\n" +
		"  - model_name: " + Model + "\n" +
		"    litellm_params:\n" +
		"      model: openai/" + Model + "\n" +
		"      api_base: " + upstream + "/v1\n" +
		"      api_key: bench-no-key\n" +
		"litellm_settings:\n" +
		"  callbacks: []\n" +
		"  success_callback: []\n" +
		"  failure_callback: []\n" +
		"  telemetry: false\n" +
		"  drop_params: true\n" +
		"general_settings:\n" +
		"  master_key: " + masterKey + "\n"
}

// liteLLMEnv keeps LiteLLM quiet and offline: errors only, the model cost
// map from the package rather than the network, no telemetry, no database.
var liteLLMEnv = []string{
	"LITELLM_LOG=ERROR",
	"LITELLM_LOCAL_MODEL_COST_MAP=True",
	"LITELLM_TELEMETRY=False",
	"DISABLE_SCHEMA_UPDATE=True",
	"STORE_MODEL_IN_DB=False",
}

// startLiteLLM starts the LiteLLM proxy (one worker) against the mock and
// waits for its liveness endpoint.
func (s *Stack) startLiteLLM(ctx context.Context, cfg StackConfig) (Path, error) {
	// LiteLLM refuses to start without a master key (it would accept
	// every caller); the load generator sends it like a client would.
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		return Path{}, fmt.Errorf("making a litellm key: %w", err)
	}
	masterKey := "sk-bench-" + hex.EncodeToString(key)
	config := filepath.Join(cfg.Dir, "litellm.yaml")
	if err := os.WriteFile(config, []byte(liteLLMConfig(cfg.UpstreamURL, masterKey)), 0o600); err != nil {
		return Path{}, fmt.Errorf("writing litellm config: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return Path{}, fmt.Errorf("picking a port: %w", err)
	}
	// No database: DATABASE_URL must be unset, not empty.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "DATABASE_URL=") })
	cmd, err := s.startEnv(cfg.LiteLLM, "litellm", append(env, liteLLMEnv...), "--config", config, "--host", "127.0.0.1",
		"--port", strconv.Itoa(port), "--num_workers", "1")
	if err != nil {
		return Path{}, err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitForLong(ctx, cmd, func() bool {
		resp, err := http.Get(url + "/health/liveliness")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return Path{}, fmt.Errorf("waiting for litellm: %w%s", err, s.logTail("litellm"))
	}
	return Path{
		Target: Target{Name: PathLiteLLM, URL: url, SecretHeaders: map[string]string{"Authorization": "Bearer " + masterKey}},
		Procs:  []Proc{{Name: "litellm", Role: RolePeer, PID: cmd.cmd.Process.Pid}},
	}, nil
}

// freePort picks a port for LiteLLM, which cannot bind port 0 and say which
// port it got. The bench is not a test run in parallel with others; a lost
// race shows as LiteLLM failing to start, with its log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
