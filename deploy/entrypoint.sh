#!/bin/sh
# Entrypoint of the fraud-detection image: maps the BYTEWAX_* environment that waxctl, the
# bytewax Helm chart and k8s/ set to the flags of `python -m bytewax.run`, prepares the
# recovery store, and execs the dataflow (python becomes PID 1).
#
# Usage: entrypoint.sh [run | init-recovery | write-hostfile | print-command | shell CMD...]
#   run             (default) the dataflow; initialises the recovery store first if missing
#   init-recovery   create this process's recovery partitions unless present (init container)
#   write-hostfile  write BYTEWAX_HOSTFILE_PATH for BYTEWAX_REPLICAS processes (init container)
#   print-command   dry run: print the command `run` would exec, change nothing
#   any other word  exec'd as a command (e.g. `fraud sql ...`, `python -m service.cli ...`)
# FRAUD_ENTRYPOINT_DRY_RUN=1 turns every mode into a dry run (prints, changes nothing).
#
# Environment read here (all optional unless said):
#   FRAUD_DATAFLOW                import string (default dataflow:flow)
#   BYTEWAX_PYTHON_FILE_PATH      waxctl/Helm chart: the dataflow file; wins over FRAUD_DATAFLOW
#   BYTEWAX_WORKDIR               working directory (default: the image's, /app)
#   BYTEWAX_WORKERS_PER_PROCESS   -w (default 1)
#   BYTEWAX_PROCESS_ID            -i; else the ordinal of BYTEWAX_POD_NAME in
#                                 BYTEWAX_STATEFULSET_NAME (StatefulSet pod <name>-<i>)
#   BYTEWAX_ADDRESSES             -a "host:port;host:port"; else read from BYTEWAX_HOSTFILE_PATH
#   BYTEWAX_REPLICAS              number of processes (checked against the addresses)
#   BYTEWAX_RECOVERY_DIRECTORY    -r; with -s BYTEWAX_SNAPSHOT_INTERVAL (default 10) and
#                                 -b BYTEWAX_RECOVERY_BACKUP_INTERVAL (default 0), seconds
#   BYTEWAX_RECOVERY_PARTS        recovery partitions in total (default processes x workers)
#   BYTEWAX_KEEP_CONTAINER_ALIVE  "true": sleep after the dataflow ends (troubleshooting)
#   write-hostfile: BYTEWAX_STATEFULSET_NAME, BYTEWAX_HEADLESS_SERVICE (default: the
#     StatefulSet's name), POD_NAMESPACE, BYTEWAX_CLUSTER_DOMAIN (cluster.local),
#     BYTEWAX_PROCESS_PORT (9999)
#   FRAUD_STOP_TIMEOUT_SECONDS    after SIGTERM, exit at the latest after this (default 10);
#                                 see launch_dataflow.py for what a stop keeps
#   FRAUD_TOPIC_PARTITIONS        Kafka partitions (default 10): processes x workers must
#                                 divide it (bytewax 0.21.1 can stall otherwise);
#                                 FRAUD_ALLOW_UNEVEN_PARTITIONS=1 skips that check
set -eu

PYTHON="${PYTHON:-python}"
DRY_RUN="${FRAUD_ENTRYPOINT_DRY_RUN:-0}"
# launch_dataflow.py (next to this script) runs bytewax.run with a SIGTERM handler: see there.
HERE="$(cd "$(dirname "$0")" && pwd)"
LAUNCHER="${FRAUD_LAUNCHER:-$HERE/launch_dataflow.py}"

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 64; }

is_uint() {
  case "$1" in
    ''|*[!0-9]*) return 1 ;;
    *) return 0 ;;
  esac
}

# Shell-quote one word for printing (dry run / logs).
quote() {
  case "$1" in
    '') printf "''" ;;
    *[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}

print_words() {
  sep=''
  for word in "$@"; do
    printf '%s' "$sep"
    quote "$word"
    sep=' '
  done
  printf '\n'
}

workers() {
  w="${BYTEWAX_WORKERS_PER_PROCESS:-1}"
  is_uint "$w" && [ "$w" -ge 1 ] || die "BYTEWAX_WORKERS_PER_PROCESS must be a positive integer, not '$w'"
  printf '%s' "$w"
}

replicas() {
  r="${BYTEWAX_REPLICAS:-1}"
  is_uint "$r" && [ "$r" -ge 1 ] || die "BYTEWAX_REPLICAS must be a positive integer, not '$r'"
  printf '%s' "$r"
}

# This process's index, or nothing when it is a single process outside a StatefulSet.
process_id() {
  if [ -n "${BYTEWAX_PROCESS_ID:-}" ]; then
    is_uint "$BYTEWAX_PROCESS_ID" || die "BYTEWAX_PROCESS_ID must be an integer"
    printf '%s' "$BYTEWAX_PROCESS_ID"
  elif [ -n "${BYTEWAX_POD_NAME:-}" ] && [ -n "${BYTEWAX_STATEFULSET_NAME:-}" ]; then
    ordinal="${BYTEWAX_POD_NAME#"$BYTEWAX_STATEFULSET_NAME"-}"
    is_uint "$ordinal" || die "pod '$BYTEWAX_POD_NAME' is not <$BYTEWAX_STATEFULSET_NAME>-<ordinal>"
    printf '%s' "$ordinal"
  fi
}

# Addresses "a;b;c" from BYTEWAX_ADDRESSES or the hostfile (blank lines skipped).
addresses() {
  if [ -n "${BYTEWAX_ADDRESSES:-}" ]; then
    printf '%s' "$BYTEWAX_ADDRESSES"
    return
  fi
  hostfile="${BYTEWAX_HOSTFILE_PATH:-}"
  [ -n "$hostfile" ] || die "a process id is set but neither BYTEWAX_ADDRESSES nor BYTEWAX_HOSTFILE_PATH"
  [ -r "$hostfile" ] || die "hostfile $hostfile is missing (did the init-hostfile container run?)"
  joined=''
  while IFS= read -r line || [ -n "$line" ]; do
    line="$(printf '%s' "$line" | tr -d ' \t\r')"
    [ -n "$line" ] || continue
    if [ -z "$joined" ]; then joined="$line"; else joined="$joined;$line"; fi
  done < "$hostfile"
  [ -n "$joined" ] || die "hostfile $hostfile has no addresses"
  printf '%s' "$joined"
}

count_addresses() {
  printf '%s' "$1" | tr ';' '\n' | grep -c .
}

check_partitions() {
  total="$1"
  partitions="${FRAUD_TOPIC_PARTITIONS:-10}"
  [ "${FRAUD_ALLOW_UNEVEN_PARTITIONS:-0}" = 1 ] && return 0
  is_uint "$partitions" && [ "$partitions" -ge 1 ] || die "FRAUD_TOPIC_PARTITIONS must be a positive integer"
  if [ $((partitions % total)) -ne 0 ]; then
    die "$total workers in total (processes x workers per process) do not divide the \
$partitions Kafka partitions; bytewax 0.21.1 can stall then: use a divisor of $partitions \
(with 10: 1, 2, 5 or 10), or set FRAUD_ALLOW_UNEVEN_PARTITIONS=1"
  fi
}

recovery_parts() {
  parts="${BYTEWAX_RECOVERY_PARTS:-$(( $(replicas) * $(workers) ))}"
  is_uint "$parts" && [ "$parts" -ge 1 ] || die "BYTEWAX_RECOVERY_PARTS must be a positive integer"
  printf '%s' "$parts"
}

has_partitions() {
  for f in "$1"/part-*.sqlite3; do
    [ -e "$f" ] && return 0
  done
  return 1
}

# Create this process's recovery partitions unless some exist.
#
# In a StatefulSet every pod has its own volume: all BYTEWAX_RECOVERY_PARTS partitions are
# made, and pod i keeps those whose index modulo BYTEWAX_REPLICAS is i, so that the cluster as
# a whole holds each partition exactly once (bytewax needs all of them, anywhere). Outside a
# StatefulSet (one process, or one shared volume) every partition is made here.
# A layout file records the shape; a later start with another process count or partition
# count fails with instructions instead of resuming from an inconsistent store.
init_recovery() {
  dir="${BYTEWAX_RECOVERY_DIRECTORY:-}"
  [ -n "$dir" ] || die "BYTEWAX_RECOVERY_DIRECTORY is not set"
  parts="$(recovery_parts)"
  pid="$(process_id)"
  nproc="$(replicas)"
  layout="parts=$parts processes=$nproc"
  if [ -n "$pid" ] && [ "$pid" -ge "$nproc" ]; then
    die "process id $pid is not below BYTEWAX_REPLICAS=$nproc"
  fi
  if [ -d "$dir" ] && has_partitions "$dir"; then
    if [ -f "$dir/recovery-layout" ]; then
      found="$(cat "$dir/recovery-layout")"
      if [ "$found" != "$layout" ]; then
        die "the recovery store in $dir was made for '$found', this run is '$layout'. \
The process count or partition count changed: reset the recovery store of EVERY process \
(delete the dataflow's PersistentVolumeClaims, see docs/deploy-gke.md, 'Scaling'), \
or go back to the old shape"
      fi
    fi
    log "recovery store present in $dir ($layout)"
    return 0
  fi
  if [ "$DRY_RUN" = 1 ]; then
    log "dry run: would create recovery partitions in $dir ($layout${pid:+, process $pid})"
    return 0
  fi
  mkdir -p "$dir"
  if [ -n "$pid" ] && [ "$nproc" -gt 1 ]; then
    tmp="$dir/.init-$$"
    rm -rf "$tmp"
    mkdir "$tmp"
    "$PYTHON" -m bytewax.recovery "$tmp" "$parts"
    i=0
    kept=0
    while [ "$i" -lt "$parts" ]; do
      if [ $((i % nproc)) -eq "$pid" ]; then
        mv "$tmp/part-$i.sqlite3" "$dir/part-$i.sqlite3"
        kept=$((kept + 1))
      fi
      i=$((i + 1))
    done
    rm -rf "$tmp"
    [ "$kept" -gt 0 ] || die "process $pid got no recovery partition: use BYTEWAX_RECOVERY_PARTS >= BYTEWAX_REPLICAS"
    log "created $kept of $parts recovery partitions in $dir for process $pid of $nproc"
  else
    "$PYTHON" -m bytewax.recovery "$dir" "$parts"
    log "created $parts recovery partitions in $dir"
  fi
  printf '%s\n' "$layout" > "$dir/recovery-layout"
}

write_hostfile() {
  hostfile="${BYTEWAX_HOSTFILE_PATH:-}"
  [ -n "$hostfile" ] || die "BYTEWAX_HOSTFILE_PATH is not set"
  sts="${BYTEWAX_STATEFULSET_NAME:-}"
  [ -n "$sts" ] || die "BYTEWAX_STATEFULSET_NAME is not set"
  ns="${POD_NAMESPACE:-}"
  [ -n "$ns" ] || die "POD_NAMESPACE is not set (fieldRef metadata.namespace)"
  svc="${BYTEWAX_HEADLESS_SERVICE:-$sts}"
  domain="${BYTEWAX_CLUSTER_DOMAIN:-cluster.local}"
  port="${BYTEWAX_PROCESS_PORT:-9999}"
  n="$(replicas)"
  content=''
  i=0
  while [ "$i" -lt "$n" ]; do
    content="$content$sts-$i.$svc.$ns.svc.$domain:$port
"
    i=$((i + 1))
  done
  if [ "$DRY_RUN" = 1 ]; then
    log "dry run: would write $hostfile:"
    printf '%s' "$content"
    return 0
  fi
  mkdir -p "$(dirname "$hostfile")"
  printf '%s' "$content" > "$hostfile"
  log "wrote $n addresses to $hostfile"
}

mode="${1:-run}"
case "$mode" in
  run|print-command|--dry-run)
    [ "$mode" = run ] || DRY_RUN=1
    if [ -n "${BYTEWAX_WORKDIR:-}" ]; then
      cd "$BYTEWAX_WORKDIR"
    fi
    flow="${BYTEWAX_PYTHON_FILE_PATH:-${FRAUD_DATAFLOW:-dataflow:flow}}"
    w="$(workers)"
    pid="$(process_id)"
    nproc=1
    addr=''
    if [ -n "$pid" ] || [ -n "${BYTEWAX_ADDRESSES:-}" ]; then
      [ -n "$pid" ] || die "BYTEWAX_ADDRESSES is set but no process id (BYTEWAX_PROCESS_ID)"
      addr="$(addresses)"
      nproc="$(count_addresses "$addr")"
      if [ -n "${BYTEWAX_REPLICAS:-}" ] && [ "$nproc" -ne "$(replicas)" ]; then
        die "$nproc addresses but BYTEWAX_REPLICAS=$BYTEWAX_REPLICAS"
      fi
      [ "$pid" -lt "$nproc" ] || die "process id $pid is not below the $nproc addresses"
    fi
    check_partitions $((nproc * w))
    BYTEWAX_REPLICAS="${BYTEWAX_REPLICAS:-$nproc}"
    export BYTEWAX_REPLICAS
    [ -r "$LAUNCHER" ] || die "launcher $LAUNCHER is missing"
    set -- "$PYTHON" "$LAUNCHER" "$flow" -w "$w"
    if [ -n "$pid" ]; then
      set -- "$@" -i "$pid" -a "$addr"
    fi
    if [ -n "${BYTEWAX_RECOVERY_DIRECTORY:-}" ]; then
      set -- "$@" -r "$BYTEWAX_RECOVERY_DIRECTORY" \
        -s "${BYTEWAX_SNAPSHOT_INTERVAL:-10}" -b "${BYTEWAX_RECOVERY_BACKUP_INTERVAL:-0}"
      init_recovery
    elif [ -n "${BYTEWAX_SNAPSHOT_INTERVAL:-}" ]; then
      set -- "$@" -s "$BYTEWAX_SNAPSHOT_INTERVAL"
    fi
    if [ "$DRY_RUN" = 1 ]; then
      print_words "$@"
      exit 0
    fi
    log "exec $(print_words "$@")"
    if [ "${BYTEWAX_KEEP_CONTAINER_ALIVE:-false}" = true ]; then
      rc=0
      "$@" || rc=$?
      log "dataflow ended with status $rc; BYTEWAX_KEEP_CONTAINER_ALIVE=true: sleeping"
      while :; do sleep 3600; done
    fi
    exec "$@"
    ;;
  init-recovery) init_recovery ;;
  write-hostfile) write_hostfile ;;
  -h|--help) sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' ;;
  *)
    if [ "$DRY_RUN" = 1 ]; then
      print_words "$@"
      exit 0
    fi
    exec "$@"
    ;;
esac
