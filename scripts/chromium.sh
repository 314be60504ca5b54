#!/usr/bin/env bash
# Headless Chromium (Debian package) to look at the introspection page as a
# person would: a screenshot, the DOM after scripts ran, and console errors.
# Usage:
#   scripts/chromium.sh install                  apt-get install chromium if missing
#   scripts/chromium.sh screenshot URL OUT.png   1400x900 PNG (CHROMIUM_WINDOW=W,H to change)
#   scripts/chromium.sh dom URL                  serialized DOM on stdout
#   scripts/chromium.sh console URL              page console messages on stdout; exits 1
#                                                if any is an error or an uncaught exception
# CHROMIUM_BUDGET_MS (default 5000): virtual time given to the page's scripts
# (timers, fetches) before the capture, so JS-rendered content is there.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"

BUDGET_MS="${CHROMIUM_BUDGET_MS:-5000}"
WINDOW="${CHROMIUM_WINDOW:-1400,900}"

chromium_bin() { command -v chromium || command -v chromium-browser || true; }

install() {
  [[ -n $(chromium_bin) ]] && return 0
  log "installing Debian package chromium"
  apt_install chromium fonts-dejavu-core >&2
}

# run_headless ARGS...: one throwaway profile per run. As root Chromium needs
# --no-sandbox; the background-networking/component/sync flags stop it from
# calling hosts this machine cannot reach (which would also slow it down).
run_headless() {
  local bin profile rc=0
  bin=$(chromium_bin); [[ -n $bin ]] || die "chromium not installed: run $0 install"
  profile=$(mktemp -d "${TMPDIR:-/tmp}/chromium-profile.XXXXXX")
  # timeout: a page that never settles must not hang a test run.
  timeout "${CHROMIUM_TIMEOUT_S:-120}" "$bin" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars \
    --user-data-dir="$profile" --virtual-time-budget="$BUDGET_MS" "$@" || rc=$?
  rm -rf "$profile"
  return "$rc"
}

screenshot() {
  local url=$1 out=$2
  mkdir -p "$(dirname "$out")"
  rm -f "$out"
  # Chromium prints "bytes written to file" on stderr; keep stderr for errors only.
  run_headless --screenshot="$(realpath -m "$out")" --window-size="$WINDOW" "$url" 2>/dev/null
  [[ -s $out ]] || die "no screenshot written to $out"
  log "screenshot of $url written to $out"
}

dom() { run_headless --dump-dom "$1" 2>/dev/null; }

# Console capture, checked with Debian's chromium 156: with --enable-logging=stderr
# --v=0 every console.* call and every uncaught exception shows up on stderr as
#   [pid:tid:date/time:INFO:CONSOLE:LINE] "message", source: URL (LINE)
# The level is always INFO whatever the console method was (--v=1 does not add
# it), so console.error and console.log look alike; uncaught exceptions read
# "Uncaught Error: ...", failed fetches "Failed to load resource: ...".
# So we print every CONSOLE line and fail on one whose text looks like an error:
# a page under test should put "error" in the text of what it console.error()s.
console() {
  local url=$1 errlog
  errlog=$(mktemp)
  run_headless --enable-logging=stderr --v=0 --dump-dom "$url" >/dev/null 2>"$errlog" || true
  grep -E 'CONSOLE' "$errlog" || true
  if grep -E 'CONSOLE' "$errlog" | grep -qiE 'uncaught|error|failed to load'; then
    rm -f "$errlog"; return 1
  fi
  rm -f "$errlog"
}

case "${1:-}" in
  install) install ;;
  screenshot) [[ $# -eq 3 ]] || die "usage: $0 screenshot URL OUT.png"; screenshot "$2" "$3" ;;
  dom) [[ $# -eq 2 ]] || die "usage: $0 dom URL"; dom "$2" ;;
  console) [[ $# -eq 2 ]] || die "usage: $0 console URL"; console "$2" ;;
  *) echo "usage: $0 install | screenshot URL OUT.png | dom URL | console URL" >&2; exit 2 ;;
esac
