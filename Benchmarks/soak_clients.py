"""soak_clients.py - the hostile clients of Benchmarks/soak.sh, over 127.0.0.1 only.

    soak_clients.py slowloris  --port P --conns N --timeout S   one header byte per second each; all must be
                                                               closed by the server at its handshake timeout S
    soak_clients.py abrupt     --port P --tls-port T --conns N  N abrupt disconnects (TCP RST) each mid-frame,
                                                               mid-handshake and mid-TLS-handshake
    soak_clients.py tls-garbage --tls-port T --conns N          random bytes on the wss port: each connection closed
    soak_clients.py ping-flood --port P --count N               N pings on one connection: every pong comes back
    soak_clients.py pong-flood --port P --count N               N unsolicited pongs: the connection still echoes
    soak_clients.py bomb       --port P --conns N               N connections at once each send one
                                                               permessage-deflate frame inflating to 64 MiB: 1009
    soak_clients.py echo       --port P [--tls-port T]         one echo over ws (and wss): the server still serves

Each prints one line per figure ("name: value") and exits 1 ("FAIL ...") when an expected outcome is missed.
"""
import argparse
import asyncio
import base64
import os
import socket
import ssl
import struct
import sys
import time
import zlib

HOST = "127.0.0.1"


def fail(why):
    print("FAIL", why, flush=True)
    sys.exit(1)


def figure(name, value):
    print(f"{name}: {value}", flush=True)


def upgrade_request(path="/echo", deflate=False):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def mask(payload, key):
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big") if n else b""


def frame(opcode, payload, fin=True, rsv1=False, length=None):
    """A masked client frame; `length` announces a different payload length (a cut frame)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload) if length is None else length
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    key = os.urandom(4)
    return header + key + mask(payload, key)


async def read_frame(reader):
    """(opcode, payload) of the server's next frame (unmasked)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


async def open_ws(port, deflate=False, ssl_context=None):
    reader, writer = await asyncio.open_connection(HOST, port, ssl=ssl_context, limit=1 << 20)
    writer.write(upgrade_request(deflate=deflate))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        fail(f"upgrade answered {head[:40]!r}")
    return reader, writer, head


def reset(writer):
    """Close with a TCP RST (SO_LINGER 0): an abrupt disconnect."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def insecure_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def echo_once(port, ssl_context=None):
    reader, writer, _ = await open_ws(port, ssl_context=ssl_context)
    writer.write(frame(0x1, b"still serving"))
    opcode, payload = await asyncio.wait_for(read_frame(reader), 10)
    if (opcode, payload) != (0x1, b"still serving"):
        fail(f"echo answered {opcode} {payload[:40]!r}")
    writer.write(frame(0x8, struct.pack("!H", 1000)))
    await writer.drain()
    writer.close()


async def all_at_once(count, one, what):
    """Runs `one()` `count` times concurrently; fails (saying `what`) if any raised."""
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        fail(f"{len(errors)} {what}: {errors[0]!r}")
    return len(results)


# --- scenarios -------------------------------------------------------------------------------

async def slowloris(args):
    request = upgrade_request()
    closed_after = []
    start = time.monotonic()

    async def one():
        reader, writer = await asyncio.open_connection(HOST, args.port)
        opened = time.monotonic()
        for byte in request:
            writer.write(bytes([byte]))
            try:
                data = await asyncio.wait_for(reader.read(1024), 1.0)
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                data = b""
            if data == b"":
                closed_after.append(time.monotonic() - opened)
                writer.close()
                return
            fail(f"a slowloris connection got an answer: {data[:60]!r}")
        fail("a slowloris connection sent its whole request without being closed")

    await all_at_once(args.conns, one, "slowloris connections failed")
    closed_after.sort()
    figure("slowloris connections closed by the server", f"{len(closed_after)}/{args.conns}")
    figure("slowloris closed after (s), min / median / max",
           f"{closed_after[0]:.1f} / {closed_after[len(closed_after) // 2]:.1f} / {closed_after[-1]:.1f}"
           f" (handshake timeout {args.timeout} s, {time.monotonic() - start:.1f} s in all)")
    if closed_after[0] < args.timeout - 1 or closed_after[-1] > args.timeout + 5:
        fail(f"slowloris connections were not closed at the handshake timeout ({args.timeout} s)")


async def abrupt(args):
    tls = insecure_context()
    hello_cut = None

    async def mid_frame():
        reader, writer, _ = await open_ws(args.port)
        writer.write(frame(0x2, os.urandom(100), length=4000))  # announces 4000 bytes, sends 100
        await writer.drain()
        reset(writer)

    async def mid_handshake():
        reader, writer = await asyncio.open_connection(HOST, args.port)
        writer.write(upgrade_request()[:40])
        await writer.drain()
        reset(writer)

    async def mid_tls_handshake():
        reader, writer = await asyncio.open_connection(HOST, args.tls_port)
        writer.write(hello_cut)
        await writer.drain()
        reset(writer)

    # The first bytes of a real ClientHello, cut in half.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    probe = tls.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        probe.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    hello_cut = hello[: len(hello) // 2]

    for name, scenario in (("mid-frame", mid_frame), ("mid-handshake", mid_handshake),
                           ("mid-TLS-handshake", mid_tls_handshake)):
        start = time.monotonic()
        done = 0
        for batch in range(0, args.conns, 100):
            done += await all_at_once(min(100, args.conns - batch), scenario,
                                      f"{name} connections failed before their disconnect")
        figure(f"abrupt disconnects {name}", f"{done} in {time.monotonic() - start:.1f} s")
    await echo_once(args.port)
    await echo_once(args.tls_port, ssl_context=tls)
    figure("after the disconnects", "ws and wss echo")


async def tls_garbage(args):
    closed = 0

    async def one():
        nonlocal closed
        reader, writer = await asyncio.open_connection(HOST, args.tls_port)
        writer.write(b"\x16\x03\x01\x02\x00" + os.urandom(2000))  # a TLS record header, then noise
        writer.write(os.urandom(4000))
        try:
            await writer.drain()
            data = await asyncio.wait_for(reader.read(1 << 16), 10)
            while data:  # a TLS alert, perhaps; then the close
                data = await asyncio.wait_for(reader.read(1 << 16), 10)
        except ConnectionError:
            pass
        closed += 1
        writer.close()

    start = time.monotonic()
    await all_at_once(args.conns, one, "garbage connections were not closed by the server")
    figure("TLS garbage connections closed by the server", f"{closed}/{args.conns} in {time.monotonic() - start:.1f} s")
    await echo_once(args.tls_port, ssl_context=insecure_context())
    figure("after the garbage", "wss echoes")


async def ping_flood(args):
    reader, writer, _ = await open_ws(args.port)
    ping = frame(0x9, b"flood")
    start = time.monotonic()
    pongs = 0

    async def read_pongs():
        nonlocal pongs
        while pongs < args.count:
            opcode, payload = await read_frame(reader)
            if opcode == 0xA:
                pongs += 1
            elif opcode == 0x8:
                fail(f"the server closed during the ping flood: {payload!r}")

    reading = asyncio.ensure_future(read_pongs())
    for sent in range(0, args.count, 1000):
        writer.write(ping * min(1000, args.count - sent))
        await writer.drain()
    await asyncio.wait_for(reading, 60)
    figure("ping flood", f"{args.count} pings, {pongs} pongs in {time.monotonic() - start:.1f} s")
    writer.write(frame(0x1, b"after the flood"))
    while True:
        opcode, payload = await asyncio.wait_for(read_frame(reader), 10)
        if opcode == 0x1:
            break
    if payload != b"after the flood":
        fail(f"echo after the ping flood: {payload!r}")
    writer.close()


async def pong_flood(args):
    reader, writer, _ = await open_ws(args.port)
    pong = frame(0xA, b"unsolicited")
    start = time.monotonic()
    for sent in range(0, args.count, 1000):
        writer.write(pong * min(1000, args.count - sent))
        await writer.drain()
    writer.write(frame(0x1, b"after the pongs"))
    opcode, payload = await asyncio.wait_for(read_frame(reader), 30)
    if (opcode, payload) != (0x1, b"after the pongs"):
        fail(f"echo after the pong flood: {opcode} {payload!r}")
    figure("pong flood", f"{args.count} unsolicited pongs, then an echo, in {time.monotonic() - start:.1f} s")
    writer.close()


async def bomb(args):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(bytes(64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # RFC 7692: without the trailing 00 00 ff ff
    bomb_frame = frame(0x2, payload, rsv1=True)
    codes = []

    async def one():
        reader, writer, head = await open_ws(args.port, deflate=True)
        if b"permessage-deflate" not in head.lower():
            fail("the server did not accept permessage-deflate")
        writer.write(bomb_frame)
        await writer.drain()
        opcode, body = await asyncio.wait_for(read_frame(reader), 30)
        if opcode != 0x8:
            fail(f"the bomb was answered with opcode {opcode}")
        codes.append(struct.unpack("!H", body[:2])[0])
        writer.close()

    start = time.monotonic()
    await all_at_once(args.conns, one, "bomb connections failed")
    figure("compression bomb", f"{args.conns} connections at once, {len(payload)} bytes inflating to 64 MiB each, "
                               f"closed with {sorted(set(codes))} in {time.monotonic() - start:.1f} s")
    if set(codes) != {1009}:
        fail(f"close codes {sorted(set(codes))}, expected 1009")
    await echo_once(args.port)


async def echo(args):
    await echo_once(args.port)
    if args.tls_port:
        await echo_once(args.tls_port, ssl_context=insecure_context())
    figure("echo", "ws" + (" and wss" if args.tls_port else ""))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["slowloris", "abrupt", "tls-garbage", "ping-flood", "pong-flood", "bomb", "echo"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()
    scenarios = {"slowloris": slowloris, "abrupt": abrupt, "tls-garbage": tls_garbage, "ping-flood": ping_flood,
                 "pong-flood": pong_flood, "bomb": bomb, "echo": echo}
    asyncio.run(scenarios[args.scenario](args))


if __name__ == "__main__":
    main()
