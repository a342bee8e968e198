#!/usr/bin/env bash
# Start loopline's servers as plain processes, without Docker: PostgreSQL (one cluster, databases
# mlflow, prefect, loopline_feedback), an MLflow tracking server with a local artifact store, and a
# Prefect server. Everything binds 127.0.0.1 (or --host) and lives under --state-dir; stop it all with
# stop-local-servers.sh --state-dir DIR. Prints (and writes DIR/env.sh with) the variables loopline reads.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: start-local-servers.sh [options]
  --state-dir DIR      data, logs and pid files (default: ./.loopline/servers)
  --host HOST          address the servers bind (default: 127.0.0.1)
  --mlflow-port N      MLflow tracking server port (default: 5000)
  --prefect-port N     Prefect server port (default: 4200)
  --postgres-port N    PostgreSQL port (default: 5432)
  --no-postgres        MLflow and Prefect on SQLite files, feedback store on SQLite
  --no-mlflow          do not start MLflow
  --no-prefect         do not start Prefect
  --python PATH        Python with mlflow and prefect installed (default: python3 on PATH)
  --timeout SECONDS    how long to wait for the servers to become healthy (default: 180)
PostgreSQL binaries are looked up in /usr/lib/postgresql/*/bin, then on PATH (apt-get install postgresql).
When run as root, PostgreSQL runs as the OS user 'postgres' (created if missing); DIR must then be
reachable by that user (e.g. under /tmp or /var/lib, not /root).
EOF
}

STATE_DIR=./.loopline/servers
HOST=127.0.0.1
MLFLOW_PORT=5000
PREFECT_PORT=4200
PG_PORT=5432
WITH_PG=1
WITH_MLFLOW=1
WITH_PREFECT=1
PY=${PYTHON:-python3}
TIMEOUT=180

while [[ $# -gt 0 ]]; do
  case "$1" in
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --host) HOST=$2; shift 2 ;;
    --mlflow-port) MLFLOW_PORT=$2; shift 2 ;;
    --prefect-port) PREFECT_PORT=$2; shift 2 ;;
    --postgres-port) PG_PORT=$2; shift 2 ;;
    --no-postgres) WITH_PG=0; shift ;;
    --no-mlflow) WITH_MLFLOW=0; shift ;;
    --no-prefect) WITH_PREFECT=0; shift ;;
    --python) PY=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "start-local-servers: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
LOG_DIR=$STATE_DIR/logs
RUN_DIR=$STATE_DIR/run
mkdir -p "$LOG_DIR" "$RUN_DIR"

# Telemetry off for every server started here.
export MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1

die() { echo "start-local-servers: $*" >&2; exit 1; }
log() { echo "start-local-servers: $*"; }

command -v "$PY" >/dev/null 2>&1 || die "python '$PY' not found (activate the venv or pass --python)"

# ----------------------------------------------------------------------------------------- postgres
PG_BIN=""
PG_OS_USER=""
as_pg() {  # run a PostgreSQL binary as the cluster owner
  if [[ -n $PG_OS_USER ]]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$PG_OS_USER" -- "$@"
    else
      su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

find_pg_bin() {
  local initdb
  initdb=$(printf "%s\n" /usr/lib/postgresql/*/bin/initdb | grep -v "\*" | sort -V | tail -n 1 || true)
  [[ -z $initdb ]] && initdb=$(command -v initdb || true)
  [[ -n $initdb ]] || die "PostgreSQL binaries not found: apt-get install -y postgresql, or pass --no-postgres"
  PG_BIN=$(dirname "$initdb")
}

start_postgres() {
  find_pg_bin
  local pg_dir=$STATE_DIR/postgres
  mkdir -p "$pg_dir"
  if [[ $(id -u) -eq 0 ]]; then
    PG_OS_USER=postgres
    if ! id "$PG_OS_USER" >/dev/null 2>&1; then
      log "creating OS user '$PG_OS_USER' to own the cluster"
      useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
    chown "$PG_OS_USER" "$pg_dir"
    if ! as_pg test -w "$pg_dir"; then
      log "allowing '$PG_OS_USER' to enter $STATE_DIR (chmod o+x)"
      chmod o+x "$STATE_DIR"
    fi
    as_pg test -w "$pg_dir" || die "user '$PG_OS_USER' cannot write $pg_dir: choose a --state-dir it can reach (e.g. under /tmp)"
  fi
  if [[ ! -f $pg_dir/data/PG_VERSION ]]; then
    log "initdb $pg_dir/data"
    as_pg env LC_ALL=C "$PG_BIN/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --locale=C \
      >"$LOG_DIR/initdb.log" 2>&1 || { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$pg_dir/data" status >/dev/null 2>&1; then
    log "postgres already running ($pg_dir/data)"
  else
    log "starting postgres on $HOST:$PG_PORT"
    local sock_dir=$pg_dir
    (( ${#sock_dir} > 90 )) && sock_dir=/tmp  # unix socket paths are limited to ~107 bytes
    as_pg "$PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -w -t 60 \
      -o "-c listen_addresses=$HOST -p $PG_PORT -k $sock_dir" start >/dev/null \
      || { tail -n 30 "$pg_dir/postgres.log" >&2; die "postgres did not start"; }
  fi
  local db
  for db in mlflow prefect loopline_feedback; do
    if [[ -z $(as_pg "$PG_BIN/psql" -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='$db'") ]]; then
      as_pg "$PG_BIN/createdb" -h "$HOST" -p "$PG_PORT" -U postgres "$db"
    fi
  done
}

# ----------------------------------------------------------------------------------- mlflow/prefect
running() {  # running NAME -> 0 when its pid file names a live process
  local pid_file=$RUN_DIR/$1.pid
  [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

spawn() {  # spawn NAME CMD... : detached in its own session (so stop can kill the whole group)
  local name=$1; shift
  if running "$name"; then
    log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
    return
  fi
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  else
    nohup "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$RUN_DIR/$name.pid"
  log "$name started (pid $!, log $LOG_DIR/$name.log)"
}

sql_driver() {  # SQLAlchemy driver for Postgres available to $PY
  if "$PY" -c "import psycopg" 2>/dev/null; then echo psycopg
  elif "$PY" -c "import psycopg2" 2>/dev/null; then echo psycopg2
  else echo ""
  fi
}

http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null
  fi
}

wait_healthy() {  # wait_healthy NAME URL DEADLINE
  local name=$1 url=$2 deadline=$3
  while ! http_ok "$url"; do
    if ! running "$name"; then
      tail -n 40 "$LOG_DIR/$name.log" >&2
      return 1
    fi
    if (( SECONDS >= deadline )); then
      tail -n 40 "$LOG_DIR/$name.log" >&2
      echo "start-local-servers: $name not healthy at $url within ${TIMEOUT}s" >&2
      return 1
    fi
    sleep 1
  done
  log "$name healthy: $url"
}

# ---------------------------------------------------------------------------------------------- main
MLFLOW_BACKEND="sqlite:///$STATE_DIR/mlflow/mlflow.db"
PREFECT_DB_URL=""
FEEDBACK_URL="sqlite:///$STATE_DIR/feedback.db"
if [[ $WITH_PG -eq 1 ]]; then
  start_postgres
  DRIVER=$(sql_driver)
  if [[ -n $DRIVER ]]; then
    MLFLOW_BACKEND="postgresql+$DRIVER://postgres@$HOST:$PG_PORT/mlflow"
    FEEDBACK_URL="postgresql+$DRIVER://postgres@$HOST:$PG_PORT/loopline_feedback"
  else
    log "no psycopg/psycopg2 in $PY: MLflow stays on SQLite (pip install 'psycopg[binary]')"
  fi
  PREFECT_DB_URL="postgresql+asyncpg://postgres@$HOST:$PG_PORT/prefect"
fi

if [[ $WITH_MLFLOW -eq 1 ]]; then
  mkdir -p "$STATE_DIR/mlflow/artifacts"
  # MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: the GenAI job runner is unused by loopline (7 processes).
  (
    cd "$STATE_DIR/mlflow"
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    spawn mlflow "$PY" -m mlflow server --backend-store-uri "$MLFLOW_BACKEND" \
      --artifacts-destination "$STATE_DIR/mlflow/artifacts" --serve-artifacts \
      --host "$HOST" --port "$MLFLOW_PORT" --workers 1
  )
fi

if [[ $WITH_PREFECT -eq 1 ]]; then
  mkdir -p "$STATE_DIR/prefect"
  (
    cd "$STATE_DIR/prefect"
    export PREFECT_HOME=$STATE_DIR/prefect/home
    unset PREFECT_API_URL
    if [[ -n $PREFECT_DB_URL ]]; then export PREFECT_API_DATABASE_CONNECTION_URL=$PREFECT_DB_URL; fi
    spawn prefect "$PY" -m prefect server start --host "$HOST" --port "$PREFECT_PORT"
  )
fi

DEADLINE=$(( SECONDS + TIMEOUT ))
FAILED=0
if [[ $WITH_MLFLOW -eq 1 ]]; then
  wait_healthy mlflow "http://$HOST:$MLFLOW_PORT/health" "$DEADLINE" || FAILED=1
fi
if [[ $WITH_PREFECT -eq 1 ]]; then
  wait_healthy prefect "http://$HOST:$PREFECT_PORT/api/health" "$DEADLINE" || FAILED=1
fi
if [[ $FAILED -eq 1 ]]; then
  echo "start-local-servers: stopping what was started" >&2
  "$SCRIPT_DIR/stop-local-servers.sh" --state-dir "$STATE_DIR" >&2 || true
  exit 1
fi

{
  echo "# written by start-local-servers.sh; load with: . $STATE_DIR/env.sh"
  [[ $WITH_MLFLOW -eq 1 ]] && echo "export LOOPLINE_TRACKING_URI=http://$HOST:$MLFLOW_PORT"
  [[ $WITH_PREFECT -eq 1 ]] && echo "export PREFECT_API_URL=http://$HOST:$PREFECT_PORT/api"
  echo "export LOOPLINE_FEEDBACK_DB_URL=$FEEDBACK_URL"
  echo "export MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1"
} >"$STATE_DIR/env.sh"
cat "$STATE_DIR/env.sh"
