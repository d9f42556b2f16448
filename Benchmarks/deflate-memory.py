"""deflate-memory.py DUPLEX_BINARY [CONNECTIONS] - server memory per WebSocket connection with
permessage-deflate off and on (both context-takeover modes).

For each mode: start `duplex serve` on loopback, open CONNECTIONS clients with Python's
websockets (which offers permessage-deflate by default), send one 4 KiB JSON-like text message
on each and wait for its echo (so zlib streams exist where they are kept), then read the
server's RSS. Prints a markdown table of (RSS after - RSS before) / CONNECTIONS.
"""
import asyncio, json, os, random, subprocess, sys, time

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
PORT = 9041


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def payload():
    rng = random.Random(7)
    rows = [{"symbol": f"S{rng.randrange(500)}", "price": round(rng.uniform(1, 500), 2), "size": rng.randrange(1, 1000)}
            for _ in range(60)]
    return json.dumps(rows)[:4096]


async def measure(args, label, compression):
    server = subprocess.Popen([BIN, "serve", "--port", str(PORT), "--ping-interval", "0", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", PORT)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        before = rss_kib(server.pid)
        message = payload()
        extensions = [ClientPerMessageDeflateFactory()] if compression else None
        clients = []
        for i in range(N):
            ws = await websockets.connect(f"ws://127.0.0.1:{PORT}/echo", extensions=extensions, compression=None,
                                          ping_interval=None, max_size=None)
            clients.append(ws)
        negotiated = clients[0].response.headers.get("Sec-WebSocket-Extensions", "none")
        for ws in clients:
            await ws.send(message)
        for ws in clients:
            assert await ws.recv() == message
        await asyncio.sleep(0.5)
        after = rss_kib(server.pid)
        for ws in clients:
            await ws.close()
        return label, negotiated, (after - before) * 1024 / N
    finally:
        server.terminate()
        server.wait()


async def main():
    rows = [
        await measure(["--no-deflate"], "off", False),
        await measure([], "on, context takeover (window 15, memLevel 8)", True),
        await measure(["--deflate-window-bits", "12", "--deflate-memory-level", "5"], "on, context takeover (window 12, memLevel 5)", True),
        await measure(["--deflate-no-context-takeover"], "on, server_no_context_takeover", True),
    ]
    print(f"| server permessage-deflate | negotiated | bytes per connection ({N} connections, after one 4 KiB message each) |")
    print("| --- | --- | ---: |")
    for label, negotiated, per in rows:
        print(f"| {label} | `{negotiated}` | {per:,.0f} |")


asyncio.run(main())
