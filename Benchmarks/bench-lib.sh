# bench-lib.sh - helpers shared by the load scripts (run-load.sh, soak.sh): sourced, not run.
# Expects the repository root as the working directory.

log() { printf '%s\n' "$*" >&2; }
die() { log "$(basename "$0"): $*"; exit 1; }

# build_release SCRATCH PRODUCT...: release builds of PRODUCTs in the scratch path SCRATCH
# (binaries in SCRATCH/release), apart from the debug build in .build.
build_release() {
  local scratch=$1 p
  shift
  mkdir -p "$scratch"
  for p in "$@"; do
    log "building $p (release, scratch path $scratch) ..."
    swift build -c release --scratch-path "$scratch" --product "$p" >&2 || die "swift build of $p failed"
  done
}

# build_wsload DIR: ../shared/loadgen's wsload into DIR/wsload.
build_wsload() {
  OUT="$1" sh ../shared/loadgen/build.sh >/dev/null || die "building wsload (../shared/loadgen/build.sh) failed"
}

# --- processes: started ones go into PIDS; all are stopped on exit ---------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

forget() {  # forget PID: drop it from PIDS
  local kept=() p
  for p in "${PIDS[@]:-}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  PIDS=("${kept[@]:-}")
}

stop() {  # stop PID: SIGTERM, up to 15 s, then SIGKILL
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1" | head -1; }  # field LINE KEY: value of KEY=value
