#!/usr/bin/env python3
"""fallback-bench.py DUPLEX_BINARY [--sessions N] [--messages M] - what an HTTP fallback costs.

Against `duplex serve` (its /echo endpoint, which serves WebSocket, SSE and long-polling
clients; a fresh server per measurement, so that no kind reuses memory another one freed),
measures:
  1. memory: the server's RSS (its resident pages) grown by N idle WebSocket connections, by
     N idle SSE sessions (each with its open stream), by N idle long-polling sessions (each
     with its pending poll), per connection or session;
  2. messages/s: M echoed messages of 64 bytes through one connection of each transport, sent
     in batches of 100 (one WebSocket write per batch, one POST per batch for the fallbacks),
     counted when their echo arrives (the stream's events, or the polls' answers).
The client is Python asyncio over raw sockets (no HTTP library): one process, one core; the
figures are the server's cost only where the client keeps up (see docs/benchmarks.md).
Run it under the machine's bench lock:
  flock /tmp/duplex-bench.lock python3 Benchmarks/fallback-bench.py .build/release/duplex
"""
import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time

BATCH = 100


def rss_kib(pid):
    """Resident memory of `pid` in KiB, from /proc/PID/statm (pages)."""
    resident = int(open(f"/proc/{pid}/statm").read().split()[1])
    return resident * os.sysconf("SC_PAGE_SIZE") // 1024


class HTTP:
    """One keep-alive HTTP/1.1 connection over asyncio streams."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host, port):
        return cls(*await asyncio.open_connection(host, port))

    def send(self, method, target, body=b"", headers=()):
        head = f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
        self.writer.write(head.encode() + b"\r\n" + body)

    async def head(self):
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode().split("\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        return status, fields

    async def response(self):
        status, fields = await self.head()
        body = await self.reader.readexactly(int(fields.get("content-length", "0")))
        return status, body

    async def request(self, method, target, body=b"", headers=()):
        self.send(method, target, body, headers)
        return await self.response()

    async def chunk(self):
        size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    def close(self):
        self.writer.close()


async def open_session(control, path, transport):
    status, body = await control.request("POST", f"{path}?transport={transport}")
    if status != 200:
        raise RuntimeError(f"opening a {transport} session answered {status} {body[:80]!r}")
    return json.loads(body)["session"]


async def websocket(host, port, path):
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(f"upgrade answered {head[:60]!r}")
    return reader, writer


def masked_text(payload):
    mask = os.urandom(4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + data


async def idle_memory(host, port, pid, path, sessions, kind):
    """RSS growth per idle connection (websocket) or session (sse, longpoll), in KiB."""
    await asyncio.sleep(2)
    base = rss_kib(pid)
    opened = []
    control = await HTTP.connect(host, port)
    for _ in range(sessions):
        if kind == "websocket":
            opened.append(await websocket(host, port, path))
            continue
        session = await open_session(control, path, kind)
        connection = await HTTP.connect(host, port)
        connection.send("GET", f"{path}?session={session}", headers=[("Accept", "text/event-stream")])
        if kind == "sse":
            await connection.head()
        opened.append(connection)
    await asyncio.sleep(2)
    grown = (rss_kib(pid) - base) / sessions
    control.close()
    return grown


async def throughput(host, port, path, messages):
    payload = b"x" * 64
    results = {}

    reader, writer = await websocket(host, port, path)
    started = time.perf_counter()
    for _ in range(messages // BATCH):
        writer.write(masked_text(payload) * BATCH)
        for _ in range(BATCH):
            header = await reader.readexactly(2)
            await reader.readexactly(header[1] & 0x7F)
    results["websocket"] = messages / (time.perf_counter() - started)
    writer.close()

    batch = b"".join(b"data: " + payload + b"\n\n" for _ in range(BATCH))
    control = await HTTP.connect(host, port)
    for transport in ("sse", "longpoll"):
        session = await open_session(control, path, transport)
        down = await HTTP.connect(host, port)
        target = f"{path}?session={session}"
        started = time.perf_counter()
        if transport == "sse":
            down.send("GET", target, headers=[("Accept", "text/event-stream")])
            await down.head()

            async def receive():
                got, text = 0, b""
                while got < messages:
                    text += await down.chunk()
                    *events, text = text.split(b"\n\n")
                    got += sum(1 for event in events if event.startswith(b"id:"))
        else:
            async def receive():
                got, last = 0, None
                while got < messages:
                    status, body = await down.request("GET", target + (f"&last={last}" if last else ""))
                    ids = [line[4:] for line in body.split(b"\n") if line.startswith(b"id: ")]
                    if ids:
                        last = ids[-1].decode()
                    got += len(ids)

        async def send():
            up = await HTTP.connect(host, port)
            for _ in range(messages // BATCH):
                status, _ = await up.request("POST", target, batch)
                if status != 204:
                    raise RuntimeError(f"POST answered {status}")
            up.close()

        await asyncio.gather(receive(), send())
        results[transport] = messages / (time.perf_counter() - started)
        down.close()
    control.close()
    return results


class Server:
    """A fresh `duplex serve` on a free port (quiet: no pings, no ticker, no compression)."""

    def __init__(self, binary, port):
        self.port = port
        self.process = subprocess.Popen([binary, "serve", "--port", str(port), "--ping-interval", "0",
                                         "--ticker-interval", "0", "--no-deflate", "--log-level", "error"],
                                        stdout=subprocess.DEVNULL)

    async def ready(self):
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the server did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary", help="the duplex binary")
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--port", type=int, default=9046)
    parser.add_argument("--path", default="/echo")
    args = parser.parse_args()
    memory = {}
    for kind in ("websocket", "sse", "longpoll"):
        server = Server(args.binary, args.port)
        try:
            await server.ready()
            memory[kind] = await idle_memory("127.0.0.1", args.port, server.process.pid, args.path, args.sessions, kind)
        finally:
            server.stop()
    server = Server(args.binary, args.port)
    try:
        await server.ready()
        rates = await throughput("127.0.0.1", args.port, args.path, args.messages)
    finally:
        server.stop()
    print(f"{'transport':<10} {'RSS per idle connection/session, KiB':>38} {'echoed messages/s (64 B)':>26}")
    for transport in ("websocket", "sse", "longpoll"):
        print(f"{transport:<10} {memory[transport]:>38.2f} {rates[transport]:>26.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
