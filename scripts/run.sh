#!/usr/bin/env bash
# Starts the mock LLM, extproc and Envoy on loopback; Ctrl-C stops all three.
# Called by `make run`, which has already installed Envoy and built bin/.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${SWITCHYARD_CONFIG:-examples/switchyard.yaml}
PORT=${SWITCHYARD_PORT:-10000}
ADMIN_PORT=${SWITCHYARD_ADMIN_PORT:-9901}
METRICS=${SWITCHYARD_METRICS:-127.0.0.1:9090}
MOCK_ADDR=${SWITCHYARD_MOCK_ADDR:-127.0.0.1:8081}
RUN_DIR=.tools/run
SOCK=/tmp/switchyard-extproc.sock
: "${ENVOY_BIN:?ENVOY_BIN is not set: run through make run}"

mkdir -p "$RUN_DIR"
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo ">> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

echo ">> mock LLM on $MOCK_ADDR"
bin/mockllm -addr "$MOCK_ADDR" 2>"$RUN_DIR/mockllm.log" &
pids+=($!)

echo ">> extproc (config $CONFIG, metrics http://$METRICS/metrics)"
bin/extproc -config "$CONFIG" -grpc "unix:$SOCK" -metrics "$METRICS" &
pids+=($!)

bin/extproc envoy-config -config "$CONFIG" -listen "$PORT" -admin "$ADMIN_PORT" -extproc "unix:$SOCK" >"$RUN_DIR/envoy.yaml"
echo ">> envoy on http://127.0.0.1:$PORT (admin 127.0.0.1:$ADMIN_PORT)"
"$ENVOY_BIN" -c "$RUN_DIR/envoy.yaml" --log-level warn --disable-hot-restart 2>"$RUN_DIR/envoy.log" &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
cat <<TXT

Switchyard is up. Try:
  curl -s http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"mock-gpt","messages":[{"role":"user","content":"Hello"}]}'
Claude Code and Codex: settings in README.md, "Using it with coding agents".
Logs: extproc on this terminal, $RUN_DIR/envoy.log, $RUN_DIR/mockllm.log. Ctrl-C stops everything.
TXT
# Exit (and stop the rest) as soon as any of the three dies.
wait -n "${pids[@]}"
