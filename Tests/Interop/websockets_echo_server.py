#!/usr/bin/env python3
"""Interop peer for the Duplex client tests: a server on Python's `websockets` (asyncio API).

usage: websockets_echo_server.py [--tls CERT KEY]

Listens on 127.0.0.1 with a free port, prints the port on the first line of stdout, and runs
until stdin reaches EOF (the test closes the pipe, or dies). Endpoints:

  /echo?id=ID           echoes every message; remembers the client's close code and reason under ID
  /close?code=N&reason=R closes at once with code N and reason R
  /closed?id=ID         sends "CODE REASON" of the client's close on /echo?id=ID (waits up to 5 s)
  /info                 sends "SUBPROTOCOL|ORIGIN|X-TEST|EXTENSIONS" as the server saw and agreed
                        them (EXTENSIONS: the names of the negotiated extensions, comma-separated),
                        then echoes

The server speaks the subprotocols chat.v2 and chat.v1 (in this order of preference) and
accepts clients that offer none.
"""
import asyncio
import ssl
import sys
import urllib.parse

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

SUBPROTOCOLS = ["chat.v2", "chat.v1"]
closes = {}  # id -> (code, reason)
close_events = {}  # id -> asyncio.Event


def event_for(key):
    if key not in close_events:
        close_events[key] = asyncio.Event()
    return close_events[key]


def select_subprotocol(connection, offered):
    for subprotocol in SUBPROTOCOLS:
        if subprotocol in offered:
            return subprotocol
    return None


async def handler(ws):
    url = urllib.parse.urlsplit(ws.request.path)
    query = dict(urllib.parse.parse_qsl(url.query))
    if url.path == "/echo":
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            key = query.get("id")
            if key is not None:
                closes[key] = (ws.close_code, ws.close_reason or "")
                event_for(key).set()
    elif url.path == "/close":
        await ws.close(int(query.get("code", "1000")), query.get("reason", ""))
    elif url.path == "/closed":
        key = query.get("id", "")
        await asyncio.wait_for(event_for(key).wait(), 5)
        code, reason = closes[key]
        await ws.send(f"{code} {reason}")
    elif url.path == "/info":
        headers = ws.request.headers
        extensions = ",".join(extension.name for extension in ws.protocol.extensions)
        await ws.send("|".join([ws.subprotocol or "", headers.get("Origin", ""), headers.get("X-Test", ""), extensions]))
        async for message in ws:
            await ws.send(message)
    else:
        await ws.close(1008, "unknown path")


async def main():
    tls = None
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[2], sys.argv[3])
    async with serve(handler, "127.0.0.1", 0, ssl=tls, select_subprotocol=select_subprotocol,
                     max_size=16 * 1024 * 1024, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        # Run until stdin closes: the test owns the process through the pipe.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
