#!/usr/bin/env python3
"""permessage-deflate interop: Python's websockets client (compression on by default) against a
Duplex server whose endpoint negotiates permessage-deflate.

usage: websockets_deflate_check.py URL
  URL of an endpoint that echoes every message and accepts permessage-deflate.
Prints one line per check and "RESULT: OK", or raises (non-zero exit).
"""
import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


async def main(url):
    async with connect(url, max_size=16 * 1024 * 1024) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        check(negotiated.startswith("permessage-deflate"), f"negotiated: {negotiated}")
        check([e.name for e in ws.protocol.extensions] == ["permessage-deflate"], "extension active on the client")
        ticker = json.dumps([{"symbol": "DPLX", "price": 100 + i / 100, "size": i} for i in range(800)])
        for round in range(3):  # context takeover: later messages refer back to earlier ones
            await ws.send(ticker)
            check(await ws.recv() == ticker, f"compressed text echo {round + 1} ({len(ticker)} bytes)")
        noise = os.urandom(50_000)
        await ws.send(noise)
        check(await ws.recv() == noise, "incompressible binary echo")
        await ws.send(["déjà ", "vu " * 500, "✓"])
        check(await ws.recv() == "déjà " + "vu " * 500 + "✓", "fragmented compressed text echo")
        zeros = bytes(1024 * 1024)
        await ws.send(zeros)
        check(await ws.recv() == zeros, "1 MiB of zeros (a small frame that inflates big, exactly at the default limit)")
    print("RESULT: OK", flush=True)


asyncio.run(main(sys.argv[1]))
