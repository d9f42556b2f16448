#!/usr/bin/env python3
"""Interop check of a Duplex server with Python's `websockets` client (asyncio API).

usage: websockets_client_check.py BASE_URL
  BASE_URL like ws://127.0.0.1:PORT; the server must serve
    /echo          echoes every message (text and binary)
    /close-custom  closes with 4001 "custom" when it receives any message

Prints one line per check and a final "RESULT: OK" or "RESULT: FAIL ...", exits non-zero on failure.
"""
import asyncio
import os
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


async def echo_checks(base):
    async with connect(f"{base}/echo", max_size=32 * 1024 * 1024, subprotocols=None) as ws:
        await ws.send("hello from python ✓")
        check(await ws.recv() == "hello from python ✓", "text echo")

        payload = os.urandom(100_000)
        await ws.send(payload)
        check(await ws.recv() == payload, "binary echo (100 kB)")

        large = os.urandom(8 * 1024 * 1024)
        await ws.send(large)
        check(await ws.recv() == large, "binary echo (8 MiB)")

        # A fragmented message, sent as an iterable of fragments.
        await ws.send(["frag", "mented ", "téxt"])
        check(await ws.recv() == "fragmented téxt", "fragmented text echo")

        pong = await ws.ping(b"duplex")
        latency = await asyncio.wait_for(pong, 5)
        check(latency >= 0, "ping answered with a pong")

        await ws.close(code=1000, reason="done")
        check(ws.close_code == 1000, f"client close 1000 echoed (got {ws.close_code})")
        check(ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000,
              "server's close frame carries 1000")


async def custom_close_check(base):
    async with connect(f"{base}/close-custom") as ws:
        await ws.send("please close")
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise AssertionError("expected the server to close")
        except ConnectionClosed as closed:
            check(closed.rcvd is not None, "server sent a close frame")
            check(closed.rcvd.code == 4001, f"server close code 4001 (got {closed.rcvd.code})")
            check(closed.rcvd.reason == "custom", f"server close reason 'custom' (got {closed.rcvd.reason!r})")
            check(closed.sent is not None and closed.sent.code == 4001, "client echoed 4001")
        await ws.wait_closed()
        check(ws.close_code == 4001, "close_code 4001 after the closing handshake")


async def main(base):
    print(f"websockets {websockets.__version__} against {base}", flush=True)
    await echo_checks(base)
    await custom_close_check(base)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1].rstrip("/")), 60))
    except BaseException as error:  # noqa: BLE001 - report any failure as a result line
        print(f"RESULT: FAIL {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
    print("RESULT: OK", flush=True)
