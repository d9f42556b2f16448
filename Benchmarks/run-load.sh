#!/usr/bin/env bash
# Server load benchmark with the neutral C load generator `wsload` (../shared/loadgen), over
# 127.0.0.1: Duplex's two APIs against SwiftNIO's two idioms, the workloads of ../shared/BENCHMARKS.md.
#
#   servers (SERVERS), each one event loop, pinned to CPU $SERVER_CPU; wsload pinned to CPU $LOAD_CPU:
#     duplex-callbacks  Benchmarks/DuplexEchoServer --api callbacks  (WebSocketCallbacks, ws.send(data))
#     duplex-async      Benchmarks/DuplexEchoServer --api async      (for try await m in ws.messages { ws.send(m) })
#     nio               Benchmarks/NIOEchoServer       (NIOWebSocket, a ChannelInboundHandler on the event loop)
#     nio-async         Benchmarks/NIOAsyncEchoServer  (NIOWebSocket + NIOAsyncChannel, NIO's async idiom)
#     nio-floor         Benchmarks/NIOFloorServer      (a bare NIO channel answering a canned 101; W4 and W4P only)
#
#   workloads (WORKLOADS):
#     W1   100 conns x 16 B text echo, one message in flight each: msg/s
#     W2   100 conns x 16 KiB binary echo: msg/s
#     W3   10 conns x 1 MiB binary echo: MiB/s of payload each way
#     W4   10,000 idle connections, opened 256 at a time (wsload's default --pending): server RSS per
#          connection ((VmRSS while all are held - VmRSS before) / N) and the time until all are upgraded
#     W4P  the same with --pending 10000 (all connects at once), plus the deltas of the kernel's
#          TcpExtListenOverflows and TcpExtTCPSynRetrans counters (nstat) over the run
#     W5   connect + upgrade + close cycles/s, `handshake --loops 10`
#
# Every cell runs on a fresh server process on a fresh port (no TIME_WAIT left over from an earlier
# cell, a clean heap for W4). Within a run the servers alternate cell by cell, and each run starts
# with the next server in the list. wsload's --server-pid reports the server's CPU over the counted
# window (W4: over the opening): a figure is about the server only while that is near 100 %.
#
# Output on stdout: a markdown table (rows workloads, columns servers, medians of RUNS runs, each
# with the server's CPU %), the ratios Duplex / NIO handler, Duplex async / NIO async and Duplex
# async / Duplex callbacks, and a table of details (client CPU, latencies, errors). $OUT keeps every
# wsload and server log, the raw RESULT lines (results.txt, one per cell with its workload, server,
# run, and for W4 the RSS figures) and the report (report.md).
#
# Environment (defaults in parentheses):
#   RUNS (1)  DURATION (10 s counted)  WARMUP (2 s)  HOLD (4 s, W4: how long the idle connections stay)
#   WORKLOADS ("W1 W2 W3 W4 W4P W5")  SERVERS ("duplex-callbacks duplex-async nio nio-async nio-floor")
#   IDLE (10000, W4 connections)  LOOPS (10, W5)  SERVER_CPU (0)  LOAD_CPU (1)  PORT_BASE (9500)
#   SCRATCH (.build-loadbench)  SKIP_BUILD (unset: build; set: reuse the binaries in $SCRATCH/release)
#   OUT (a fresh /tmp/duplex-loadbench.XXXXXX)  NICE (-15; empty: no priority boost, see below)
#   FLOOR_ARGS (unset; extra arguments of nio-floor-server, e.g. "--recv-buffer 256")
#
#   RUNS=3 Benchmarks/run-load.sh                                # everything
#   SKIP_BUILD=1 WORKLOADS="W1" SERVERS="duplex-async nio-async" DURATION=5 Benchmarks/run-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
HOLD=${HOLD:-4}
WORKLOADS=${WORKLOADS:-W1 W2 W3 W4 W4P W5}
SERVERS=${SERVERS:-duplex-callbacks duplex-async nio nio-async nio-floor}
IDLE=${IDLE:-10000}
LOOPS=${LOOPS:-10}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-9500}
SCRATCH=${SCRATCH:-.build-loadbench}
OUT=${OUT:-$(mktemp -d /tmp/duplex-loadbench.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS="$OUT/results.txt"
: >"$RESULTS"

# shellcheck source=Benchmarks/bench-lib.sh
source Benchmarks/bench-lib.sh

# --- arguments -------------------------------------------------------------------------------
ALL_WORKLOADS="W1 W2 W3 W4 W4P W5"
ALL_SERVERS="duplex-callbacks duplex-async nio nio-async nio-floor"
for w in $WORKLOADS; do [[ " $ALL_WORKLOADS " == *" $w "* ]] || die "unknown workload $w (known: $ALL_WORKLOADS)"; done
for s in $SERVERS; do [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server $s (known: $ALL_SERVERS)"; done
for v in RUNS DURATION WARMUP HOLD IDLE LOOPS PORT_BASE; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$RUNS" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$HOLD" -ge 2 ] || die "RUNS >= 1, DURATION >= 1, HOLD >= 2"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on one, wsload on the other)"
command -v taskset >/dev/null || die "needs taskset (util-linux)"
command -v timeout >/dev/null || die "needs timeout (coreutils)"

label() {
  case $1 in
    duplex-callbacks) echo "Duplex callbacks" ;;
    duplex-async) echo "Duplex async" ;;
    nio) echo "NIOWebSocket handler" ;;
    nio-async) echo "NIO async (NIOAsyncChannel)" ;;
    nio-floor) echo "NIO floor (canned 101)" ;;
  esac
}
binary() {
  case $1 in
    duplex-*) echo duplex-echo-server ;;
    nio) echo nio-echo-server ;;
    nio-async) echo nio-async-echo-server ;;
    nio-floor) echo nio-floor-server ;;
  esac
}
applies() {  # applies SERVER WORKLOAD: the floor server only serves W4/W4P (it cannot echo)
  [ "$1" != nio-floor ] || [ "$2" = W4 ] || [ "$2" = W4P ]
}

# --- build -----------------------------------------------------------------------------------
BIN="$SCRATCH/release"
PRODUCTS=()
for s in $SERVERS; do
  p=$(binary "$s")
  [[ " ${PRODUCTS[*]:-} " == *" $p "* ]] || PRODUCTS+=("$p")
done
mkdir -p "$SCRATCH"
[ -n "${SKIP_BUILD:-}" ] || build_release "$SCRATCH" "${PRODUCTS[@]}"
if [ -z "${SKIP_BUILD:-}" ] || [ ! -x "$SCRATCH/wsload" ]; then build_wsload "$SCRATCH"; fi
WSLOAD="$SCRATCH/wsload"
[ -x "$WSLOAD" ] || die "missing $WSLOAD"
for p in "${PRODUCTS[@]}"; do [ -x "$BIN/$p" ] || die "missing $BIN/$p (run without SKIP_BUILD)"; done

# Server and wsload each need a descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ " $WORKLOADS " == *" W4"* ]] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 256)) ]; then
  die "open-file limit $(ulimit -n) (hard $(ulimit -Hn)) is too low for $IDLE connections"
fi

# --- processes -------------------------------------------------------------------------------
trap cleanup EXIT
trap 'exit 130' INT TERM


# Other sessions' builds compete for the two CPUs. With the scheduler's autogroups (one per session)
# plain nice does not help across sessions: as root, each server and wsload runs in a session of its
# own (setsid, which execs in place, so $! is the program's PID) whose autogroup gets nice $NICE.
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


NEXT_PORT=$PORT_BASE
SERVER_PID=
URL=
start_server() {  # start_server SERVER LOGFILE: a fresh server on a fresh port; sets SERVER_PID, URL
  local server=$1 slog=$2 port path=/ extra=()
  while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
  port=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
  local args=(--port "$port" --threads 1)
  case $server in
    duplex-callbacks) args+=(--api callbacks) ;;
    duplex-async) args+=(--api async) ;;
    nio) path=/echo ;;
    nio-floor) read -r -a extra <<<"${FLOOR_ARGS:-}"; args+=("${extra[@]}") ;;
  esac
  "${RUN[@]}" taskset -c "$SERVER_CPU" "$BIN/$(binary "$server")" "${args[@]}" >"$slog" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  boost "$SERVER_PID"
  # Up when it printed its line and the port accepts connections (30 s at most).
  for _ in $(seq 1 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server $server did not start (it exited); its output ($slog):"; cat "$slog" >&2
      die "server $server did not start"
    fi
    if grep -q 'ws://' "$slog" 2>/dev/null && port_busy "$port"; then
      URL="ws://127.0.0.1:$port$path"
      return 0
    fi
    sleep 0.1
  done
  log "server $server is not listening on port $port after 30 s; its output ($slog):"; cat "$slog" >&2
  die "server $server did not start"
}

nstat_now() {  # "overflows synretrans", absolute, system-wide (the history file is left alone)
  if command -v nstat >/dev/null; then
    nstat -asz TcpExtListenOverflows TcpExtTCPSynRetrans 2>/dev/null |
      awk '$1 == "TcpExtListenOverflows" { o = $2 } $1 == "TcpExtTCPSynRetrans" { s = $2 } END { print o + 0, s + 0 }'
  else
    awk '/^TcpExt:/ { if (!h) { for (i = 2; i <= NF; i++) k[i] = $i; h = 1 } else { for (i = 2; i <= NF; i++) v[k[i]] = $i } }
         END { print v["ListenOverflows"] + 0, v["TCPSynRetrans"] + 0 }' /proc/net/netstat
  fi
}

FAILED=0
record() {  # record WORKLOAD SERVER RUN LINE: one cell's figures into results.txt
  echo "workload=$1 server=$2 run=$3 $4" >>"$RESULTS"
}

# run_wsload LOG TIMEOUT ARGS...: wsload on its CPU, boosted, killed after TIMEOUT s; sets WS_PID, WS_RC
run_wsload_bg() {
  local wlog=$1 limit=$2
  shift 2
  "${RUN[@]}" timeout -k 5 "$limit" taskset -c "$LOAD_CPU" "$WSLOAD" "$@" >"$wlog" 2>&1 &
  WS_PID=$!
  PIDS+=("$WS_PID")
  boost "$WS_PID"
}
wait_wsload() {
  WS_RC=0
  wait "$WS_PID" || WS_RC=$?
  forget "$WS_PID"
}

cell_failed() {  # cell_failed WHAT LOG
  FAILED=$((FAILED + 1))
  log "  FAILED: $1; last lines of $2:"
  tail -5 "$2" | sed 's/^/    /' >&2
}

# run_traffic WORKLOAD SERVER RUN: W1, W2, W3, W5 on a fresh server
run_traffic() {
  local w=$1 server=$2 run=$3 args=()
  case $w in
    W1) args=(echo --conns 100 --size 16 --text) ;;
    W2) args=(echo --conns 100 --size 16k) ;;
    W3) args=(echo --conns 10 --size 1m) ;;
    W5) args=(handshake --loops "$LOOPS") ;;
  esac
  local base="$OUT/$w-$server-run$run"
  start_server "$server" "$base.server.log"
  run_wsload_bg "$base.wsload.log" $((WARMUP + DURATION + 100)) "${args[@]}" --url "$URL" \
    --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID"
  wait_wsload
  local alive=1
  kill -0 "$SERVER_PID" 2>/dev/null || alive=0
  stop "$SERVER_PID"
  local line
  line=$(grep '^RESULT ' "$base.wsload.log" | tail -1 || true)
  if [ "$WS_RC" -ne 0 ] || [ -z "$line" ] || [ "$alive" = 0 ]; then
    cell_failed "$w $server run $run (wsload exit $WS_RC$([ "$alive" = 0 ] && echo ', the server died'))" "$base.wsload.log"
    return 0
  fi
  record "$w" "$server" "$run" "$line"
  log "  $w $(label "$server") run $run: $(field "$line" per_sec)/s$([ "$w" = W5 ] || echo ", $(field "$line" mib_s) MiB/s")," \
      "server CPU $(field "$line" server_cpu_pct) %, client CPU $(field "$line" client_cpu_pct) % (spin $(field "$line" client_spin_pct) %)," \
      "errors $(field "$line" errors), closed $(field "$line" closed)"
}

# run_idle WORKLOAD SERVER RUN: W4 / W4P on a fresh server
run_idle() {
  local w=$1 server=$2 run=$3 args=(idle --conns "$IDLE" --hold "$HOLD")
  [ "$w" = W4P ] && args+=(--pending "$IDLE")
  local base="$OUT/$w-$server-run$run"
  start_server "$server" "$base.server.log"
  sleep 1
  local before held n0 n1
  before=$(rss_kib "$SERVER_PID")
  read -r -a n0 <<<"$(nstat_now)"
  run_wsload_bg "$base.wsload.log" $((HOLD + 100)) "${args[@]}" --url "$URL" --server-pid "$SERVER_PID"
  # Until the opening is over (ALL_UPGRADED, or UPGRADED k of N when some failed).
  while kill -0 "$WS_PID" 2>/dev/null && ! grep -q '^ALL_UPGRADED \|^UPGRADED ' "$base.wsload.log"; do sleep 0.05; done
  sleep 1  # what the server does right after the upgrades (tasks starting, buffers released) settles
  held=$(rss_kib "$SERVER_PID")
  wait_wsload
  read -r -a n1 <<<"$(nstat_now)"
  local alive=1
  kill -0 "$SERVER_PID" 2>/dev/null || alive=0
  stop "$SERVER_PID"
  local line opened
  line=$(grep '^RESULT ' "$base.wsload.log" | tail -1 || true)
  opened=$(grep '^ALL_UPGRADED \|^UPGRADED ' "$base.wsload.log" | tail -1 || true)
  local overflows=$((n1[0] - n0[0])) synretrans=$((n1[1] - n0[1]))
  if [ -z "$line" ] || [ -z "$opened" ] || [ "$alive" = 0 ] || [ "$(field "$line" upgraded)" = 0 ]; then
    cell_failed "$w $server run $run (wsload exit $WS_RC$([ "$alive" = 0 ] && echo ', the server died');" \
      "ListenOverflows +$overflows, TCPSynRetrans +$synretrans)" "$base.wsload.log"
    return 0
  fi
  # ALL_UPGRADED N SECONDS, or UPGRADED k of N in S s (E errors): then the figures are per upgraded
  # connection and the time cell says how many made it.
  local secs upgraded partial=0 per
  upgraded=$(field "$line" upgraded)
  if [[ $opened == ALL_UPGRADED* ]]; then
    secs=$(awk '{ print $3 }' <<<"$opened")
  else
    secs=$(awk '{ print $6 }' <<<"$opened")
    partial=1
    FAILED=$((FAILED + 1))
    log "  warning: $w $server run $run: $opened"
  fi
  per=$(awk -v a="$held" -v b="$before" -v n="$upgraded" 'BEGIN { printf "%.2f", (a - b) / n }')
  record "$w" "$server" "$run" "$line all_upgraded_s=$secs partial=$partial rss_before_kib=$before rss_held_kib=$held per_conn_kib=$per listen_overflows=$overflows syn_retrans=$synretrans"
  log "  $w $(label "$server") run $run: RSS $before -> $held KiB = $per KiB per connection; $upgraded of $IDLE upgraded in $secs s," \
      "server CPU $(field "$line" server_cpu_pct) % over the opening; ListenOverflows +$overflows, TCPSynRetrans +$synretrans, errors $(field "$line" errors)"
}

# --- runs --------------------------------------------------------------------------------------
read -r -a SERVER_LIST <<<"$SERVERS"
read -r -a WORKLOAD_LIST <<<"$WORKLOADS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
log "logs and raw results: $OUT; load average: $LOAD_BEFORE"
for run in $(seq 1 "$RUNS"); do
  # Rotate the order: run r starts with the r-th server.
  n=${#SERVER_LIST[@]}
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${SERVER_LIST[$(((i + run - 1) % n))]}"); done
  for w in "${WORKLOAD_LIST[@]}"; do
    log "run $run/$RUNS, $w: ${order[*]}"
    for server in "${order[@]}"; do
      applies "$server" "$w" || continue
      case $w in
        W4|W4P) run_idle "$w" "$server" "$run" ;;
        *) run_traffic "$w" "$server" "$run" ;;
      esac
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() {  # med WORKLOAD SERVER KEY: median over the runs ("" when no run succeeded)
  grep -F "workload=$1 server=$2 " "$RESULTS" | while IFS= read -r line; do field "$line" "$3"; done | median
}
fmt() {  # fmt VALUE [DECIMALS]: thousands separators
  [ -n "$1" ] || { echo "failed"; return; }
  awk -v v="$1" -v d="${2:-0}" 'BEGIN { s = sprintf("%." d "f", v); i = index(s, "."); if (i) { f = substr(s, i); s = substr(s, 1, i - 1) } else f = "";
    n = length(s); o = ""; for (j = 1; j <= n; j++) { o = o substr(s, j, 1); if ((n - j) % 3 == 0 && j < n) o = o "," } print o f }'
}
pct() { [ -n "$1" ] && awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }

# value WORKLOAD SERVER: the headline figure of a cell (median)
value() {
  case $1 in
    W1|W2|W5) med "$1" "$2" per_sec ;;
    W3) med "$1" "$2" mib_s ;;
  esac
}
cell() {  # cell ROW SERVER: the text of one table cell
  local row=$1 s=$2 w v c
  w=${row%%:*}
  applies "$s" "$w" || { echo "—"; return; }
  case $row in
    W1|W2|W5) v=$(value "$w" "$s"); c=$(med "$w" "$s" server_cpu_pct); [ -n "$v" ] && echo "$(fmt "$v") (CPU $(pct "$c") %)" || echo failed ;;
    W3) v=$(value "$w" "$s"); c=$(med "$w" "$s" server_cpu_pct); [ -n "$v" ] && echo "$(fmt "$v" 0) (CPU $(pct "$c") %)" || echo failed ;;
    W4:rss|W4P:rss) v=$(med "$w" "$s" per_conn_kib); [ -n "$v" ] && fmt "$v" 2 || echo failed ;;
    W4:time|W4P:time)
      v=$(med "$w" "$s" all_upgraded_s); c=$(med "$w" "$s" server_cpu_pct)
      if [ -z "$v" ]; then echo failed; return; fi
      local partial
      partial=$(grep -F "workload=$w server=$s " "$RESULTS" | grep -c ' partial=1' || true)
      if [ "$partial" -gt 0 ]; then
        echo "$(fmt "$v" 2) (CPU $(pct "$c") %), not all upgraded in $partial run(s): $(med "$w" "$s" upgraded) upgraded, $(med "$w" "$s" errors) errors"
      else
        echo "$(fmt "$v" 2) (CPU $(pct "$c") %)"
      fi ;;
    W4P:nstat) v=$(med "$w" "$s" listen_overflows); c=$(med "$w" "$s" syn_retrans); [ -n "$v" ] && echo "$(fmt "$v") / $(fmt "$c")" || echo failed ;;
  esac
}
raw() {  # raw ROW SERVER: the number a ratio is taken of
  local row=$1 w=${1%%:*}
  case $row in
    W1|W2|W3|W5) value "$w" "$2" ;;
    *:rss) med "$w" "$2" per_conn_kib ;;
    *:time) med "$w" "$2" all_upgraded_s ;;
  esac
}
ratio() {  # ratio ROW A B: A / B, or — when either is missing
  local a b
  [[ " $SERVERS " == *" $2 "* && " $SERVERS " == *" $3 "* ]] || { echo "—"; return; }
  a=$(raw "$1" "$2"); b=$(raw "$1" "$3")
  awk -v a="$a" -v b="$b" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.2fx", a / b }'
}
rowlabel() {
  case $1 in
    W1) echo "W1: 100 conns × 16 B text, msg/s" ;;
    W2) echo "W2: 100 conns × 16 KiB binary, msg/s" ;;
    W3) echo "W3: 10 conns × 1 MiB binary, MiB/s" ;;
    W4:rss) echo "W4: server RSS per idle connection ($(fmt "$IDLE") conns), KiB (lower is better)" ;;
    W4:time) echo "W4: time until all $(fmt "$IDLE") are upgraded, s (lower is better)" ;;
    W4P:rss) echo "W4, --pending $IDLE: RSS per idle connection, KiB (lower is better)" ;;
    W4P:time) echo "W4, --pending $IDLE: time until all are upgraded, s (lower is better)" ;;
    W4P:nstat) echo "W4, --pending $IDLE: ListenOverflows / TCPSynRetrans (system-wide deltas)" ;;
    W5) echo "W5: connect + upgrade + close cycles/s, $LOOPS loops" ;;
  esac
}

ROWS=()
for w in "${WORKLOAD_LIST[@]}"; do
  case $w in
    W4) ROWS+=(W4:rss W4:time) ;;
    W4P) ROWS+=(W4P:rss W4P:time W4P:nstat) ;;
    *) ROWS+=("$w") ;;
  esac
done

report() {
  echo "Server load with wsload: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(uname -sr); $STARTED."
  echo "Each server one event loop on CPU $SERVER_CPU, wsload on CPU $LOAD_CPU; ${WARMUP} s warm-up, ${DURATION} s counted (W4: hold ${HOLD} s);"
  echo "median of $RUNS run(s); load average before $LOAD_BEFORE, after $LOAD_AFTER. Logs and raw RESULT lines: $OUT"
  echo
  local header="| workload |" rule="| --- |" s row line
  for s in "${SERVER_LIST[@]}"; do header="$header $(label "$s") |"; rule="$rule ---: |"; done
  header="$header Duplex callbacks / NIO handler | Duplex async / NIO async | Duplex async / callbacks |"
  rule="$rule ---: | ---: | ---: |"
  echo "$header"
  echo "$rule"
  for row in "${ROWS[@]}"; do
    line="| $(rowlabel "$row") |"
    for s in "${SERVER_LIST[@]}"; do line="$line $(cell "$row" "$s") |"; done
    if [[ $row == *:nstat ]]; then
      line="$line | | |"
    else
      line="$line $(ratio "$row" duplex-callbacks nio) | $(ratio "$row" duplex-async nio-async) | $(ratio "$row" duplex-async duplex-callbacks) |"
    fi
    echo "$line"
  done
  echo
  echo "In parentheses: the server's CPU over the counted window (W4: over the opening), % of one core, from wsload --server-pid."
  echo
  echo "| details (medians) | server CPU % | client CPU % (of which spin) | p50 µs | p99 µs | max µs | errors | closed by server |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for w in "${WORKLOAD_LIST[@]}"; do
    for s in "${SERVER_LIST[@]}"; do
      applies "$s" "$w" || continue
      [ -n "$(med "$w" "$s" per_sec)" ] || { echo "| $w $(label "$s") | failed | | | | | | |"; continue; }
      echo "| $w $(label "$s") | $(pct "$(med "$w" "$s" server_cpu_pct)") | $(pct "$(med "$w" "$s" client_cpu_pct)") ($(pct "$(med "$w" "$s" client_spin_pct)")) |" \
           "$(fmt "$(med "$w" "$s" p50_us)") | $(fmt "$(med "$w" "$s" p99_us)") | $(fmt "$(med "$w" "$s" max_us)") | $(med "$w" "$s" errors) | $(med "$w" "$s" closed) |"
    done
  done
  echo
  echo "(W4/W4P latencies: connect to 101 per connection.)"
  if [ "$FAILED" -gt 0 ]; then
    echo
    echo "**$FAILED cell run(s) failed**; see the logs in $OUT."
  fi
}
report | tee "$OUT/report.md"
[ "$FAILED" -eq 0 ] || exit 1
