#!/usr/bin/env bash
# soak.sh [--short] - `duplex serve` under churn, faults and hostile clients, over 127.0.0.1 only.
# Bounded in time and count; one line per figure; every expected outcome is asserted (exit 1 and a
# "FAIL" line when one is missed). Hold the machine-wide lock: flock /tmp/duplex-bench.lock Benchmarks/soak.sh
#
#   1. churn: N connections opened and closed R times with ../shared/loadgen's `wsload idle`;
#      after each round the server's open fds are back to the baseline and, after the last, its
#      RSS is within 10 % of the RSS after the first
#   2. slowloris: S connections sending one header byte per second are all closed at the
#      handshake timeout, while 100 wsload clients keep echoing (no error, p99 under a bound)
#   3. abrupt disconnects (TCP RST): A each mid-frame, mid-handshake and mid-TLS-handshake
#   4. TLS garbage on the wss port: every connection closed, wss still serves
#   5. a ping flood and a pong flood on one connection each
#   6. a compression bomb (permessage-deflate frames inflating to 64 MiB) from 100 connections
#      at once: all closed with 1009, RSS bounded
#   after all: fds back to the baseline, and the server still echoes over ws and wss
#
# Full (default): N=10,000 R=5 S=1,000 A=1,000, handshake timeout 10 s, on a release build in
# $SCRATCH (.build-soak; SKIP_BUILD=1 reuses it). Short (--short or SOAK_SHORT=1, for CI): N=1,000
# R=3 S=100 A=100, handshake timeout 3 s, on the debug build (.build/debug/duplex), about a minute.
# DUPLEX=path overrides the server binary; OUT (a fresh /tmp/duplex-soak.XXXXXX) keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=Benchmarks/bench-lib.sh
source Benchmarks/bench-lib.sh

SHORT=${SOAK_SHORT:-}
[ "${1:-}" = "--short" ] && SHORT=1
SCRATCH=${SCRATCH:-.build-soak}
OUT=${OUT:-$(mktemp -d /tmp/duplex-soak.XXXXXX)}
mkdir -p "$OUT" "$SCRATCH"
if [ -n "$SHORT" ]; then
  CONNS=1000 ROUNDS=3 SLOW=100 ABRUPT=100 HS_TIMEOUT=3 ECHO_CONNS=20 P99_BOUND_US=200000 FLOOD=20000 BOMBS=100 GARBAGE=100
  DUPLEX=${DUPLEX:-.build/debug/duplex}
else
  CONNS=10000 ROUNDS=5 SLOW=1000 ABRUPT=1000 HS_TIMEOUT=10 ECHO_CONNS=100 P99_BOUND_US=100000 FLOOD=100000 BOMBS=100 GARBAGE=1000
  if [ -z "${DUPLEX:-}" ]; then
    [ -n "${SKIP_BUILD:-}" ] || build_release "$SCRATCH" duplex
    DUPLEX="$SCRATCH/release/duplex"
  fi
fi
[ -x "$DUPLEX" ] || die "missing $DUPLEX"
[ -x "$SCRATCH/wsload" ] || build_wsload "$SCRATCH"
WSLOAD="$SCRATCH/wsload"
PYTHON=$(scripts/interop-venv.sh)
CLIENTS=(timeout -k 5 120 "$PYTHON" Benchmarks/soak_clients.py)

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((CONNS + 512)) ] || die "open-file limit $(ulimit -n) is too low for $CONNS connections"

trap cleanup EXIT
trap 'exit 130' INT TERM

FAILS=0
figure() { printf '%-58s %s\n' "$1:" "$2"; }
expect() {  # expect WHAT COMMAND...: a FAIL line saying WHAT (and a failed run) unless COMMAND succeeds
  local what=$1
  shift
  if ! "$@"; then echo "FAIL $what"; FAILS=$((FAILS + 1)); fi
}
all() { local c; for c in "$@"; do eval "$c" || return 1; done; }  # all 'TEST' ...: every test holds
fds() { ls "/proc/${1:-$SERVER_PID}/fd" 2>/dev/null | wc -l; }
alive() { kill -0 "$SERVER_PID" 2>/dev/null || { echo "FAIL the server exited (log: $OUT/serve.log)"; tail -20 "$OUT/serve.log"; exit 1; }; }
settle_fds() {  # settle_fds [PID BASE]: wait (at most 15 s) until PID's fds are back to BASE; prints them
  local n pid=${1:-$SERVER_PID} base=${2:-$BASE_FDS}
  for _ in $(seq 1 150); do
    n=$(fds "$pid")
    [ "$n" -le "$base" ] && break
    sleep 0.1
  done
  echo "$n"
}
clients() { "${CLIENTS[@]}" "$@" || { FAILS=$((FAILS + 1)); return 0; }; }

# --- the server: ws on PORT, wss on TLS_PORT (one process each, a self-signed certificate) ---
free_port() { local p=$1; while port_busy "$p"; do p=$((p + 1)); done; echo "$p"; }
PORT=$(free_port 9700)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout "$OUT/key.pem" -out "$OUT/cert.pem" >/dev/null 2>&1 \
  || die "openssl could not make a certificate"
COMMON=(--ping-interval 0 --ticker-interval 0 --handshake-timeout "$HS_TIMEOUT" --log-level warning)
"$DUPLEX" serve --port "$PORT" "${COMMON[@]}" >"$OUT/serve.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
TLS_PORT=$(free_port $((PORT + 1)))
"$DUPLEX" serve --port "$TLS_PORT" --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" "${COMMON[@]}" >"$OUT/serve-tls.log" 2>&1 &
TLS_PID=$!
PIDS+=("$TLS_PID")
for _ in $(seq 1 300); do port_busy "$PORT" && port_busy "$TLS_PORT" && break; sleep 0.1; done
port_busy "$PORT" && port_busy "$TLS_PORT" || die "duplex serve did not start (logs in $OUT)"
echo "soak of $DUPLEX ($([ -n "$SHORT" ] && echo short || echo full)), ws://127.0.0.1:$PORT wss://127.0.0.1:$TLS_PORT, logs in $OUT"
START=$SECONDS

# A first connection creates what the server makes once (its loops' buffers): the baseline after it.
clients echo --port "$PORT" --tls-port "$TLS_PORT" >/dev/null
sleep 1
BASE_FDS=$(fds)
TLS_BASE_FDS=$(fds "$TLS_PID")
figure "server fds at the baseline (ws, wss)" "$BASE_FDS, $TLS_BASE_FDS"

# --- 1. churn --------------------------------------------------------------------------------
FIRST_RSS=0
for round in $(seq 1 "$ROUNDS"); do
  line=$(timeout -k 5 120 "$WSLOAD" idle --url "ws://127.0.0.1:$PORT/echo" --conns "$CONNS" --hold 1 2>>"$OUT/wsload.log" | grep RESULT || true)
  up=$(field "$line" upgraded)
  alive
  n=$(settle_fds)
  sleep 1
  rss=$(rss_kib "$SERVER_PID")
  [ "$round" = 1 ] && FIRST_RSS=$rss
  figure "churn round $round: upgraded, fds after, RSS after" "${up:-0}/$CONNS, $n fds, $((rss / 1024)) MiB"
  expect "round $round upgraded ${up:-0} of $CONNS" [ "${up:-0}" = "$CONNS" ]
  expect "round $round left $n fds open (baseline $BASE_FDS)" [ "$n" -le "$BASE_FDS" ]
done
figure "churn RSS, round $ROUNDS vs round 1" \
  "$(awk -v a="$rss" -v b="$FIRST_RSS" 'BEGIN { printf "%.1f vs %.1f MiB (%+.1f %%)", a / 1024, b / 1024, (a - b) * 100 / b }')"
expect "RSS grew more than 10 % from round 1 to round $ROUNDS" [ "$rss" -le $((FIRST_RSS * 110 / 100)) ]

# --- 2. slowloris while echo clients keep echoing -------------------------------------------
echo_secs=$((HS_TIMEOUT + 4))
timeout -k 5 $((echo_secs + 90)) "$WSLOAD" echo --url "ws://127.0.0.1:$PORT/echo" --conns "$ECHO_CONNS" --size 16 \
  --warmup 1 --duration "$echo_secs" >"$OUT/wsload-echo.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
sleep 2
clients slowloris --port "$PORT" --conns "$SLOW" --timeout "$HS_TIMEOUT"
wait "$ECHO_PID" || true
forget "$ECHO_PID"
line=$(grep RESULT "$OUT/wsload-echo.log" || true)
figure "echo during slowloris: conns, msg/s, p99, errors" \
  "$(field "$line" conns), $(field "$line" per_sec), $(field "$line" p99_us) us, $(field "$line" errors) errors, $(field "$line" closed) closed"
expect "echo clients failed during the slowloris ($OUT/wsload-echo.log)" \
  all '[ "$(field "$line" errors)" = 0 ]' '[ "$(field "$line" closed)" = 0 ]' '[ "$(field "$line" upgraded)" = "$ECHO_CONNS" ]'
p99=$(field "$line" p99_us); p99=${p99%.*}
expect "echo p99 ${p99:-?} us over $P99_BOUND_US us during the slowloris" all '[ -n "$p99" ]' '[ "$p99" -le "$P99_BOUND_US" ]'
alive

# --- 3-6. faults and floods ------------------------------------------------------------------
clients abrupt --port "$PORT" --tls-port "$TLS_PORT" --conns "$ABRUPT"
clients tls-garbage --tls-port "$TLS_PORT" --conns "$GARBAGE"
clients ping-flood --port "$PORT" --count "$FLOOD"
clients pong-flood --port "$PORT" --count "$FLOOD"
before=$(rss_kib "$SERVER_PID")
clients bomb --port "$PORT" --conns "$BOMBS" &
BOMB_PID=$!
peak=$before
while kill -0 "$BOMB_PID" 2>/dev/null; do
  r=$(rss_kib "$SERVER_PID"); [ "$r" -gt "$peak" ] && peak=$r
  sleep 0.05
done
wait "$BOMB_PID" || FAILS=$((FAILS + 1))
# Each connection inflates at most its 1 MiB message limit before it is refused.
figure "server RSS during the bomb: before, peak" "$((before / 1024)) MiB, $((peak / 1024)) MiB"
expect "RSS rose by $(((peak - before) / 1024)) MiB during the bomb" [ "$peak" -le $((before + BOMBS * 2048 + 65536)) ]
alive
expect "the wss server exited" kill -0 "$TLS_PID"

# --- after all -------------------------------------------------------------------------------
n=$(settle_fds)
tls_n=$(settle_fds "$TLS_PID" "$TLS_BASE_FDS")
figure "server fds at the end (ws, wss)" "$n, $tls_n (baseline $BASE_FDS, $TLS_BASE_FDS)"
expect "$n fds open at the end (baseline $BASE_FDS)" [ "$n" -le "$BASE_FDS" ]
expect "$tls_n wss fds open at the end (baseline $TLS_BASE_FDS)" [ "$tls_n" -le "$TLS_BASE_FDS" ]
clients echo --port "$PORT" --tls-port "$TLS_PORT"
if grep -qiE "fatal|crash|assertion" "$OUT/serve.log" "$OUT/serve-tls.log"; then
  echo "FAIL the server logged a crash or an assertion"; FAILS=$((FAILS + 1))
fi
figure "soak" "$((SECONDS - START)) s, $FAILS failed"
[ "$FAILS" = 0 ]
