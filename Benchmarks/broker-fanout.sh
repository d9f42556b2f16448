#!/usr/bin/env bash
# Topics across instances (issue 10): what a broker costs. `duplex bench fanout` publishes to one
# instance and subscribes on another, through redis-server and through PostgreSQL 15 (both started
# here, Debian's packages), beside the same load on one instance.
#
#   flock /tmp/duplex-bench.lock Benchmarks/broker-fanout.sh [DUPLEX_BINARY]   (default .build/release/duplex)
#
# Scenarios (100-byte text messages, 10 s counted after 1 s of warm-up):
#   - 100 subscribers x 100 msg/s = 10,000 deliveries/s: one instance, then across two through Redis;
#   - 1 subscriber, the publish rate raised (RATES, default 2,000 / 5,000 / 10,000 / 20,000 / 40,000
#     msg/s) through each broker and on one instance: the highest rate without losses or a growing
#     backlog (p99 stays low).
# Prints one `result:` line per run (p50/p99/max in µs, deliveries/s, losses).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/duplex}
REDIS_PORT=${REDIS_PORT:-6399}
PG_PORT=${PG_PORT:-6398}
A=${PORT_A:-9881}
B=${PORT_B:-9882}
C=${PORT_C:-9884}
D=${PORT_D:-9885}
RATES=${RATES:-2000 5000 10000 20000 40000}
DURATION=${DURATION:-10}
WORK=$(mktemp -d)
PIDS=()
PG=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  as_pg "$PG/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" > "$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
as_pg "$PG/initdb" -D "$WORK/pg" -U postgres -A trust --no-sync >/dev/null
as_pg "$PG/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
serve() {  # serve PORT [--broker URL]
  "$BIN" serve --port "$1" --threads 1 --ping-interval 0 --ticker-interval 0 --no-deflate --log-level warning "${@:2}" \
    > "$WORK/serve-$1.log" 2>&1 &
  PIDS+=($!)
  wait_port "$1"
}
serve "$A" --broker "redis://127.0.0.1:$REDIS_PORT"
serve "$B" --broker "redis://127.0.0.1:$REDIS_PORT"
serve "$C" --broker "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
serve "$D" --broker "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
serve 9883   # a lone instance without a broker

run() {  # run LABEL SUB_PORT PUB_PORT CONNECTIONS RATE
  local out
  out=$("$BIN" bench fanout "ws://127.0.0.1:$2/topics/bench" --publish-url "ws://127.0.0.1:$3/topics/bench" \
    --connections "$4" --rate "$5" --duration "$DURATION" --warmup 1 --json 2>/dev/null)
  python3 - "$1" "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print(f"result: {sys.argv[1]}: connected={r['connected']} rate={r['rate']} deliveries/s={r['deliveries_per_s']:.0f} "
      f"(expected {r['expected_per_s']:.0f}) p50={r['p50_us']}us p99={r['p99_us']}us p999={r['p999_us']}us "
      f"max={r['max_us']}us losses={r['losses']} gaps={r['gaps']} reordered={r['reordered']} late_max_us={r['late_max_us']}")
PY
}
run "one instance, 100 subs x 100/s" 9883 9883 100 100
run "redis A<-B, 100 subs x 100/s" "$A" "$B" 100 100
run "postgres A<-B, 100 subs x 100/s" "$C" "$D" 100 100
for rate in $RATES; do
  run "one instance, 1 sub x $rate/s" 9883 9883 1 "$rate"
  run "redis A<-B, 1 sub x $rate/s" "$A" "$B" 1 "$rate"
  run "postgres A<-B, 1 sub x $rate/s" "$C" "$D" 1 "$rate"
done
