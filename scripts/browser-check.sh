#!/usr/bin/env bash
# browser-check.sh DUPLEX_BINARY - a real browser against `duplex serve`: headless Chromium opens
# the demo page, which connects to /echo, sends a message and shows the echo and the negotiated
# extensions in the page; the page's DOM after the script ran must show both.
# Needs Debian's `chromium` (apt-get install chromium). Exit 0 on success.
set -euo pipefail
BIN="${1:?usage: browser-check.sh path/to/duplex}"
PORT="${BROWSER_CHECK_PORT:-9031}"
WORK="$(mktemp -d)"
"$BIN" serve --port "$PORT" --ping-interval 0 > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

timeout 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$WORK/profile" \
  --virtual-time-budget=5000 --dump-dom "http://127.0.0.1:$PORT/" > "$WORK/dom.html" 2> "$WORK/chromium.log" || true

fail() { echo "browser-check: $*" >&2; echo "--- DOM:" >&2; cat "$WORK/dom.html" >&2; exit 1; }
grep -q '&lt; hello from the browser: long enough to travel compressed both ways' "$WORK/dom.html" || fail "the page did not receive its echo"
grep -q 'id="status" class="open"' "$WORK/dom.html" || fail "the page's WebSocket is not open"
extensions="$(grep -o 'extensions: [^<]*' "$WORK/dom.html" | head -1)"
echo "browser-check: chromium $(chromium --version 2>/dev/null | awk '{print $2}') echoed through /echo; $extensions"
case "$extensions" in
  *permessage-deflate*) ;;
  *) fail "chromium did not negotiate permessage-deflate" ;;
esac
