#!/usr/bin/env bash
# Starts the mock LLM, extproc and Envoy on loopback; Ctrl-C stops all three.
# Called by `make run`, which has already installed Envoy and built bin/.
# With SWITCHYARD_GLOBAL_LIMITS=1 (`make run-global`) it also starts Redis and
# envoyproxy/ratelimit on unix sockets under .tools/run and points the config's
# rate_limit_service at them, as every replica of a deployment would be.
# Envoy takes its listeners, routes and clusters from extproc over ADS;
# SWITCHYARD_STATIC_ENVOY=1 renders them into a static config instead.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${SWITCHYARD_CONFIG:-examples/switchyard.yaml}
PORT=${SWITCHYARD_PORT:-10000}
ADMIN_PORT=${SWITCHYARD_ADMIN_PORT:-9901}
METRICS=${SWITCHYARD_METRICS:-127.0.0.1:9090}
MOCK_ADDR=${SWITCHYARD_MOCK_ADDR:-127.0.0.1:8081}
RUN_DIR=${SWITCHYARD_RUN_DIR:-.tools/run}
SOCK=${SWITCHYARD_SOCK:-/tmp/switchyard-extproc.sock}
# Two extproc slots, so that `make restart-extproc` replaces the one serving
# without a failed request; the second's metrics port is the next one.
EXTPROC_STATE=$RUN_DIR/extproc
SLOT_A=unix:${SOCK%.sock}-a.sock SLOT_B=unix:${SOCK%.sock}-b.sock
METRICS_B=${METRICS%:*}:$((${METRICS##*:} + 1))
# Envoy takes its listener, routes and clusters from extproc over ADS;
# SWITCHYARD_STATIC_ENVOY=1 renders them into a static file instead.
XDS=-xds
if [ "${SWITCHYARD_STATIC_ENVOY:-}" = 1 ]; then XDS=; fi
# Envoy keeps big bodies and summarizes them with the body module (make
# build); SWITCHYARD_BODY_MODULE= (empty) sends them to extproc instead.
BODY_MODULE=${SWITCHYARD_BODY_MODULE-$PWD/bin/libswitchyard_body.so}
: "${ENVOY_BIN:?ENVOY_BIN is not set: run through make run}"

mkdir -p "$RUN_DIR"
rm -rf "$EXTPROC_STATE"
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo ">> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # extproc in either slot, restarted ones included.
  for f in "$EXTPROC_STATE"/a.pid "$EXTPROC_STATE"/b.pid; do
    [ -s "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 400); do scripts/restart-extproc.sh running 2>/dev/null || break; sleep 0.1; done
}
trap stop INT TERM EXIT

echo ">> mock LLM on $MOCK_ADDR"
bin/mockllm -addr "$MOCK_ADDR" 2>"$RUN_DIR/mockllm.log" &
pids+=($!)

if [ "${SWITCHYARD_GLOBAL_LIMITS:-}" = 1 ]; then
  : "${RATELIMIT_BIN:?RATELIMIT_BIN is not set: run through make run-global}"
  RUN_ABS=$(cd "$RUN_DIR" && pwd)
  rm -f "$RUN_ABS/redis.sock" "$RUN_ABS/ratelimit.sock"
  echo ">> redis on unix:$RUN_ABS/redis.sock"
  "$REDIS_BIN" --port 0 --unixsocket "$RUN_ABS/redis.sock" --save '' --appendonly no >"$RUN_DIR/redis.log" 2>&1 &
  pids+=($!)
  mkdir -p "$RUN_DIR/ratelimit/config"
  GLOBAL_CONFIG="$RUN_DIR/switchyard-global.yaml"
  { cat "$CONFIG"; printf '\nrate_limit_service: {address: "unix:%s/ratelimit.sock", failure_mode: allow}\n' "$RUN_ABS"; } >"$GLOBAL_CONFIG"
  CONFIG=$GLOBAL_CONFIG
  bin/extproc ratelimit-config -config "$CONFIG" >"$RUN_DIR/ratelimit/config/config.yaml"
  for _ in $(seq 1 100); do [ -S "$RUN_ABS/redis.sock" ] && break; sleep 0.1; done
  echo ">> envoyproxy/ratelimit on unix:$RUN_ABS/ratelimit.sock"
  env USE_STATSD=false LOG_LEVEL=warn GRPC_UDS="$RUN_ABS/ratelimit.sock" HOST=127.0.0.1 PORT=0 DEBUG_HOST=127.0.0.1 DEBUG_PORT=0 \
    REDIS_SOCKET_TYPE=unix REDIS_URL="$RUN_ABS/redis.sock" RUNTIME_ROOT="$RUN_ABS/ratelimit" RUNTIME_SUBDIRECTORY=. RUNTIME_WATCH_ROOT=false \
    "$RATELIMIT_BIN" >"$RUN_DIR/ratelimit.log" 2>&1 &
  pids+=($!)
fi

echo ">> extproc in slot a (config $CONFIG, metrics http://$METRICS/metrics)"
mkdir -p "$EXTPROC_STATE"
printf '%s\n' -config "$CONFIG" $XDS >"$EXTPROC_STATE/args"
echo "$SLOT_A $METRICS" >"$EXTPROC_STATE/a.slot"
echo "$SLOT_B $METRICS_B" >"$EXTPROC_STATE/b.slot"
echo "127.0.0.1:$ADMIN_PORT" >"$EXTPROC_STATE/envoy-admin"
echo a >"$EXTPROC_STATE/current"
scripts/restart-extproc.sh start a &
echo $! >"$EXTPROC_STATE/a.pid"
# Stands for extproc among the processes watched below, whichever slot serves.
(while scripts/restart-extproc.sh serving; do sleep 0.5; done; echo ">> extproc exited") &
pids+=($!)

bin/extproc envoy-config -config "$CONFIG" -listen "$PORT" -admin "$ADMIN_PORT" -extproc "$SLOT_A,$SLOT_B" \
  ${BODY_MODULE:+-body-module "$BODY_MODULE"} $XDS >"$RUN_DIR/envoy.yaml"
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
Logs: extproc on this terminal (after make restart-extproc: $EXTPROC_STATE/<slot>.log), $RUN_DIR/envoy.log, $RUN_DIR/mockllm.log (and with run-global
$RUN_DIR/redis.log, $RUN_DIR/ratelimit.log). Ctrl-C stops everything.
TXT
# Exit (and stop the rest) as soon as any of them dies.
wait -n "${pids[@]}"
