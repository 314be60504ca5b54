#!/usr/bin/env bash
# Prometheus from Debian's package (2.42), started by hand: no init system here.
# Usage: scripts/prometheus.sh install|start|stop|status
#   PROM_CONFIG  config file, relative to the repo root or absolute
#                (default grafana/prometheus/prometheus.yml)
#   PROM_PORT    listen port on 127.0.0.1 (default 9090)
# Each start uses a fresh TSDB dir so tests never see an earlier run's series.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"

PROM_PORT="${PROM_PORT:-9090}"
PROM_CONFIG="${PROM_CONFIG:-grafana/prometheus/prometheus.yml}"
DIR="${CACHE_DIR}/prometheus"
PIDFILE="${DIR}/prometheus.pid"
LOGFILE="${DIR}/prometheus.log"
URL="http://127.0.0.1:${PROM_PORT}"

install() {
  # dpkg -s too: the binary appears before a concurrent install has finished.
  [[ -x /usr/bin/prometheus ]] &&
    [[ $(dpkg-query -W -f='${Status}' prometheus 2>/dev/null) == "install ok installed" ]] && return 0
  log "installing Debian package prometheus (about a minute)"
  apt_install prometheus >&2
}

start() {
  if pid_alive "$PIDFILE"; then log "already running (pid $(<"$PIDFILE"))"; echo "$URL"; return 0; fi
  install
  cd "$REPO_ROOT"   # so the relative default config path works from anywhere
  [[ -f $PROM_CONFIG ]] || die "config ${PROM_CONFIG} not found"
  if port_open 127.0.0.1 "$PROM_PORT"; then die "port ${PROM_PORT} is taken by another process"; fi
  rm -rf "${DIR}/data" && mkdir -p "${DIR}/data"
  local t0=$SECONDS
  setsid /usr/bin/prometheus \
    --config.file="$PROM_CONFIG" \
    --storage.tsdb.path="${DIR}/data" \
    --web.listen-address="127.0.0.1:${PROM_PORT}" \
    --enable-feature=exemplar-storage \
    >"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_http "${URL}/-/ready" 60 "$(<"$PIDFILE")"; then
    show_log_tail "$LOGFILE"; stop_pid "$PIDFILE" 10; die "prometheus did not become ready"
  fi
  log "prometheus ready on ${URL} after $((SECONDS - t0))s (config ${PROM_CONFIG})"
  echo "$URL"
}

stop() { stop_pid "$PIDFILE" 20; log "stopped"; }

status() {
  if pid_alive "$PIDFILE"; then echo "running (pid $(<"$PIDFILE")) on ${URL}"; else echo "stopped"; return 1; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
