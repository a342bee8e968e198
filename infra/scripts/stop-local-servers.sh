#!/usr/bin/env bash
# Stop what start-local-servers.sh started in --state-dir: Prefect and MLflow (their whole process
# groups: SIGTERM, then SIGKILL after --timeout) and the PostgreSQL cluster (pg_ctl stop -m fast).
# Data stays in the state dir; delete the folder to start from scratch.
set -euo pipefail

STATE_DIR=./.loopline/servers
TIMEOUT=30
while [[ $# -gt 0 ]]; do
  case "$1" in
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    -h|--help) echo "Usage: stop-local-servers.sh [--state-dir DIR] [--timeout SECONDS]"; exit 0 ;;
    *) echo "stop-local-servers: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ -d $STATE_DIR ]] || { echo "stop-local-servers: no state dir $STATE_DIR" >&2; exit 1; }
STATE_DIR=$(cd "$STATE_DIR" && pwd)
log() { echo "stop-local-servers: $*"; }

signal_group() {  # signal_group SIGNAL PID: the process group led by PID (setsid), else PID alone
  kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true
}

group_alive() {  # any process left in the group (or the pid itself)?
  kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null
}

stop_server() {
  local name=$1 pid_file=$STATE_DIR/run/$1.pid pid waited=0
  [[ -f $pid_file ]] || return 0
  pid=$(cat "$pid_file")
  if group_alive "$pid"; then
    log "stopping $name (pid $pid)"
    signal_group TERM "$pid"
    while group_alive "$pid" && (( waited < TIMEOUT )); do sleep 1; waited=$(( waited + 1 )); done
    if group_alive "$pid"; then
      log "$name still running after ${TIMEOUT}s: SIGKILL"
      signal_group KILL "$pid"
    fi
  fi
  rm -f "$pid_file"
}

stop_server prefect
stop_server mlflow

PG_DATA=$STATE_DIR/postgres/data
if [[ -f $PG_DATA/postmaster.pid ]]; then
  PG_CTL=$(printf "%s\n" /usr/lib/postgresql/*/bin/pg_ctl | grep -v "\*" | sort -V | tail -n 1 || true)
  [[ -z $PG_CTL ]] && PG_CTL=$(command -v pg_ctl || true)
  [[ -n $PG_CTL ]] || { echo "stop-local-servers: pg_ctl not found" >&2; exit 1; }
  log "stopping postgres ($PG_DATA)"
  owner=$(stat -c %U "$PG_DATA")
  if [[ $(id -u) -eq 0 && $owner != root ]]; then
    runuser -u "$owner" -- "$PG_CTL" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >/dev/null
  else
    "$PG_CTL" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >/dev/null
  fi
fi
log "done"
