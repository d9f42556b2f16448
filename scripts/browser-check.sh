#!/usr/bin/env bash
# browser-check.sh DUPLEX_BINARY - a real browser against `duplex serve`'s demo app
# (Sources/DuplexCLI/Resources), in three parts:
#  1. files: GET /, /demo/app.js, /demo/style.css and /duplex.js answer 200 with their
#     Content-Type; GET /topics/NAME with Accept: text/event-stream streams NAME as SSE;
#  2. echo: headless Chromium opens the page (--dump-dom); its echo tester connects to /echo,
#     sends a message and shows the echo and the negotiated extensions; the page's DOM after the
#     script ran must show both, and permessage-deflate;
#  3. topics: scripts/browser-topics-check.py drives Chromium over the DevTools protocol: two
#     pages in one chat room see each other's messages and the room's size, and the ticker
#     updates. It first checks the topic interface the app uses and says what the server lacks.
#     Then three pages force one transport each (WebSocket, SSE, long-polling: /duplex.js) in
#     one room and see each other's messages.
# Needs Debian's `chromium` (apt-get install chromium) and python3; part 3 uses the interop venv
# (scripts/interop-venv.sh, made on first use).
# Environment: BROWSER_CHECK_PORT the server's port (9031); BROWSER_CHECK_TOPICS=0 runs parts 1
# and 2 only.
# Exit 0 on success.
set -euo pipefail
BIN="${1:?usage: browser-check.sh path/to/duplex}"
PORT="${BROWSER_CHECK_PORT:-9031}"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
"$BIN" serve --port "$PORT" --ping-interval 0 > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

# 1. The app's files.
python3 - "http://127.0.0.1:$PORT" <<'EOF'
import sys, urllib.request
files = {"/": "text/html", "/demo/app.js": "text/javascript", "/demo/style.css": "text/css", "/duplex.js": "text/javascript"}
for path, kind in files.items():
    with urllib.request.urlopen(sys.argv[1] + path, timeout=5) as response:
        got = response.headers.get("Content-Type", "")
        if response.status != 200 or got.split(";")[0] != kind or not response.read():
            sys.exit(f"browser-check: GET {path} answered {response.status} {got!r}, want 200 {kind} with a body")
print("browser-check: the demo app's files are served: " + ", ".join(files))

# A topic as Server-Sent Events (what `curl -N -H 'Accept: text/event-stream'` gets).
import base64, secrets, threading
topic = "check.sse-" + secrets.token_hex(3)
request = urllib.request.Request(f"{sys.argv[1]}/topics/{topic}", headers={"Accept": "text/event-stream"})
stream = urllib.request.urlopen(request, timeout=10)
if not stream.headers.get("Content-Type", "").startswith("text/event-stream"):
    sys.exit(f"browser-check: GET /topics/{topic} with Accept: text/event-stream answered {stream.headers.get('Content-Type')!r}")
def event():
    fields = {}
    while (line := stream.readline().decode().rstrip("\n")) != "" or not fields:
        if line and not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return fields
if event().get("event") != "session":
    sys.exit("browser-check: the topic's SSE stream did not start with its session event")
def publish(body, kind):
    urllib.request.urlopen(urllib.request.Request(f"{sys.argv[1]}/publish/{topic}", data=body, method="POST",
                                                  headers={"Content-Type": kind}), timeout=5).read()
publish(b"hello over sse", "text/plain")
publish(bytes([0, 1, 2, 255]), "application/octet-stream")
text, binary = event(), event()
if text.get("data") != "hello over sse" or text.get("id") != "1":
    sys.exit(f"browser-check: the SSE topic stream carried {text}, want id 1, data 'hello over sse'")
if binary.get("event") != "binary" or base64.b64decode(binary.get("data", "")) != bytes([0, 1, 2, 255]) or binary.get("id") != "2":
    sys.exit(f"browser-check: the SSE topic stream carried {binary}, want id 2, a binary event of 00 01 02 ff")
stream.close()
print(f"browser-check: GET /topics/{topic} with Accept: text/event-stream streams its text and binary messages")
EOF

# 2. The echo tester.
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

# 3. Chat and ticker on the server's topics.
if [ "${BROWSER_CHECK_TOPICS:-1}" = 0 ]; then
  echo "browser-check: topic checks skipped (BROWSER_CHECK_TOPICS=0)"
  exit 0
fi
PYTHON="$("$SCRIPTS/interop-venv.sh")"
"$PYTHON" "$SCRIPTS/browser-topics-check.py" "http://127.0.0.1:$PORT" || { echo "browser-check: the topic checks failed" >&2; exit 1; }
