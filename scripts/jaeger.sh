#!/usr/bin/env bash
# Jaeger v2 all-in-one (in-memory storage), built from its Go module because
# there is no package or downloadable binary reachable here.
# Usage: scripts/jaeger.sh build|start|stop|status
#   OTLP gRPC 127.0.0.1:4317, OTLP HTTP 127.0.0.1:4318, query API http://127.0.0.1:16686
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"

JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
DIR="${CACHE_DIR}/jaeger"
BIN="${DIR}/bin/jaeger"
PIDFILE="${DIR}/jaeger.pid"
LOGFILE="${DIR}/jaeger.log"
QUERY_URL="http://127.0.0.1:16686/api/v3/services"

build() {
  [[ -x $BIN ]] && return 0
  log "building jaeger ${JAEGER_VERSION} (cold build takes ~6 min on 2 cores)"
  mkdir -p "${DIR}/src" "${DIR}/bin"
  # A scratch module of its own: GOWORK=off and running inside it keep the
  # repo's go.mod out of the build; -mod=mod lets go update the scratch go.sum.
  (
    cd "${DIR}/src"
    export GOWORK=off GOFLAGS=-mod=mod
    [[ -f go.mod ]] || go mod init jaeger-scratch >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@${JAEGER_VERSION}"
    go build -o "${BIN}.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
    mv "${BIN}.tmp" "$BIN"   # atomic: a killed build never leaves a half binary
  )
}

start() {
  if pid_alive "$PIDFILE"; then log "already running (pid $(<"$PIDFILE"))"; return 0; fi
  build
  # A leftover Jaeger would answer the readiness probe in place of ours.
  if port_open 127.0.0.1 16686; then die "port 16686 is taken by another process"; fi
  local t0=$SECONDS
  # No arguments = all-in-one with memory storage. setsid detaches it from
  # the caller's process group so Ctrl-C in a test run doesn't hit it.
  setsid "$BIN" >"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_http "$QUERY_URL" 60 "$(<"$PIDFILE")"; then
    show_log_tail "$LOGFILE"; stop_pid "$PIDFILE" 10; die "jaeger did not become ready"
  fi
  log "jaeger ready after $((SECONDS - t0))s: OTLP grpc 127.0.0.1:4317, http 127.0.0.1:4318, query http://127.0.0.1:16686"
  echo "http://127.0.0.1:16686"
}

# Jaeger keeps retrying its own telemetry export after SIGTERM and does not exit
# (checked: still up after 10 s); memory storage has nothing to flush, so a short
# bounded wait then SIGKILL.
stop() { stop_pid "$PIDFILE" "${JAEGER_STOP_TIMEOUT_S:-5}"; log "stopped"; }

status() {
  if pid_alive "$PIDFILE"; then echo "running (pid $(<"$PIDFILE"))"; else echo "stopped"; return 1; fi
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 build|start|stop|status" >&2; exit 2 ;;
esac
