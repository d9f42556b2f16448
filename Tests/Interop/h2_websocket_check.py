"""WebSockets over HTTP/2 (RFC 8441) against a Duplex server, with Python's `h2` for HTTP/2 and
`wsproto` for the WebSocket frames: an independent client.

usage: h2_websocket_check.py MODE HOST PORT [STREAMS]
  MODE tls (ALPN h2, certificate not verified) or h2c (prior knowledge); settings-only-h2c checks
  that a server without WebSocket endpoints does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL;
  idle-h2c that a connection without streams gets a GOAWAY and is closed by the server.

The server must have: /echo (echo), /big (on any message, sends a 1 MiB binary message back),
/nope absent, POST /shutdown (starts a graceful shutdown), GET /healthz.

Checks, each printed as `ok: ...`; `RESULT: OK` at the end:
  - the server's SETTINGS carry SETTINGS_ENABLE_CONNECT_PROTOCOL = 1;
  - a plain GET /healthz over h2 answers 200 `ok`;
  - refusals are HTTP/2 responses: 404 (no endpoint), 400 (no Sec-WebSocket-Version), 426 (version 8);
  - STREAMS WebSockets on this one connection, each answered :status 200, echo on each;
  - permessage-deflate negotiated on one stream, compressed echo;
  - a stream reset by the client (RST_STREAM) and a stream whose WebSocket fails (an unmasked
    frame: close 1002, END_STREAM) leave the others echoing;
  - head-of-line: while /big's 1 MiB message arrives on one stream, another stream's small echoes
    come in between its DATA frames;
  - a client close 1000 is echoed and the stream ends (END_STREAM);
  - graceful shutdown (POST /shutdown): every open WebSocket gets close 1001, then a GOAWAY.
"""
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

MODE, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
STREAMS = int(sys.argv[4]) if len(sys.argv) > 4 else 100
AUTHORITY = f"{HOST}:{PORT}"
SCHEME = "https" if MODE == "tls" else "http"
SETTINGS_ONLY = MODE == "settings-only-h2c"
IDLE = MODE == "idle-h2c"
DEADLINE = 60.0


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def ok(message):
    print(f"ok: {message}", flush=True)


class Stream:
    def __init__(self, stream_id):
        self.id = stream_id
        self.status = None
        self.headers = {}
        self.body = b""
        self.ended = False
        self.reset = None
        self.ws = None
        self.messages = []
        self.partial = None
        self.closes = []
        self.fragments = 0


class Client:
    def __init__(self):
        raw = socket.create_connection((HOST, PORT), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if MODE == "tls":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2", "http/1.1"])
            raw = context.wrap_socket(raw, server_hostname=HOST)
            if raw.selected_alpn_protocol() != "h2":
                fail(f"ALPN chose {raw.selected_alpn_protocol()!r}, not h2")
            ok("ALPN negotiated h2")
        self.sock = raw
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        # A connection window large enough that the one for /big is not what the test measures.
        self.h2.increment_flow_control_window(8 << 20)
        self.streams = {}
        self.goaway = None
        self.order = []  # (stream id, kind) in arrival order
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until, what):
        deadline = time.monotonic() + DEADLINE
        while not until():
            if time.monotonic() > deadline:
                fail(f"timed out waiting for {what}")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                if until():
                    return
                fail(f"connection closed while waiting for {what}")
            for event in self.h2.receive_data(data):
                self.handle(event)
            self.flush()

    def handle(self, event):
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams[event.stream_id]
            stream.headers = dict(event.headers)
            stream.status = int(stream.headers[":status"])
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is None:
                return
            if stream.ws is None:
                stream.body += event.data
                return
            if not event.data:
                return  # an empty DATA frame carrying END_STREAM
            stream.fragments += 1
            self.order.append((event.stream_id, "data"))
            stream.ws.receive_data(event.data)
            for ws_event in stream.ws.events():
                if isinstance(ws_event, (TextMessage, BytesMessage)):
                    stream.partial = ws_event.data if stream.partial is None else stream.partial + ws_event.data
                    if ws_event.message_finished:
                        stream.messages.append(stream.partial)
                        stream.partial = None
                        self.order.append((event.stream_id, "message"))
                elif isinstance(ws_event, CloseConnection):
                    stream.closes.append(ws_event.code)
                    if stream.ws.state.name != "CLOSED":
                        self.send_ws(stream, ws_event.response())
                elif isinstance(ws_event, Ping):
                    self.send_ws(stream, ws_event.response())
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
            self.order.append((event.stream_id, "end"))
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.streams:
                self.streams[event.stream_id].reset = event.error_code
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen = "yes"
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
            self.order.append((0, "goaway"))

    def send_ws(self, stream, ws_event):
        data = stream.ws.send(ws_event)
        if data and not stream.ended:
            try:
                self.h2.send_data(stream.id, data)
            except h2.exceptions.ProtocolError:
                # h2 counts the connection closed once it read a GOAWAY, with streams still open: the
                # answers to the 1001s that came in the same read as the GOAWAY cannot be sent.
                if self.h2.state_machine.state != h2.connection.ConnectionState.CLOSED:
                    raise

    def request(self, method, path, extra=(), end=True, protocol=None):
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(":method", method)]
        if protocol:
            headers.append((":protocol", protocol))
        headers += [(":scheme", SCHEME), (":path", path), (":authority", AUTHORITY)]
        headers += list(extra)
        stream = Stream(stream_id)
        self.streams[stream_id] = stream
        self.h2.send_headers(stream_id, headers, end_stream=end)
        self.flush()
        return stream

    def websocket(self, path="/echo", extra=(("sec-websocket-version", "13"),), deflate=False):
        extra = list(extra)
        offer = None
        if deflate:
            offer = PerMessageDeflate()
            extra.append(("sec-websocket-extensions", f"{offer.name}; {offer.offer()}"))
        stream = self.request("CONNECT", path, extra, end=False, protocol="websocket")
        stream.offer = offer
        return stream

    def opened(self, stream):
        extensions = []
        if stream.offer is not None:
            answer = stream.headers.get("sec-websocket-extensions")
            if not answer or "permessage-deflate" not in answer:
                fail(f"permessage-deflate not negotiated: {stream.headers}")
            stream.offer.finalize(answer)
            extensions = [stream.offer]
        stream.ws = Connection(ConnectionType.CLIENT, extensions=extensions)


def main():
    client = Client()
    client.pump(lambda: any(isinstance(e, str) for e in [getattr(client, "settings_seen", None)]), "the server's SETTINGS")
    if IDLE:
        started = time.monotonic()
        client.pump(lambda: client.goaway is not None, "the idle connection's GOAWAY")
        client.sock.settimeout(10)
        while client.sock.recv(65536):
            pass
        ok(f"idle connection: GOAWAY (error {client.goaway.error_code}) and closed after {time.monotonic() - started:.2f} s")
        print("RESULT: OK", flush=True)
        return
    if SETTINGS_ONLY:
        if client.h2.remote_settings.enable_connect_protocol:
            fail("SETTINGS_ENABLE_CONNECT_PROTOCOL advertised without WebSocket endpoints")
        ok("no SETTINGS_ENABLE_CONNECT_PROTOCOL without WebSocket endpoints")
        print("RESULT: OK", flush=True)
        return
    if client.h2.remote_settings.enable_connect_protocol != 1:
        fail("SETTINGS_ENABLE_CONNECT_PROTOCOL is not 1")
    ok("server SETTINGS_ENABLE_CONNECT_PROTOCOL = 1")

    health = client.request("GET", "/healthz")
    client.pump(lambda: health.ended, "GET /healthz")
    if health.status != 200 or health.body != b"ok\n":
        fail(f"GET /healthz answered {health.status} {health.body!r}")
    ok("GET /healthz over h2: 200 ok")

    refusals = [
        (client.websocket("/nope"), 404),
        (client.websocket("/echo", extra=()), 400),
        (client.websocket("/echo", extra=(("sec-websocket-version", "8"),)), 426),
    ]
    client.pump(lambda: all(s.ended or s.reset is not None for s, _ in refusals), "the refusals")
    for stream, want in refusals:
        if stream.status != want:
            fail(f"refusal answered {stream.status}, want {want}: {stream.body!r}")
    ok("refusals: 404, 400, 426 as HTTP/2 responses; the connection stays")

    streams = [client.websocket() for _ in range(STREAMS)]
    client.pump(lambda: all(s.status is not None for s in streams), f"{STREAMS} answers")
    if any(s.status != 200 for s in streams):
        fail(f"statuses {sorted(set(s.status for s in streams))}")
    for stream in streams:
        client.opened(stream)
        client.send_ws(stream, Message(data=f"hello {stream.id}"))
    client.flush()
    client.pump(lambda: all(s.messages for s in streams), "the echoes")
    for stream in streams:
        if stream.messages[0] != f"hello {stream.id}":
            fail(f"stream {stream.id} echoed {stream.messages[0]!r}")
    ok(f"{STREAMS} WebSockets on one connection: :status 200 and an echo on each")

    deflated = client.websocket(deflate=True)
    client.pump(lambda: deflated.status is not None, "the deflate answer")
    client.opened(deflated)
    text = "compress me " * 200
    client.send_ws(deflated, Message(data=text))
    client.flush()
    client.pump(lambda: deflated.messages, "the deflate echo")
    if deflated.messages[0] != text:
        fail("deflate echo differs")
    ok(f"permessage-deflate: {deflated.headers['sec-websocket-extensions']}")

    # One stream reset by the client, one failing (an unmasked frame is a protocol error: 1002).
    victim, broken = streams[0], streams[1]
    client.h2.reset_stream(victim.id)
    victim.ended = True
    client.h2.send_data(broken.id, b"\x81\x02hi")  # FIN text "hi", without a mask
    client.flush()
    client.pump(lambda: broken.closes and (broken.ended or broken.reset is not None), "the broken stream's close")
    if broken.closes[0] != 1002:
        fail(f"unmasked frame closed with {broken.closes[0]}, want 1002")
    rest = streams[2:]
    for stream in rest:
        client.send_ws(stream, Message(data=f"again {stream.id}"))
    client.flush()
    client.pump(lambda: all(len(s.messages) >= 2 for s in rest), "echoes after the failures")
    ok("a reset stream and a failed WebSocket (1002, stream ended) leave the other streams echoing")

    # Head-of-line: a 1 MiB message on one stream, small echoes on another meanwhile.
    big = client.websocket("/big")
    small = rest[0]
    client.pump(lambda: big.status is not None, "the /big answer")
    client.opened(big)
    client.send_ws(big, Message(data="go"))
    client.flush()
    client.pump(lambda: big.fragments >= 2, "the first DATA frames of /big")
    before = len(small.messages)
    for i in range(5):
        client.send_ws(small, Message(data=f"small {i}"))
    client.flush()
    client.pump(lambda: big.messages and len(small.messages) >= before + 5, "/big's message and the small echoes")
    if len(big.messages[0]) != 1 << 20:
        fail(f"/big sent {len(big.messages[0])} bytes")
    big_done = client.order.index((big.id, "message"))
    small_echo = [i for i, (sid, kind) in enumerate(client.order) if sid == small.id and kind == "message"][before]
    if small_echo > big_done:
        fail("the small echoes waited for the whole large message (head-of-line blocking)")
    ok(f"head-of-line: a small echo came in while /big's 1 MiB message arrived ({big.fragments} DATA frames)")

    # A client close: echoed, then the server ends the stream.
    closing = rest[1]
    client.send_ws(closing, CloseConnection(code=1000, reason="bye"))
    client.flush()
    client.pump(lambda: closing.closes and closing.ended, "the close echo and END_STREAM")
    if closing.closes[0] != 1000:
        fail(f"close echoed {closing.closes[0]}")
    ok("client close 1000 echoed, stream ended by the server")

    # Graceful shutdown: 1001 on every open WebSocket, then GOAWAY.
    open_streams = rest[2:] + [deflated]
    client.request("POST", "/shutdown")
    client.pump(lambda: client.goaway is not None and all(s.closes for s in open_streams), "1001s and GOAWAY")
    codes = sorted(set(s.closes[0] for s in open_streams))
    if codes != [1001]:
        fail(f"shutdown close codes {codes}")
    goaway_at = client.order.index((0, "goaway"))
    last_close_data = max(i for i, (sid, kind) in enumerate(client.order) if kind == "data" and sid in {s.id for s in open_streams})
    if goaway_at < last_close_data:
        fail("GOAWAY came before the 1001 close frames")
    ok(f"graceful shutdown: 1001 on {len(open_streams)} WebSockets, then GOAWAY "
       f"(error {client.goaway.error_code}, last stream {client.goaway.last_stream_id})")
    print("RESULT: OK", flush=True)


if __name__ == "__main__":
    main()
