#!/usr/bin/env bash
# interop-venv.sh [VENV_DIR] - make (once) a venv with the interop peers of the tests, and print its
# python's path: Python's `websockets`, and `h2` with `wsproto` (the HTTP/2 WebSocket client of
# scripts/h2-websocket-client.py, RFC 8441), and `prometheus_client` (its exposition-format parser reads
# `duplex serve --metrics` in Tests/Interop/prometheus_scrape_check.py). Default VENV_DIR: .venv-interop at the repo root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${DUPLEX_INTEROP_VENV:-$ROOT/.venv-interop}}"
VERSION="17.4"
H2_VERSION="4.4.1"
WSPROTO_VERSION="1.3.2"
PROMETHEUS_CLIENT_VERSION="0.26.0"
check="import websockets, h2, wsproto, sys, importlib.metadata as m; sys.exit(websockets.__version__ != '$VERSION' or m.version('h2') != '$H2_VERSION' or m.version('wsproto') != '$WSPROTO_VERSION' or m.version('prometheus_client') != '$PROMETHEUS_CLIENT_VERSION')"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$check" 2>/dev/null; then
  # Tests running in parallel each call this script: one makes the venv, the others wait for it
  # (a lock file beside the venv) and check again, so none uses a half-made venv.
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$VENV.lock"
  flock 9
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$check" 2>/dev/null; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "websockets==$VERSION" "h2==$H2_VERSION" "wsproto==$WSPROTO_VERSION" \
      "prometheus_client==$PROMETHEUS_CLIENT_VERSION" >&2
  fi
  flock -u 9
fi
echo "$VENV/bin/python"
