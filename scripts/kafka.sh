#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) from Maven
# Central jars: no Docker and no Kafka tarball are reachable here.
# Usage: scripts/kafka.sh start|stop|status|kill9|restart|reset|fetch
#   start    fetch jars if needed, format a fresh data dir once, start, wait for the port
#   stop     SIGTERM, bounded wait, then SIGKILL (data kept)
#   kill9    SIGKILL at once (crash test; data kept)
#   restart  stop if running, start again on the same log.dirs (data kept)
#   reset    stop and delete the data dir (next start formats a new cluster)
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP (-Xmx768m)
# Prints the bootstrap address (127.0.0.1:9092) on stdout when started.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx768m}"
DIR="${CACHE_DIR}/kafka"
LIBS="${DIR}/libs"
DATA="${DIR}/data"
PROPS="${DIR}/server.properties"
PIDFILE="${DIR}/kafka.pid"
LOGFILE="${DIR}/server.log"
BOOTSTRAP="127.0.0.1:${KAFKA_PORT}"

fetch() {
  # Marker file: a copy interrupted halfway must not count as done.
  [[ -f "${LIBS}/.complete-${KAFKA_VERSION}" ]] && return 0
  log "resolving kafka_2.13:${KAFKA_VERSION} jars with maven"
  local pomdir="${DIR}/pom"
  rm -rf "$LIBS" && mkdir -p "$LIBS" "$pomdir"
  # Throwaway pom: just the broker plus an slf4j 1.7 binding (Kafka logs via
  # slf4j-api 1.7.36; without a binding it logs nothing at all).
  cat >"${pomdir}/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.eventstream</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
POM
  (cd "$pomdir" && mvn -q -B dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime -Dstyle.color=never >&2)
  touch "${LIBS}/.complete-${KAFKA_VERSION}"
}

write_props() {
  # Rewritten on every start so port overrides take effect; data stays in DATA.
  cat >"$PROPS" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${DATA}
# One node: every internal topic must fit on a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
num.partitions=3
# Tests join groups constantly: skip the 3 s initial rebalance delay.
group.initial.rebalance.delay.ms=0
# The bus must provision its own topics; auto-creation would hide bugs.
auto.create.topics.enable=false
PROPS
}

format_once() {
  # meta.properties marks a formatted dir; re-formatting would lose data.
  [[ -f "${DATA}/meta.properties" ]] && return 0
  mkdir -p "$DATA"
  local id
  id=$(java -cp "${LIBS}/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
  log "formatting ${DATA} (cluster id ${id})"
  # The tool dumps the whole KafkaConfig: keep it in a file, show it on failure.
  if ! java -cp "${LIBS}/*" kafka.tools.StorageTool format -t "$id" -c "$PROPS" --standalone \
      >"${DIR}/format.log" 2>&1; then
    show_log_tail "${DIR}/format.log"; rm -rf "$DATA"; die "storage format failed"
  fi
}

start() {
  if pid_alive "$PIDFILE"; then
    log "already running (pid $(<"$PIDFILE"))"; echo "$BOOTSTRAP"; return 0
  fi
  if port_open 127.0.0.1 "$KAFKA_PORT"; then die "port ${KAFKA_PORT} is taken by another process"; fi
  fetch
  mkdir -p "$DIR"
  write_props
  format_once
  local t0=$SECONDS
  # setsid: own process group, so a test runner's Ctrl-C doesn't kill it.
  setsid java ${KAFKA_HEAP} -cp "${LIBS}/*" kafka.Kafka "$PROPS" >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_port 127.0.0.1 "$KAFKA_PORT" 60 "$(<"$PIDFILE")"; then
    show_log_tail "$LOGFILE"; stop_pid "$PIDFILE" 10; die "kafka did not open ${BOOTSTRAP}"
  fi
  log "kafka ready on ${BOOTSTRAP} after $((SECONDS - t0))s (pid $(<"$PIDFILE"), log ${LOGFILE})"
  echo "$BOOTSTRAP"
}

stop() { stop_pid "$PIDFILE" 30; log "stopped"; }

status() {
  if pid_alive "$PIDFILE"; then echo "running (pid $(<"$PIDFILE")) on ${BOOTSTRAP}"; else echo "stopped"; return 1; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  kill9) kill9_pid "$PIDFILE"; log "killed with SIGKILL (data kept in ${DATA})" ;;
  restart) stop; start ;;
  reset) stop; rm -rf "$DATA" "$LOGFILE"; log "data removed" ;;
  *) echo "usage: $0 start|stop|status|kill9|restart|reset|fetch" >&2; exit 2 ;;
esac
