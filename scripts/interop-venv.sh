#!/usr/bin/env bash
# interop-venv.sh [VENV_DIR] - make (once) a venv with Python's `websockets`, the interop peer
# of the tests, and print its python's path. Default VENV_DIR: .venv-interop at the repo root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${DUPLEX_INTEROP_VENV:-$ROOT/.venv-interop}}"
VERSION="17.4"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import websockets, sys; sys.exit(websockets.__version__ != '$VERSION')" 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "websockets==$VERSION" >&2
fi
echo "$VENV/bin/python"
