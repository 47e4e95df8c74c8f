#!/usr/bin/env bash
# Replaces the running extproc without a failed request (`make restart-extproc`,
# against a running `make run`):
#   1. start the new extproc in the free slot (Envoy's ext_proc cluster has two,
#      health-checked over gRPC every 0.5 s);
#   2. wait until Envoy sees it healthy;
#   3. SIGTERM the old one, which answers NOT_SERVING, takes new streams until
#      Envoy has stopped sending them, finishes those in flight and exits;
#      wait for the exit.
# For scripts/run.sh: `restart-extproc.sh start SLOT` runs extproc in the
# foreground in slot a or b; `serving` succeeds while the extproc of the slot
# serving runs, `running` while any does.
#
# The state lives in $SWITCHYARD_RUN_DIR/extproc (default .tools/run/extproc),
# written by scripts/run.sh:
#   args          extproc's flags other than -grpc, -metrics and -addr-file, one a line
#   envoy-admin   Envoy's admin address, host:port
#   a.slot b.slot the slot's -grpc and -metrics addresses, on one line
#   a.pid b.pid   the pid of the extproc in the slot
#   current       the slot serving
# EXTPROC_BIN (default bin/extproc) is the binary started.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${SWITCHYARD_RUN_DIR:-.tools/run}/extproc
EXTPROC_BIN=${EXTPROC_BIN:-bin/extproc}
# How long Envoy may take to see the new instance healthy: its check runs
# every 0.5 s.
HEALTHY_TIMEOUT=${SWITCHYARD_HEALTHY_TIMEOUT:-15}

die() { echo "restart-extproc: $*" >&2; exit 1; }
# alive: the process exists and is not a zombie waiting to be reaped.
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }
other() { if [ "$1" = a ]; then echo b; else echo a; fi; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# start SLOT: exec extproc in SLOT; its pid (this shell's, kept by exec) goes
# in SLOT.pid first.
start() {
  local slot=$1 grpc metrics args
  read -r grpc metrics <"$STATE/$slot.slot" || die "no slot $slot in $STATE"
  mapfile -t args <"$STATE/args"
  rm -f "$STATE/$slot.addr"
  echo $$ >"$STATE/$slot.pid"
  exec "$EXTPROC_BIN" "${args[@]}" -grpc "$grpc" -metrics "$metrics" -addr-file "$STATE/$slot.addr"
}

# healthy SOCKET: every host of Envoy's clusters at SOCKET is healthy (not
# failing its check, not ejected, not pending its first check).
healthy() {
  local flags
  flags=$(curl -fsS "http://$(cat "$STATE/envoy-admin")/clusters" | grep -F "::$1::health_flags::") || return 1
  ! grep -qv '::health_flags::healthy$' <<<"$flags"
}

restart() {
  [ -f "$STATE/current" ] || die "no extproc state in $STATE: is make run running?"
  local old new oldpid newpid grpc metrics t0 t1
  old=$(cat "$STATE/current")
  new=$(other "$old")
  oldpid=$(cat "$STATE/$old.pid")
  alive "$oldpid" || die "the extproc in slot $old (pid $oldpid) is not running"
  if [ -f "$STATE/$new.pid" ] && alive "$(cat "$STATE/$new.pid")"; then
    die "slot $new is busy (pid $(cat "$STATE/$new.pid")): is another restart running?"
  fi
  read -r grpc metrics <"$STATE/$new.slot"
  t0=$(now)
  rm -f "$STATE/$new.pid"
  setsid "$0" start "$new" >"$STATE/$new.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do [ -s "$STATE/$new.pid" ] && break; sleep 0.05; done
  newpid=$(cat "$STATE/$new.pid")
  echo ">> extproc pid $newpid starting in slot $new ($grpc, metrics http://$metrics/metrics, log $STATE/$new.log)"
  local deadline=$((SECONDS + HEALTHY_TIMEOUT))
  until healthy "${grpc#unix:}"; do
    alive "$newpid" || die "the new extproc exited: $(tail -n 5 "$STATE/$new.log")"
    if [ $SECONDS -ge $deadline ]; then
      kill -TERM "$newpid" 2>/dev/null || true
      die "Envoy did not see the new extproc healthy within ${HEALTHY_TIMEOUT}s; stopped it, slot $old still serves"
    fi
    sleep 0.1
  done
  echo ">> Envoy sees slot $new healthy after $(since "$t0"); draining pid $oldpid in slot $old"
  echo "$new" >"$STATE/current.tmp" && mv "$STATE/current.tmp" "$STATE/current"
  t1=$(now)
  kill -TERM "$oldpid"
  while alive "$oldpid"; do sleep 0.1; done
  echo ">> pid $oldpid exited after $(since "$t1") of drain; slot $new serves (restart took $(since "$t0"))"
}

slot_alive() { [ -s "$STATE/$1.pid" ] && alive "$(cat "$STATE/$1.pid")"; }

case "${1:-}" in
  start) start "${2:?slot a or b}" ;;
  serving) slot_alive "$(cat "$STATE/current")" ;;
  running) slot_alive a || slot_alive b ;;
  "") restart ;;
  *) die "usage: $0 [start a|b | serving | running]" ;;
esac
