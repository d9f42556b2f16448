#!/usr/bin/env bash
# A subscriber that stops reading while 1 GiB is published to its topic (issue 9's goal): the
# server's RSS must grow by at most the subscriber's outbound limit (plus what the kernel holds),
# the other subscriber must keep its latency, and the policy must fire (close 1013 by default).
#
#   Benchmarks/slow-subscriber.sh [DUPLEX_BINARY]   (default .build-loadbench/release/duplex)
#
# One `duplex serve` on CPU 0; on CPU 1: a stalled subscriber (Python, reads its 101 and then
# nothing), `wsload subscribe` with 1 connection (the one that keeps reading: its latency), and
# `wsload publish` sending 16 KiB messages at 3,000/s for 22 s (about 1 GiB; the publisher is a
# subscriber too and reads its own messages back). Prints the server's RSS before, at the peak and
# after, the subscriber's latency, and what the stalled one saw.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build-loadbench/release/duplex}
W=.build-loadbench/wsload
[ -x "$W" ] || OUT=.build-loadbench ../shared/loadgen/build.sh >/dev/null
PORT=${PORT:-9871}
LIMIT=$((16 << 20))
taskset -c 0 "$BIN" serve --port "$PORT" --threads 1 --ping-interval 0 --ticker-interval 0 --no-deflate \
  --hard-limit "$LIMIT" --log-level info > /tmp/slow-serve.log 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$SP/status"; }
python3 - "$PORT" > /tmp/slow-stalled.txt 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
s.sendall(b"GET /topics/bench HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print("stalled subscriber: upgraded:", head.split(b"\r\n")[0].decode())
time.sleep(26)  # reads nothing while the publish runs
s.settimeout(5)
data, code = b"", None
try:
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
except Exception as e:
    print("stalled subscriber: read ended with", type(e).__name__)
# The last frame the server sent: a close frame (0x88) with its code, if the policy closed it.
i = data.rfind(b"\x88\x02")
if i < 0:
    i = data.rfind(b"\x88")
if i >= 0 and len(data) >= i + 4:
    code = int.from_bytes(data[i + 2:i + 4], "big")
print(f"stalled subscriber: read {len(data)} bytes after waking up; close frame: "
      + (f"code {code}" if code else "none (the server closed TCP at its close timeout, with the rest unsent)"))
PY
STALLED=$!
sleep 1
before=$(rss)
taskset -c 1 "$W" subscribe --url "ws://127.0.0.1:$PORT/topics/bench" --conns 1 --warmup 1 --duration 23 > /tmp/slow-sub.txt 2>&1 &
SUB=$!
sleep 0.5
peak=$before
taskset -c 1 "$W" publish --url "ws://127.0.0.1:$PORT/topics/bench" --rate 3000 --size 16k --duration 22 > /tmp/slow-pub.txt 2>&1 &
PUB=$!
while kill -0 $PUB 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.2; done
wait $SUB || true
after=$(rss)
wait $STALLED || true
pub=$(grep RESULT /tmp/slow-pub.txt | tr ' ' '\n' | grep -E '^(count|size|skipped|late_max_us)=' | tr '\n' ' ')
sub=$(grep RESULT /tmp/slow-sub.txt | tr ' ' '\n' | grep -E '^(count|p50_us|p99_us|max_us|gaps|server_cpu_pct)=' | tr '\n' ' ')
echo "published: $pub"
echo "published bytes: $(grep RESULT /tmp/slow-pub.txt | tr ' ' '\n' | awk -F= '/^count=/{c=$2} /^size=/{s=$2} END {printf "%.2f GiB", c*s/1073741824}')"
echo "reading subscriber: $sub"
cat /tmp/slow-stalled.txt
echo "server RSS: before ${before} KiB, peak ${peak} KiB (+$(( (peak - before) / 1024 )) MiB), after ${after} KiB; outbound hard limit $((LIMIT >> 20)) MiB"
grep -i "slow subscriber\|hard limit" /tmp/slow-serve.log | head -3 || true
