#!/usr/bin/env bash
# Server load benchmark: `duplex serve` /echo (event-loop callbacks) against an echo server on
# SwiftNIO's NIOWebSocket (Benchmarks/NIOEchoServer), one after the other, under the same load
# generator (`duplex bench`), over 127.0.0.1. Both servers run one event loop, pinned to CPU 0;
# the generator runs one event loop, pinned to CPU 1.
#
#   W1  100 connections x 16 B text echoes, one message in flight each: messages/s
#   W2  100 connections x 16 KiB binary echoes, one message in flight each: messages/s
#   W4  server RSS per idle connection: (RSS with 5,000 idle connections - RSS before) / 5,000
#
# During W1/W2 the script samples the server's and the generator's CPU time (/proc/PID/stat) over
# the counted seconds: a server near 100 % is the bottleneck, as it should be.
# Prints a markdown table (medians of RUNS runs; the servers alternate within each run).
#
# Environment: RUNS (1), DURATION (10 s counted), WARMUP (2 s), CONNS (100), IDLE (5000),
# HOLD (4 s), SERVER_CPU (0), LOAD_CPU (1), SCRATCH (.build-loadbench), SKIP_BUILD (unset),
# OUT (a fresh temporary directory for the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-100}
IDLE=${IDLE:-5000}
HOLD=${HOLD:-4}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SCRATCH=${SCRATCH:-.build-loadbench}
OUT=${OUT:-$(mktemp -d /tmp/duplex-loadbench.XXXXXX)}
DUPLEX_PORT=${DUPLEX_PORT:-9301}
NIO_PORT=${NIO_PORT:-9302}
mkdir -p "$OUT"

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

forget() {  # forget PID: drop it from PIDS once it is gone
  local kept=() p
  for p in "${PIDS[@]:-}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  PIDS=("${kept[@]:-}")
}

stop() {  # stop PID: SIGTERM, wait up to 15 s, then SIGKILL
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

wait_for_port() {  # wait_for_port PORT: until something listens on 127.0.0.1:PORT (30 s at most)
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on port $1"
  return 1
}

wait_for_line() {  # wait_for_line FILE PATTERN PID: until FILE has PATTERN (fails if PID exits first)
  for _ in $(seq 1 1200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { grep -q "$2" "$1" 2>/dev/null && return 0; return 1; }
    sleep 0.05
  done
  return 1
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }  # user + system, in clock ticks
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
now_ns() { date +%s%N; }
TICKS=$(getconf CLK_TCK)

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }  # field LINE KEY: value of KEY=value
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- build -------------------------------------------------------------------------------
if [ "$(nproc)" -lt 2 ]; then log "needs 2 CPUs (server on one, generator on the other)"; exit 1; fi
if [ -z "${SKIP_BUILD:-}" ]; then
  log "building release (scratch path $SCRATCH) ..."
  swift build -c release --scratch-path "$SCRATCH" --product duplex >&2
  swift build -c release --scratch-path "$SCRATCH" --product nio-echo-server >&2
fi
BIN="$SCRATCH/release"
[ -x "$BIN/duplex" ] && [ -x "$BIN/nio-echo-server" ] || { log "missing binaries in $BIN"; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 256)) ]; then
  log "open-file limit $(ulimit -n) is too low for $IDLE connections"; exit 1
fi

# --- servers -----------------------------------------------------------------------------
# Other work on the machine (builds, tests of other sessions) competes for the two CPUs. With
# the scheduler's autogroups (one per session), plain nice does not help across sessions: as root,
# each server and generator runs in a session of its own (setsid) whose autogroup gets nice $NICE,
# so that it gets its CPU. NICE= turns this off.
NICE=${NICE--15}
RUN=()
BOOST=
if [ -n "$NICE" ] && [ "$(id -u)" = 0 ]; then
  RUN=(nice -n "$NICE")
  if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ]; then RUN=(setsid "${RUN[@]}"); BOOST=1; fi
fi
boost() {  # boost PID: raise the priority of PID's autogroup (its own session, once setsid made it)
  [ -n "$BOOST" ] || return 0
  local mine theirs
  mine=$(cut -d' ' -f1 /proc/self/autogroup)
  for _ in $(seq 1 100); do
    theirs=$(cut -d' ' -f1 "/proc/$1/autogroup" 2>/dev/null) || return 0
    if [ "$theirs" != "$mine" ]; then
      echo "$NICE" >"/proc/$1/autogroup" 2>/dev/null || true
      return 0
    fi
    sleep 0.01
  done
  log "warning: $1 is still in this script's autogroup; not boosted"
}

SERVER_PID=
start_server() {  # start_server duplex|nio LOGFILE: starts it pinned, sets SERVER_PID and URL
  case $1 in
    duplex)
      "${RUN[@]}" taskset -c "$SERVER_CPU" "$BIN/duplex" serve --port "$DUPLEX_PORT" --threads 1 --log-level warning >"$2" 2>&1 &
      URL="ws://127.0.0.1:$DUPLEX_PORT/echo"; PORT=$DUPLEX_PORT ;;
    nio)
      "${RUN[@]}" taskset -c "$SERVER_CPU" "$BIN/nio-echo-server" --port "$NIO_PORT" --threads 1 >"$2" 2>&1 &
      URL="ws://127.0.0.1:$NIO_PORT/echo"; PORT=$NIO_PORT ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  boost "$SERVER_PID"
  wait_for_port "$PORT"
}

# run_echo SERVER NAME SIZE KIND RUN: one W1/W2 measurement against the running server
run_echo() {
  local server=$1 name=$2 size=$3 kind=$4 run=$5
  local blog="$OUT/bench-$server-$name-$run.log"
  "${RUN[@]}" taskset -c "$LOAD_CPU" "$BIN/duplex" bench "$URL" --connections "$CONNS" --size "$size" "--$kind" \
    --duration "$DURATION" --warmup "$WARMUP" >"$blog" 2>&1 &
  local bpid=$!
  PIDS+=("$bpid")
  boost "$bpid"
  wait_for_line "$blog" '^connections:' "$bpid" || { log "bench did not connect, see $blog"; cat "$blog" >&2; exit 1; }
  # Sample CPU time inside the counted seconds (0.2 s after they start, 0.3 s before they end).
  sleep "$(awk -v w="$WARMUP" 'BEGIN { print w + 0.2 }')"
  local s0 g0 t0 s1 g1 t1
  s0=$(cpu_ticks "$SERVER_PID"); g0=$(cpu_ticks "$bpid"); t0=$(now_ns)
  sleep "$(awk -v d="$DURATION" 'BEGIN { print d - 0.5 }')"
  s1=$(cpu_ticks "$SERVER_PID"); g1=$(cpu_ticks "$bpid"); t1=$(now_ns)
  wait "$bpid" || { log "bench failed, see $blog"; cat "$blog" >&2; exit 1; }
  forget "$bpid"
  local wall_ticks
  wall_ticks=$(awk -v a="$t0" -v b="$t1" -v hz="$TICKS" 'BEGIN { print (b - a) / 1e9 * hz }')
  local scpu gcpu
  scpu=$(awk -v d=$((s1 - s0)) -v w="$wall_ticks" 'BEGIN { printf "%.0f", 100 * d / w }')
  gcpu=$(awk -v d=$((g1 - g0)) -v w="$wall_ticks" 'BEGIN { printf "%.0f", 100 * d / w }')
  [ "$g1" -gt 0 ] || gcpu=$(field "$(grep '^result:' "$blog" | tail -1)" generator_cpu)  # it had exited: its own figure
  local line per_cpu
  line=$(grep '^result:' "$blog" | tail -1)
  # Messages per second of server CPU time: robust to other load on the machine.
  per_cpu=$(awk -v r="$(field "$line" msg_per_s)" -v c="$scpu" 'BEGIN { if (c > 0) printf "%.0f", r * 100 / c; else print 0 }')
  echo "$line server_cpu=$scpu generator_cpu_proc=$gcpu msg_per_cpu_s=$per_cpu" >>"$OUT/results-$server-$name.txt"
  log "  $server $name run $run: $(field "$line" msg_per_s) msg/s, p50 $(field "$line" p50_us) us, p99 $(field "$line" p99_us) us," \
      "server CPU $scpu %, generator CPU $gcpu %, $per_cpu msg per server CPU-second, errors $(field "$line" errors)"
}

# run_idle SERVER RUN: RSS per idle connection on a fresh server
run_idle() {
  local server=$1 run=$2
  start_server "$server" "$OUT/server-$server-idle-$run.log"
  sleep 1
  local before after
  before=$(rss_kib "$SERVER_PID")
  local blog="$OUT/bench-$server-idle-$run.log"
  "${RUN[@]}" taskset -c "$LOAD_CPU" "$BIN/duplex" bench "$URL" --idle "$IDLE" --hold "$HOLD" >"$blog" 2>&1 &
  local bpid=$!
  PIDS+=("$bpid")
  boost "$bpid"
  wait_for_line "$blog" '^idle-ready:' "$bpid" || { log "bench --idle failed, see $blog"; cat "$blog" >&2; exit 1; }
  sleep 1
  after=$(rss_kib "$SERVER_PID")
  local opened
  opened=$(sed -n 's/^idle-ready: //p' "$blog")
  wait "$bpid" || { log "bench --idle failed, see $blog"; cat "$blog" >&2; exit 1; }
  forget "$bpid"
  stop "$SERVER_PID"
  local per
  per=$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN { printf "%.2f", (a - b) / n }')
  echo "rss_before_kib=$before rss_after_kib=$after connections=$opened per_conn_kib=$per" >>"$OUT/results-$server-idle.txt"
  log "  $server idle run $run: RSS $before KiB -> $after KiB with $opened connections: $per KiB each"
}

SERVERS=(duplex nio)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq 1 "$RUNS"); do
  for server in "${SERVERS[@]}"; do
    log "run $run/$RUNS: $server"
    start_server "$server" "$OUT/server-$server-$run.log"
    run_echo "$server" w1 16 text "$run"
    run_echo "$server" w2 16384 binary "$run"
    stop "$SERVER_PID"
    run_idle "$server" "$run"
  done
done

# --- report ------------------------------------------------------------------------------
med() {  # med SERVER NAME KEY: median of KEY over the runs
  local f="$OUT/results-$1-$2.txt"
  while IFS= read -r line; do field "$line" "$3"; done <"$f" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2fx", a / b }'; }
fmt() { awk -v v="$1" 'BEGIN { s = sprintf("%.0f", v); n = length(s); o = ""; for (i = 1; i <= n; i++) { o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o "," } print o }'; }

d1=$(med duplex w1 msg_per_s); n1=$(med nio w1 msg_per_s)
d2=$(med duplex w2 msg_per_s); n2=$(med nio w2 msg_per_s)
d4=$(med duplex idle per_conn_kib); n4=$(med nio idle per_conn_kib)

echo
echo "Server load (echo): $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -sr);"
echo "servers on CPU $SERVER_CPU, \`duplex bench\` on CPU $LOAD_CPU; $CONNS connections, one message in flight each;"
echo "${WARMUP} s warm-up, ${DURATION} s counted; median of $RUNS run(s); load average before: $LOAD_BEFORE. Logs: $OUT"
echo
echo "| scenario | Duplex | NIOWebSocket | ratio (Duplex/NIO) |"
echo "| --- | ---: | ---: | ---: |"
echo "| W1: $CONNS conns × 16 B text, msg/s (higher is better) | $(fmt "$d1") | $(fmt "$n1") | $(ratio "$d1" "$n1") |"
echo "| W2: $CONNS conns × 16 KiB binary, msg/s (higher is better) | $(fmt "$d2") | $(fmt "$n2") | $(ratio "$d2" "$n2") |"
echo "| W4: server RSS per idle connection at $(fmt "$IDLE") conns, KiB (lower is better) | $d4 | $n4 | $(ratio "$d4" "$n4") |"
echo
echo "| run details (medians) | msg/s | server CPU % | msg per server CPU-second | generator CPU % | p50 µs | p90 µs | p99 µs | max µs | errors |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for w in w1 w2; do
  for server in "${SERVERS[@]}"; do
    label=$([ "$server" = duplex ] && echo Duplex || echo NIOWebSocket)
    wl=$([ "$w" = w1 ] && echo "W1 16 B" || echo "W2 16 KiB")
    echo "| $wl, $label | $(fmt "$(med "$server" "$w" msg_per_s)") | $(med "$server" "$w" server_cpu) | $(fmt "$(med "$server" "$w" msg_per_cpu_s)") | $(med "$server" "$w" generator_cpu_proc) | $(med "$server" "$w" p50_us) | $(med "$server" "$w" p90_us) | $(med "$server" "$w" p99_us) | $(med "$server" "$w" max_us) | $(med "$server" "$w" errors) |"
  done
done
echo
for server in "${SERVERS[@]}"; do
  label=$([ "$server" = duplex ] && echo Duplex || echo NIOWebSocket)
  echo "W4 $label: $(tail -1 "$OUT/results-$server-idle.txt")"
done
