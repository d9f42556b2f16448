#!/usr/bin/env bash
# browser-h2-check.sh DUPLEX_BINARY - headless Chromium against `duplex serve` over https with a
# test certificate (made here by openssl; --ignore-certificate-errors), HTTP/2 offered by ALPN:
# the demo page loads, its echo tester's WebSocket opens and echoes, and the server's
# /stats/transports says which transport carried the page's WebSockets (h2 streams, RFC 8441, or
# HTTP/1.1 upgrades). Prints what Chromium did. Exit 0 when the WebSocket worked; with
# BROWSER_H2_REQUIRE=1 also fail unless Chromium used HTTP/2 for it.
# Needs Debian's `chromium`, openssl and python3. Environment: BROWSER_H2_PORT (9033).
set -euo pipefail
BIN="${1:?usage: browser-h2-check.sh path/to/duplex}"
PORT="${BROWSER_H2_PORT:-9033}"
WORK="$(mktemp -d)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
"$BIN" serve --port "$PORT" --ping-interval 0 --ticker-interval 0 --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" \
  > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

timeout 60 chromium --headless=new --no-sandbox --disable-gpu --ignore-certificate-errors --user-data-dir="$WORK/profile" \
  --virtual-time-budget=5000 --dump-dom "https://127.0.0.1:$PORT/" > "$WORK/dom.html" 2> "$WORK/chromium.log" || true

fail() { echo "browser-h2-check: $*" >&2; echo "--- DOM:" >&2; cat "$WORK/dom.html" >&2; echo "--- server:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
grep -q 'id="status" class="open"' "$WORK/dom.html" || fail "the page's WebSocket is not open over https"
grep -q '&lt; hello from the browser' "$WORK/dom.html" || fail "the page did not receive its echo over https"

stats="$(python3 - "https://127.0.0.1:$PORT/stats/transports" <<'PY'
import ssl, sys, urllib.request
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
print(urllib.request.urlopen(sys.argv[1], context=context, timeout=5).read().decode().strip())
PY
)"
echo "browser-h2-check: chromium $(chromium --version 2>/dev/null | awk '{print $2}') over https: server transports $stats"
h2="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["websockets"]["h2"])' "$stats")"
http1="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["websockets"]["http/1.1"])' "$stats")"
if [ "$h2" -gt 0 ]; then
  echo "browser-h2-check: Chromium opened $h2 WebSocket(s) as HTTP/2 streams (RFC 8441) and $http1 over HTTP/1.1"
else
  echo "browser-h2-check: Chromium used HTTP/1.1 upgrades for its $http1 WebSocket(s), not HTTP/2"
  [ "${BROWSER_H2_REQUIRE:-0}" = 1 ] && fail "Chromium did not use HTTP/2 for the WebSocket"
fi
exit 0
