#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets (Fuzz/seeds/<target>/*).

Each target's input format is described at the top of its Fuzz/<target>.swift. Run this
from anywhere: `python3 Fuzz/seeds/make-seeds.py`; it rewrites the files it owns.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload, fin=True, rsv=0, mask=None, length_form=None):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    form = length_form or (7 if n < 126 else 16 if n <= 0xFFFF else 64)
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def masked(opcode, payload, **kw):
    return frame(opcode, payload, mask=KEY, **kw)


def deflate(data, wbits=15):
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def write(target, name, data):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


HELLO_DEFLATED = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])  # RFC 7692 §7.2.3.1
TEXT = "Grüße, κόσμε, こんにちは, 🎉 — ".encode() * 3

# FuzzFrameParser: [config] [split seed] [wire]
fp = "FuzzFrameParser"
write(fp, "server-rfc-hello", bytes([0x00, 0x01]) + bytes.fromhex("818537fa213d7f9f4d5158"))
write(fp, "client-hello-fragments", bytes([0x01, 0x02]) + frame(1, b"Hel", fin=False) + frame(0, b"lo"))
write(fp, "client-ping-pong", bytes([0x01, 0x00]) + frame(9, b"Hello") + frame(10, b"Hello"))
write(fp, "client-256-binary", bytes([0x01, 0x03]) + frame(2, bytes(range(256))))
write(fp, "server-64bit-length", bytes([0x00, 0x02]) + masked(2, b"x" * 300, length_form=64) + masked(8, close_payload(1000)))
write(fp, "server-rsv1", bytes([0x02, 0x01]) + masked(1, HELLO_DEFLATED, rsv=0x40) + masked(9, b""))
write(fp, "server-mixed", bytes([0x06, 0x03]) + masked(1, TEXT[:40], fin=False) + masked(9, b"p") + masked(0, TEXT[40:]))

# Many small frames in large pieces that end mid-frame: the parser discards read bytes (4 KiB+).
SMALL = b"".join(masked(2 if i % 5 else 9, bytes([i & 0xFF])) for i in range(900))
write(fp, "server-many-small-frames", bytes([0x00, 0x03]) + SMALL)
MEDIUM = b"".join(masked(2, bytes([i]) * 594) for i in range(10))  # 600-byte frames
write(fp, "server-medium-frames", bytes([0x00, 0x03]) + MEDIUM)
write(fp, "client-medium-frames", bytes([0x01, 0x03]) + b"".join(frame(2, bytes([i]) * 598) for i in range(10)))
write(fp, "client-many-small-frames", bytes([0x01, 0x03]) + b"".join(frame(2, bytes([i & 0xFF, 1, 2])) for i in range(1200)))

# FuzzConnection: [config] [split seed] [masked client frames]
fc = "FuzzConnection"
write(fc, "echo-text-ping-close", bytes([0x12, 0x01]) + masked(1, b"Hello") + masked(9, b"ping") + masked(8, close_payload(1000, b"bye")))
write(fc, "fragmented-utf8", bytes([0x12, 0x02]) + masked(1, TEXT[:50], fin=False) + masked(10, b"") + masked(0, TEXT[50:]))
write(fc, "binary-large", bytes([0x10, 0x03]) + masked(2, bytes(range(256)) * 4))
write(fc, "invalid-utf8", bytes([0x12, 0x01]) + masked(1, b"ab\xed\xa0\x80cd"))
write(fc, "bad-close", bytes([0x02, 0x00]) + masked(8, close_payload(1005)))
write(fc, "server-closes", bytes([0x32, 0x02]) + masked(2, b"abc") + masked(9, b"x") + masked(8, b""))
write(fc, "deflate-hello", bytes([0x13, 0x01]) + masked(1, HELLO_DEFLATED, rsv=0x40) + masked(1, b"plain"))
write(fc, "deflate-fragmented", bytes([0x13, 0x02]) + masked(2, deflate(TEXT * 4)[:20], rsv=0x40, fin=False)
      + masked(0, deflate(TEXT * 4)[20:]))
write(fc, "many-small-frames", bytes([0x12, 0x03]) + SMALL)
write(fc, "medium-frames", bytes([0x10, 0x03]) + MEDIUM)
write(fc, "deflate-bomb", bytes([0x0D, 0x03]) + masked(2, deflate(bytes(200000)), rsv=0x40))

# FuzzUTF8: [split seed] [bytes]
fu = "FuzzUTF8"
write(fu, "ascii", b"\x03" + b"The quick brown fox jumps over the lazy dog. " * 3)
write(fu, "mixed", b"\x02" + TEXT)
write(fu, "dense", b"\x01" + "κόσμεこんにちは🎉".encode() * 8)
write(fu, "surrogate", b"\x00" + "abcκό".encode() * 10 + b"\xed\xa0\x80")
write(fu, "overlong", b"\x02" + "€".encode() * 20 + b"\xe0\x80\xaf")
write(fu, "truncated", b"\x03" + "🎉".encode() * 17 + b"\xf0\x9f")
write(fu, "too-high", b"\x01" + "x".encode() * 70 + b"\xf4\x90\x80\x80")

# FuzzHandshake: text (request line, then CRLF-separated fields)
fh = "FuzzHandshake"
request = ("GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n"
           "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n")
write(fh, "rfc-request", request.encode())
write(fh, "request-deflate", (request + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; "
                              "server_max_window_bits=10, permessage-deflate\r\n").encode())
write(fh, "request-deflate-quoted", (request + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\"12\"; "
                                     "server_no_context_takeover; client_no_context_takeover, x-webkit-deflate-frame\r\n").encode())
write(fh, "rfc-response", ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n").encode())
write(fh, "response-deflate", ("Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; client_max_window_bits=10\r\n").encode())

# FuzzExtensions: [server config] [client config] [flags] [values, one a line]
fe = "FuzzExtensions"
write(fe, "browser-offer", bytes([0x00, 0x00, 0x00]) + b"permessage-deflate; client_max_window_bits")
write(fe, "two-offers", bytes([0x0D, 0x40, 0x00]) + b"permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
      b"permessage-deflate\r\nx-test")
write(fe, "quoted-and-flags", bytes([0x23, 0x03, 0x01]) + b"permessage-deflate; server_no_context_takeover; "
      b"client_no_context_takeover; client_max_window_bits=\"12\"")
write(fe, "responses", bytes([0xE2, 0x87, 0x02]) + b"permessage-deflate; server_max_window_bits=9; client_max_window_bits=10\r\n"
      b"permessage-deflate; server_no_context_takeover; server_max_window_bits=8")
write(fe, "invalid-then-valid", bytes([0x04, 0x20, 0x00]) + b"permessage-deflate; server_max_window_bits=08, "
      b"permessage-deflate; client_max_window_bits=16, permessage-deflate; Server_Max_Window_Bits=15\r\n, ,x-webkit-deflate-frame")
write(fe, "duplicate", bytes([0x18, 0x61, 0x03]) + b"PerMessage-Deflate; client_no_context_takeover; client_no_context_takeover, "
      b"x-test; a=b, X-Test")

# FuzzClientHandshake: [config] [deflate config] [status line, then fields]
fch = "FuzzClientHandshake"
RESPONSE = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
write(fch, "rfc-response", bytes([0x00, 0x00]) + RESPONSE.encode())
write(fch, "subprotocol", bytes([0x02, 0x00]) + (RESPONSE + "Sec-WebSocket-Protocol: superchat\r\n").encode())
write(fch, "deflate", bytes([0x05, 0x00]) + (RESPONSE + "Sec-WebSocket-Protocol: chat\r\n"
                                               "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12\r\n").encode())
write(fch, "deflate-and-test", bytes([0x0C, 0xE3]) + (RESPONSE + "Sec-WebSocket-Extensions: permessage-deflate; "
                                                       "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9, x-test\r\n").encode())
write(fch, "rsv-conflict", bytes([0x14, 0x00]) + (RESPONSE + "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                                   "Sec-WebSocket-Extensions: x-test\r\n").encode())
write(fch, "other-key", bytes([0x21, 0x00]) + ("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
                                               "sec-websocket-accept:  HSmrc0sMlYUkAGmm5OPpG2HaGWk= \r\nsec-websocket-protocol: chat\r\n").encode())
write(fch, "not-101", bytes([0x00, 0x00]) + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n")

# FuzzTimers: [flags] [ping interval] [pong timeout] [idle timeout] [close timeout] [op, argument]...
# Durations: (v & 63) units of 1 us, 1 ms, 100 ms, 1 h (v >> 6); 0 is "not set".
ft = "FuzzTimers"
T_ADV, T_START, T_FIRE, T_AT_DEADLINE, T_PONG, T_PING, T_TEXT, T_CLOSE_IN, T_CLOSE, T_APP_PING, T_SEND, T_BAD, T_PONG_UNTIMED, T_GONE, T_SPLIT_PONG = range(15)


def program(*ops):
    return bytes(x for op in ops for x in op)


MS = lambda n: 0x40 | n  # noqa: E731
write(ft, "keepalive-answered", bytes([0x02, MS(10), MS(5), 0, 0]) + program(
    (T_START, 0), (T_AT_DEADLINE, 0), (T_ADV, MS(2)), (T_PONG, 0), (T_AT_DEADLINE, 0), (T_PONG, 0), (T_AT_DEADLINE, 0), (T_AT_DEADLINE, 0)))
write(ft, "pong-timeout-close", bytes([0x02, MS(10), MS(5), 0, MS(20)]) + program(
    (T_START, 0), (T_AT_DEADLINE, 0), (T_AT_DEADLINE, 0), (T_TEXT, 3), (T_AT_DEADLINE, 0), (T_GONE, 0)))
write(ft, "pong-timeout-drop", bytes([0x06, MS(1), MS(1), 0, 0]) + program(
    (T_START, 0), (T_AT_DEADLINE, 0), (T_ADV, 0x80 | 1), (T_FIRE, 0), (T_PONG, 0)))
write(ft, "idle", bytes([0x02, 0, MS(1), MS(50), MS(30)]) + program(
    (T_START, 0), (T_ADV, MS(10)), (T_TEXT, 2), (T_AT_DEADLINE, 0), (T_ADV, MS(45)), (T_FIRE, 0), (T_AT_DEADLINE, 0), (T_CLOSE_IN, 0)))
write(ft, "application-pings", bytes([0x02, MS(20), MS(10), 0, 0]) + program(
    (T_START, 0), (T_APP_PING, 1), (T_ADV, MS(1)), (T_APP_PING, 2), (T_APP_PING, 2), (T_ADV, MS(3)), (T_PONG, 1), (T_APP_PING, 0xF1),
    (T_AT_DEADLINE, 0), (T_SPLIT_PONG, MS(2)), (T_APP_PING, 0xFE), (T_PONG_UNTIMED, 0)))
write(ft, "client-close", bytes([0x03, MS(5), MS(5), MS(40), MS(25)]) + program(
    (T_START, 0), (T_APP_PING, 7), (T_ADV, MS(1)), (T_CLOSE, 0), (T_SEND, 0), (T_PING, 2), (T_CLOSE_IN, 0), (T_AT_DEADLINE, 0), (T_GONE, 0)))
write(ft, "client-peer-closes-first", bytes([0x01, 0, MS(1), 0, MS(8)]) + program(
    (T_START, 0), (T_CLOSE_IN, 1), (T_ADV, MS(3)), (T_FIRE, 0), (T_AT_DEADLINE, 0)))
write(ft, "saturating-clock", bytes([0x22, 0xFF, 0xFF, 0xFF, 0xFF]) + program(
    (T_START, 0), (T_ADV, 0xC0 | 63), (T_AT_DEADLINE, 0), (T_AT_DEADLINE, 0), (T_CLOSE, 0x03), (T_CLOSE, 2), (T_AT_DEADLINE, 0)))
write(ft, "zero-durations", bytes([0x1A, 0x80, 0x00, 0xC0, 0x40]) + program(
    (T_START, 0), (T_AT_DEADLINE, 0), (T_AT_DEADLINE, 0), (T_BAD, 0), (T_FIRE, 0)))

# FuzzInflate: [config] [split seed] [bytes]
fi = "FuzzInflate"
write(fi, "rfc-hello", bytes([0x07, 0x01]) + HELLO_DEFLATED)
write(fi, "rfc-stored", bytes([0x07, 0x00]) + bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello" + b"\x00")
write(fi, "empty-block", bytes([0x0F, 0x00]) + b"\x00")
write(fi, "text-w15", bytes([0x07, 0x02]) + deflate(TEXT * 2))
write(fi, "text-w9", bytes([0x19, 0x03]) + deflate(TEXT * 2, 9))
write(fi, "bomb", bytes([0x07, 0x03]) + deflate(bytes(300000)))
write(fi, "plain-text", bytes([0x27, 0x02]) + TEXT)

# FuzzHTTPServer: [config: bit 0 a 256-byte header limit, bit 1 a 64-byte body limit] [split seed] [bytes]
fhs = "FuzzHTTPServer"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(line, *fields, body=b""):
    return (line + "\r\n" + "".join(f + "\r\n" for f in fields) + "\r\n").encode() + body


UPGRADE = ("Host: example.com", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + WS_KEY,
           "Sec-WebSocket-Version: 13")
write(fhs, "upgrade-echo", bytes([0x00, 0x01]) + request(
    "GET /echo?x=1 HTTP/1.1", *UPGRADE, "Sec-WebSocket-Protocol: superchat, chat",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    + masked(0x1, b"Hello") + masked(0x8, close_payload(1000)))
write(fhs, "upgrade-room-origin", bytes([0x00, 0x02]) + request(
    "GET /rooms/lobby HTTP/1.1", *UPGRADE, "Origin: https://chat.example.com") + masked(0x9, b"ping"))
write(fhs, "upgrade-room-bad-origin", bytes([0x00, 0x03]) + request(
    "GET /rooms/lobby HTTP/1.1", *UPGRADE, "Origin: https://evil.example.org"))
write(fhs, "upgrade-files", bytes([0x00, 0x00]) + request("GET /files/a.txt/raw HTTP/1.1", *UPGRADE))
write(fhs, "plain-at-endpoint", bytes([0x00, 0x02]) + request("GET /echo HTTP/1.1", "Host: example.com"))
write(fhs, "pipelined-not-found", bytes([0x00, 0x03]) + request("GET / HTTP/1.1", "Host: a")
      + request("HEAD /nothing HTTP/1.1", "Host: a") + request("GET /echo HTTP/1.0"))
write(fhs, "post-upgrade", bytes([0x00, 0x02]) + request("POST /echo HTTP/1.1", *UPGRADE, "Content-Length: 3", body=b"abc"))
write(fhs, "version-14", bytes([0x00, 0x01]) + request("GET /echo HTTP/1.1", *UPGRADE[:4], "Sec-WebSocket-Version: 14"))
write(fhs, "http10-upgrade", bytes([0x00, 0x01]) + request("GET /echo HTTP/1.0", *UPGRADE))
write(fhs, "body-too-large", bytes([0x02, 0x02]) + request(
    "POST /upload HTTP/1.1", "Host: a", "Expect: 100-continue", "Content-Length: 100") + bytes(100))
write(fhs, "chunked-body", bytes([0x02, 0x01]) + request(
    "POST /upload HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + b"40\r\n" + bytes(64) + b"\r\n1\r\nx\r\n0\r\n\r\n")
write(fhs, "headers-too-large", bytes([0x01, 0x03]) + request("GET /echo HTTP/1.1", *UPGRADE, "Cookie: " + "c" * 300))
write(fhs, "garbage", bytes([0x00, 0x00]) + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\n\r\n")
write(fhs, "other-upgrade", bytes([0x00, 0x01]) + request("GET /echo HTTP/1.1", "Host: a", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings"))

# FuzzTopics: [config] [connections - 1] [op, arg (, size byte for publish and send)]...
# config: bits 0-1 high-water mark (64, 512, 4096, 4096), bits 2-3 hard limit (high + 0, 100,
# 1000, 70000), bits 4-5 policy (close 1013, close 1008, drop, drop), bits 6-7 fragment size
# (none, none, 40, 1000); arg: connection (bits 0-2), topic (bits 3-4), binary (bit 5), same
# turn of the loop (bit 6); size byte: s & 63, 100 + 16 (s & 63), 120 + 64 (s & 63), 65500 + 2 (s & 63) by s >> 6.
ftp = "FuzzTopics"
(SUB, UNSUB, PUB, CPUB, READ, STALL, RESUME, UNWRITABLE, ABRUPT, PEER_CLOSE, TIME_PASSES, SEND) = range(12)


def top(op, c=0, t=0, binary=False, same_turn=False, size=None):
    arg = c | t << 3 | (0x20 if binary else 0) | (0x40 if same_turn else 0)
    return bytes([op, arg]) + (bytes([size]) if size is not None else b"")


def topics(config, connections, *ops):
    return bytes([config, connections - 1]) + b"".join(ops)


def subscribe_all(n, t=0):
    return b"".join(top(SUB, c, t) for c in range(n))


def read_all(n):
    return b"".join(top(READ, c) for c in range(n))


# Four subscribers of one topic, text and binary of every header size, read by all.
write(ftp, "fanout", topics(0x03, 4, subscribe_all(4), top(PUB, size=5), top(PUB, binary=True, size=0x40 | 2),
                            top(PUB, size=0xC0 | 1), top(PUB, binary=True, size=0), read_all(4)))
# A subscriber that stops reading passes a 64 + 100 byte limit: closed with 1013, the others get everything.
write(ftp, "slow-close-1013", topics(0x04, 3, subscribe_all(3), top(STALL, 1),
                                     *[top(PUB, size=40) for _ in range(6)], read_all(3), top(TIME_PASSES), top(RESUME, 1), read_all(3)))
write(ftp, "slow-close-1008", topics(0x14, 2, subscribe_all(2), top(STALL, 0),
                                     *[top(PUB, binary=True, size=60) for _ in range(4)], top(RESUME, 0), top(PEER_CLOSE, 0), read_all(2)))
# .drop: the slow subscriber loses what does not fit and stays subscribed.
write(ftp, "slow-drop", topics(0x25, 3, subscribe_all(3), top(STALL, 2),
                               *[top(PUB, size=0x40 | 4) for _ in range(8)], read_all(3), top(RESUME, 2),
                               top(PUB, size=3), read_all(3)))
# Subscribing twice, unsubscribing, several topics, publishes in between.
write(ftp, "unsubscribe", topics(0x0A, 3, subscribe_all(3), top(SUB, 0), top(SUB, 1, 1), top(PUB, size=1),
                                 top(UNSUB, 0), top(UNSUB, 0), top(PUB, size=2), top(PUB, t=1, size=3), top(UNSUB, 2, 2), read_all(3)))
# A connection publishes to the others and sends to itself (a room), some in one turn of the loop.
write(ftp, "room", topics(0x0D, 3, subscribe_all(3, 2), top(CPUB, 1, 2, size=8), top(SEND, 1, size=8),
                          top(CPUB, 2, 2, same_turn=True, size=0x40 | 10), top(SEND, 2, same_turn=True, size=0x40 | 10),
                          top(CPUB, 0, 3, size=4), read_all(3)))
# Fragments of 40 bytes, one message over the high mark: unwritable, a send answers .buffered.
write(ftp, "fragments", topics(0x81, 2, subscribe_all(2), top(PUB, size=0x40 | 8), top(STALL, 1),
                               top(SEND, 1, size=0x40 | 40), top(SEND, 1, size=3), read_all(2), top(RESUME, 1), read_all(2)))
# Abrupt closes and the peer's close: counts go down, nothing more arrives.
write(ftp, "closes", topics(0x0F, 4, subscribe_all(4), subscribe_all(4, 1), top(PUB, size=9), top(ABRUPT, 1),
                            top(PEER_CLOSE, 2), top(STALL, 3), top(PEER_CLOSE, 3, binary=True), top(PUB, size=9),
                            top(SUB, 2), top(UNSUB, 1), top(TIME_PASSES), read_all(4)))
# 64 KiB messages (64-bit lengths) under a 4096 + 70000 byte limit; one subscriber forced unwritable.
write(ftp, "large", topics(0x0F, 2, subscribe_all(2), top(UNWRITABLE, 0), top(PUB, binary=True, size=0xC0 | 5),
                           top(PUB, size=0xC0 | 63), top(SEND, 0, size=1), read_all(2), top(RESUME, 0), read_all(2)))
# A burst in one turn of the loop passes the limit of a peer that reads (NIO holds it all until the flush).
write(ftp, "burst", topics(0x10, 2, subscribe_all(2), *[top(PUB, same_turn=True, size=30) for _ in range(5)],
                           top(PUB, size=1), read_all(2)))
# An empty buffer takes a message of the limit's payload (64 + 2 bytes); the next one closes it.
write(ftp, "limit-sized", topics(0x00, 2, subscribe_all(2), top(STALL, 0), top(PUB, size=63), top(SEND, 0, size=0),
                                 top(RESUME, 0), top(SEND, 0, size=64), top(PUB, size=0), read_all(2), top(PEER_CLOSE, 0), read_all(2)))
