#!/usr/bin/env bash
# h2-load.sh - N WebSockets over one HTTP/2 connection (RFC 8441) against N over their own TLS
# connections, to `duplex serve --tls-cert/--tls-key` (release build): the server's RSS per idle
# WebSocket, then echo messages/s (closed loop, one 16-byte message in flight per WebSocket).
# The client is Benchmarks/H2Bench (h2-bench, Duplex's public client API): wsload speaks no HTTP/2.
# Run under the bench lock: flock /tmp/duplex-bench.lock Benchmarks/h2-load.sh
# Environment: N (100), DURATION (10), PORT (9443), SCRATCH (.build-h2bench), SKIP_BUILD, CONFIG (release).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
N="${N:-100}"; DURATION="${DURATION:-10}"; PORT="${PORT:-9443}"; SCRATCH="${SCRATCH:-.build-h2bench}"
if [ -z "${SKIP_BUILD:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product duplex >&2
  swift build -c release --scratch-path "$SCRATCH" --product h2-bench >&2
fi
BIN="$SCRATCH/${CONFIG:-release}"  # CONFIG=debug with SCRATCH=.build and SKIP_BUILD=1: the debug binaries
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/k.pem" -out "$WORK/c.pem" -days 1 -subj /CN=localhost 2>/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }  # KiB
for transport in http1 h2; do
  "$BIN/duplex" serve --port "$PORT" --tls-cert "$WORK/c.pem" --tls-key "$WORK/k.pem" --ping-interval 0 --ticker-interval 0 \
    --no-deflate --threads 1 --log-level error > "$WORK/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  sleep 1
  base="$(rss "$server")"
  "$BIN/h2-bench" --url "wss://127.0.0.1:$PORT/echo" --transport "$transport" --connections "$N" --duration "$DURATION" --hold 3 \
    > "$WORK/bench.out" 2>&1 &
  bench=$!
  for _ in $(seq 1 300); do grep -q '^opened' "$WORK/bench.out" && break; sleep 0.1; done
  sleep 2
  idle="$(rss "$server")"
  wait "$bench"
  stats="$(curl -sk "https://127.0.0.1:$PORT/stats/transports" || true)"
  echo "$transport: $(grep '^opened' "$WORK/bench.out"); server RSS $base KiB -> $idle KiB with $N idle WebSockets:" \
       "$(( (idle - base) * 1024 / N )) bytes per WebSocket; $(grep '^echo' "$WORK/bench.out"); $stats"
  kill "$server"; wait "$server" 2>/dev/null || true
done
