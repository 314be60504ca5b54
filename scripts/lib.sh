#!/usr/bin/env bash
# Shared helpers for the service scripts (sourced, not run).
# Everything lives under <repo>/.cache so a fresh clone is self-contained.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${REPO_ROOT}/.cache"

log() { echo "[$(basename "$0")] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# port_open HOST PORT: bash /dev/tcp probe, so no nc/curl/java is needed.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_port HOST PORT TIMEOUT_S [PID]: poll until the port accepts connections.
# Gives up early if PID (the server) died, so failures are reported fast.
wait_port() {
  local host=$1 port=$2 timeout=$3 pid=${4:-} i
  for ((i = 0; i < timeout * 4; i++)); do
    port_open "$host" "$port" && return 0
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.25
  done
  return 1
}

# wait_http URL TIMEOUT_S [PID]: poll until URL answers 2xx.
wait_http() {
  local url=$1 timeout=$2 pid=${3:-} i
  for ((i = 0; i < timeout * 4; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.25
  done
  return 1
}

# pid_alive PIDFILE: true when the pid file names a running process.
pid_alive() {
  local f=$1 pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# stop_pid PIDFILE [TIMEOUT_S]: SIGTERM, bounded wait, then SIGKILL, so that
# cleanup can never hang (Jaeger ignores SIGTERM for a while, for instance).
stop_pid() {
  local f=$1 timeout=${2:-20} pid i
  if ! pid_alive "$f"; then rm -f "$f"; return 0; fi
  pid=$(<"$f")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
    sleep 0.25
  done
  log "pid $pid still running after ${timeout}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  rm -f "$f"
}

# kill9_pid PIDFILE: immediate SIGKILL (crash tests); keeps data on disk.
kill9_pid() {
  local f=$1 pid
  if ! pid_alive "$f"; then rm -f "$f"; return 0; fi
  pid=$(<"$f")
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$f"
}

# show_log_tail FILE: on a failed start, print what the server said.
show_log_tail() {
  [[ -f $1 ]] || return 0
  log "last lines of $1:"
  tail -n "${2:-40}" "$1" >&2 || true
}

# apt_install PKG...: install Debian packages non-interactively (update first,
# because a fresh machine has no package lists). Lock::Timeout makes a second
# concurrent installer wait for dpkg's lock instead of failing at once.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  local lock=(-o DPkg::Lock::Timeout=600)
  apt-get "${lock[@]}" update -qq
  apt-get "${lock[@]}" install -y -qq --no-install-recommends "$@"
}
