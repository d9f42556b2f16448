"""accept_emfile_check.py DUPLEX_BINARY - `duplex serve` when file descriptors run out.

Starts `duplex serve` with a limit of 64 open files (RLIMIT_NOFILE), opens WebSocket connections
until one is no longer accepted (accept fails with EMFILE), then checks that:
  - the server is still running and logged the accept error,
  - every connection it has still echoes,
  - once some connections close, new ones are accepted again and echo.
Prints one line per figure and "OK accepting resumed ..." at the end; exits 1 on a failure.
"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import warnings

from websockets.sync.client import connect

FD_LIMIT = 64
# websockets 17 asks for `with connect(...)`; these connections outlive one block on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def fail(why):
    print("FAIL", why)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def limit_files():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def wait_for_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    fail(f"nothing listens on {port}")


def echoes(ws, text):
    ws.send(text)
    return ws.recv(timeout=5) == text


def main():
    duplex = sys.argv[1]
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="duplex-emfile-", suffix=".log", delete=False)
    server = subprocess.Popen(
        [duplex, "serve", "--port", str(port), "--threads", "1", "--ping-interval", "0", "--ticker-interval", "0"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_files)
    try:
        wait_for_port(port)
        url = f"ws://127.0.0.1:{port}/echo"
        open_sockets = []
        refused = 0
        for _ in range(FD_LIMIT + 16):
            try:
                open_sockets.append(connect(url, open_timeout=1.5, compression=None))
            except (TimeoutError, OSError, Exception):
                refused += 1
                if refused >= 3:
                    break
        print(f"connections accepted under a limit of {FD_LIMIT} fds: {len(open_sockets)}, then {refused} not accepted")
        if refused == 0:
            fail("every connection was accepted: the fd limit was not reached")
        if not 16 <= len(open_sockets) < FD_LIMIT:
            fail(f"unexpected number of accepted connections: {len(open_sockets)}")
        if server.poll() is not None:
            fail(f"the server exited with {server.returncode} when fds ran out")
        for n, ws in enumerate(open_sockets):
            if not echoes(ws, f"still here {n}"):
                fail(f"connection {n} did not echo at the fd limit")
        print(f"open connections echoing at the fd limit: {len(open_sockets)}")
        with open(log.name, encoding="utf-8", errors="replace") as f:
            logged = f.read()
        if "accepting a connection failed" not in logged:
            fail("the accept error was not logged:\n" + logged[-2000:])
        for ws in open_sockets[:10]:
            ws.close()
        del open_sockets[:10]
        deadline = time.time() + 15
        fresh = None
        while fresh is None and time.time() < deadline:
            try:
                fresh = connect(url, open_timeout=2, compression=None)
            except Exception:
                time.sleep(0.2)
        if fresh is None:
            fail("no new connection accepted after 10 closed")
        if not echoes(fresh, "accepted again"):
            fail("the new connection did not echo")
        for n, ws in enumerate(open_sockets):
            if not echoes(ws, f"after {n}"):
                fail(f"connection {n} stopped echoing")
        fresh.close()
        for ws in open_sockets:
            ws.close()
        if server.poll() is not None:
            fail(f"the server exited with {server.returncode}")
        print(f"OK accepting resumed: a new connection echoes after 10 closed; {len(open_sockets)} others still echo")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        os.unlink(log.name)


if __name__ == "__main__":
    main()
