#!/usr/bin/env python3
"""browser-topics-check.py SERVER_URL [--screenshot PNG] - the demo app's topic parts in a real browser.

Starts headless Chromium with a DevTools port, opens two pages of the app at SERVER_URL in one
chat room (?room=R&nick=...) and drives them over the DevTools protocol (Runtime.evaluate): both
pages see the room's size, a message typed and sent in page A shows in page B and back, a
message sent with POST /publish/chat.R shows in both, and the ticker updates (the counter grows
and a price changes). Before that it checks that the server has the topic interface the app
uses (WebSocket /topics/NAME, GET /topics, POST /publish/NAME, the ticker) and says what is
missing. Then three pages force one transport each (?transport=websocket|sse|longpoll, the
fallbacks of /duplex.js) in one room: each shows its transport, and all see each other's messages. With --screenshot it saves page A at 1200x900 afterwards; docs/demo.png is made with
  "$(scripts/interop-venv.sh)" scripts/browser-topics-check.py http://127.0.0.1:8080 --room lobby --screenshot docs/demo.png
while `duplex serve` runs (Chromium's own --screenshot flag would shoot before any ticker update:
its virtual time does not wait for WebSocket messages).

Needs Python's `websockets` (scripts/interop-venv.sh) and Debian's `chromium`. Every wait is
bounded; exit 0 when all passed, 1 with what failed.
"""
import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets


class Failure(Exception):
    pass


def say(text):
    print(f"browser-check: {text}", flush=True)


def http(method, url, body=None, content_type=None, timeout=5.0):
    """(status, body text) of one request; status 0 with the error when there is no answer."""
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except OSError as error:
        return 0, str(error)


def json_or_none(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---- The server interface the app uses -------------------------------------------------------

async def missing_interface(server):
    """What of the topic interface the server lacks, one line each (empty: all there)."""
    ws_base = "ws" + server[len("http"):]
    missing = []

    status, body = http("GET", server + "/topics")
    listing = json_or_none(body) if status == 200 else None
    if not (isinstance(listing, dict) and isinstance(listing.get("topics"), list)):
        missing.append(f'GET /topics answered {status} {body.strip()[:80]!r}, want 200 {{"topics":[...]}}')

    topic = "check.preflight-" + secrets.token_hex(3)

    def publish_answer(subscribers):
        """None if POST /publish/topic answers as it should, else what it answered."""
        status, body = http("POST", f"{server}/publish/{topic}", b"posted", "text/plain; charset=utf-8")
        answer = json_or_none(body) if status == 200 else None
        if isinstance(answer, dict) and answer.get("topic") == topic and answer.get("subscribers") == subscribers:
            return None
        return (f'POST /publish/{topic} answered {status} {body.strip()[:80]!r}, '
                f'want 200 {{"topic":"{topic}","subscribers":{subscribers}}}')

    if problem := publish_answer(0):
        missing.append(problem)
    try:
        async with websockets.connect(f"{ws_base}/topics/{topic}", open_timeout=5) as ws:
            await ws.send("ping " + topic)
            echoed = await asyncio.wait_for(ws.recv(), 5)
            if echoed != "ping " + topic:
                missing.append(f"WebSocket /topics/{topic} published back {echoed!r}, want the text it sent")
            if not missing:
                if problem := publish_answer(1):
                    missing.append(problem)
                elif (posted := await asyncio.wait_for(ws.recv(), 5)) != "posted":
                    missing.append(f"POST /publish/{topic} (text/plain 'posted') reached the subscriber as {posted!r}")
    except asyncio.TimeoutError:
        missing.append(f"WebSocket /topics/{topic}: nothing published back within 5 s")
    except (OSError, websockets.exceptions.WebSocketException) as error:
        missing.append(f"WebSocket /topics/{topic}: {type(error).__name__}: {error}")

    try:
        async with websockets.connect(f"{ws_base}/topics/ticker", open_timeout=5) as ws:
            tick = json_or_none(await asyncio.wait_for(ws.recv(), 5))
            if not (isinstance(tick, dict) and tick.get("type") == "ticker" and isinstance(tick.get("prices"), list)):
                missing.append(f'topic ticker sent {tick!r}, want {{"type":"ticker","time":...,"prices":[...]}}')
    except asyncio.TimeoutError:
        missing.append("topic ticker: no message within 5 s (the server publishes one every 0.5 s)")
    except (OSError, websockets.exceptions.WebSocketException) as error:
        missing.append(f"WebSocket /topics/ticker: {type(error).__name__}: {error}")
    return missing


# ---- Chromium over the DevTools protocol -----------------------------------------------------

class Browser:
    """Headless Chromium with a DevTools port (port 0: Chromium picks one and writes it to
    DevToolsActivePort in its profile)."""

    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="duplex-browser-check-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        self.process = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "--window-size=1200,900",
             "--hide-scrollbars", "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
             "--disable-backgrounding-occluded-windows", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.endpoint = None

    def start(self, timeout=20.0):
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"chromium exited with {self.process.returncode} (log: {self.log.name})")
            if os.path.exists(port_file):
                with open(port_file) as f:
                    port = f.readline().strip()
                if port and http("GET", f"http://127.0.0.1:{port}/json/version")[0] == 200:
                    self.endpoint = f"http://127.0.0.1:{port}"
                    return
            time.sleep(0.1)
        raise Failure(f"chromium's DevTools port did not answer within {timeout:.0f} s")

    async def new_page(self, name):
        status, body = http("PUT", f"{self.endpoint}/json/new?about:blank")
        target = json_or_none(body) if status == 200 else None
        if not isinstance(target, dict) or "webSocketDebuggerUrl" not in target:
            raise Failure(f"DevTools /json/new answered {status} {body[:120]!r}")
        page = Page(name, await websockets.connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10),
                    close_url=f"{self.endpoint}/json/close/{target['id']}")
        await page.call("Runtime.enable")
        await page.call("Page.enable")
        return page

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One DevTools target: calls by id, and the page's uncaught exceptions as they come."""

    def __init__(self, name, ws, close_url=None):
        self.name = name
        self.ws = ws
        self.close_url = close_url
        self.next_id = 0
        self.pending = {}
        self.exceptions = []
        self.reader = asyncio.create_task(self.read())

    async def read(self):
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result(message)
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(details.get("exception", {}).get("description") or details.get("text"))

    async def call(self, method, timeout=10.0, **params):
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        try:
            message = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise Failure(f"page {self.name}: DevTools {method} did not answer within {timeout:.0f} s")
        if "error" in message:
            raise Failure(f"page {self.name}: DevTools {method}: {message['error']}")
        return message["result"]

    async def eval(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise Failure(f"page {self.name}: {expression!r} threw {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait(self, expression, what, timeout=10.0):
        """Polls `expression` until it is truthy; fails saying `what` did not happen."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise Failure(f"page {self.name}: {what} within {timeout:.0f} s; the page shows {await self.state()}")
            await asyncio.sleep(0.1)

    async def state(self):
        return await self.eval("""JSON.stringify({
            chat: document.getElementById('chat-status')?.textContent,
            ticker: document.getElementById('ticker-status')?.textContent,
            roomCount: document.getElementById('room-count')?.textContent,
            roomNote: document.getElementById('room-note')?.hidden ? undefined : document.getElementById('room-note')?.textContent,
            tickerUpdates: document.getElementById('ticker-updates')?.textContent,
            lastChat: [...document.querySelectorAll('#chat-log li')].slice(-3).map(e => e.textContent),
        })""")

    async def open(self, url):
        await self.call("Page.navigate", url=url)
        await self.wait("document.readyState === 'complete' && !!document.getElementById('chat-log')",
                        f"the app did not load from {url}", 15)

    async def send_chat(self, text):
        sent = await self.eval(f"""(() => {{
            const button = document.getElementById('chat-send');
            if (button.disabled) return false;
            document.getElementById('chat-text').value = {json.dumps(text)};
            button.click();
            return true;
        }})()""")
        if not sent:
            raise Failure(f"page {self.name}: the Send button is disabled; the page shows {await self.state()}")

    async def wait_for_chat(self, nick, text, timeout=10.0):
        await self.wait(f"""[...document.querySelectorAll('#chat-log .msg')].some(m =>
            m.querySelector('.nick')?.textContent === {json.dumps(nick)} &&
            m.querySelector('.text')?.textContent === {json.dumps(text)})""",
                        f"{nick}'s message {text!r} did not show in #chat-log", timeout)

    async def close(self):
        """Closes the tab too: an open tab keeps its connections (a browser allows 6 per host over
        HTTP/1.1, and each SSE stream or pending poll holds one)."""
        self.reader.cancel()
        await self.ws.close()
        if self.close_url:
            http("GET", self.close_url)


def raise_page_exceptions(pages):
    for page in pages:
        if page.exceptions:
            raise Failure(f"page {page.name} threw: {page.exceptions}")


async def close_pages(pages):
    for page in pages:
        await page.close()


PRICES = "JSON.stringify([...document.querySelectorAll('#ticker-table tbody tr')].map(r => [r.dataset.symbol, r.querySelector('.price')?.textContent]))"
UPDATES = "Number(document.getElementById('ticker-updates')?.textContent) || 0"


async def check_pages(browser, server, room, screenshot):
    a = await browser.new_page("A")
    b = await browser.new_page("B")
    pages = (a, b)
    try:
        await a.open(f"{server}/?room={room}&nick=alice")
        await b.open(f"{server}/?room={room}&nick=bob")
        for page in pages:
            await page.wait("document.getElementById('chat-status').className === 'open'",
                            f"#chat-status did not become open (WebSocket /topics/chat.{room})")
        for page in pages:
            await page.wait("document.getElementById('room-count').textContent === '2'",
                            f"#room-count did not show 2 (GET /topics, topic chat.{room})")
        say(f"two pages joined chat.{room}; both show 2 in the room")

        token = secrets.token_hex(2)
        hello, reply = f"hi bob, alice here ({token})", f"hello alice! ({token})"
        await a.send_chat(hello)
        await b.wait_for_chat("alice", hello)
        await a.wait_for_chat("alice", hello)  # its own, back from the topic
        await b.send_chat(reply)
        await a.wait_for_chat("bob", reply)
        say("a message typed in page A showed in page B, and B's answer in A")

        note = f"the ticker is on topic ticker ({token})"
        body = json.dumps({"type": "chat", "nick": "server", "text": note, "time": int(time.time() * 1000)})
        status, answer = http("POST", f"{server}/publish/chat.{room}", body.encode(), "application/json")
        published = json_or_none(answer) if status == 200 else None
        if not (isinstance(published, dict) and published.get("subscribers") == 2):
            raise Failure(f'POST /publish/chat.{room} answered {status} {answer[:80]!r}, want 200 with "subscribers":2')
        for page in pages:
            await page.wait_for_chat("server", note)
        say("a message sent with POST /publish showed in both pages")

        await a.call("Page.bringToFront")  # the chart is drawn in animation frames: a visible page's
        await a.wait("document.querySelector('#ticker-table tbody tr .price')?.textContent",
                     "no price showed in #ticker-table (topic ticker)")
        first_updates, first_prices = await a.eval(UPDATES), await a.eval(PRICES)
        await a.wait(f"({UPDATES}) >= {first_updates + 3} && {PRICES} !== {json.dumps(first_prices)}",
                     "#ticker-updates did not grow by 3 with a price changing", 15)
        await a.wait("/last \\d/.test(document.getElementById('ticker-chart').getAttribute('aria-label'))",
                     "the ticker chart was not drawn", 5)
        say(f"the ticker updated: #ticker-updates {first_updates} -> {await a.eval(UPDATES)}, prices {await a.eval(PRICES)}")

        if screenshot:
            await a.wait(f"({UPDATES}) >= 20", "20 ticker updates did not arrive for the screenshot", 20)
            await a.call("Emulation.setDeviceMetricsOverride", width=1200, height=900, deviceScaleFactor=1, mobile=False)
            await asyncio.sleep(0.5)  # a frame at the new size
            shot = await a.call("Page.captureScreenshot", format="png", timeout=30)
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            say(f"screenshot of page A: {screenshot}")

        raise_page_exceptions(pages)
    finally:
        await close_pages(pages)


TRANSPORTS = ("websocket", "sse", "longpoll")


async def check_transports(browser, server, room):
    """The chat with each transport forced (?transport=...), three pages in one room: each
    page's status names its transport, and a message from each shows in all three."""
    pages = [await browser.new_page(transport) for transport in TRANSPORTS]
    try:
        for page, transport in zip(pages, TRANSPORTS):
            await page.open(f"{server}/?room={room}&nick={transport}-user&transport={transport}")
        for page, transport in zip(pages, TRANSPORTS):
            await page.wait(f"document.getElementById('chat-status').className === 'open' && "
                            f"document.getElementById('chat-status').textContent.endsWith({json.dumps(transport)})",
                            f"#chat-status did not become open over {transport}", 20)
            await page.wait(f"document.getElementById('ticker-status').textContent.endsWith({json.dumps(transport)})",
                            f"#ticker-status did not open over {transport}", 20)
        for page in pages:
            await page.wait("document.getElementById('room-count').textContent === '3'",
                            f"#room-count did not show 3 (three pages in chat.{room})")
        say(f"three pages in chat.{room}, over {', '.join(TRANSPORTS)}, each with its transport in its status")
        token = secrets.token_hex(2)
        for page, transport in zip(pages, TRANSPORTS):
            await page.send_chat(f"over {transport} ({token})")
        for page in pages:
            for transport in TRANSPORTS:
                await page.wait_for_chat(f"{transport}-user", f"over {transport} ({token})", 15)
        say("a message from each of the websocket, sse and longpoll pages showed in all three")
        for page in pages:
            await page.wait(f"({UPDATES}) >= 2", "the ticker did not update", 15)
        say("the ticker updates over each transport")
        raise_page_exceptions(pages)
    finally:
        await close_pages(pages)


# A WebSocket that never gets through (as behind a proxy that strips Upgrade): it closes 1006
# before it opened. Installed before the page's own scripts run.
BROKEN_WEBSOCKET = """window.WebSocket = class extends EventTarget {
    constructor(url) { super(); this.url = url; this.readyState = 0;
        setTimeout(() => { this.readyState = 3; this.onclose?.({ code: 1006, reason: "", wasClean: false }); }, 50); }
    send() { throw new DOMException("not open", "InvalidStateError"); }
    close() {}
};"""


async def check_fallback(browser, server, room):
    """Without a working WebSocket, duplex.js falls back to SSE by itself and the chat works."""
    page = await browser.new_page("no-websocket")
    try:
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=BROKEN_WEBSOCKET)
        await page.open(f"{server}/?room={room}&nick=fallback-user")
        await page.wait("document.getElementById('chat-status').textContent === 'open · sse'",
                        "#chat-status did not fall back to sse", 20)
        token = secrets.token_hex(2)
        await page.send_chat(f"fell back ({token})")
        await page.wait_for_chat("fallback-user", f"fell back ({token})", 15)
        say("with a WebSocket that closes before it opens, the page fell back to SSE and chats")
        raise_page_exceptions([page])
    finally:
        await close_pages([page])


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("server", help="the duplex serve to test, e.g. http://127.0.0.1:9031")
    parser.add_argument("--room", default="check-" + secrets.token_hex(3), help="the chat room (default: a new one)")
    parser.add_argument("--screenshot", help="save page A as this PNG at the end")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    args = parser.parse_args()
    server = args.server.rstrip("/")

    missing = await missing_interface(server)
    if missing:
        say("the server lacks the topic interface the demo app uses:")
        for line in missing:
            print(f"  missing: {line}", flush=True)
        say("skipped the two-page chat and ticker checks (they need all of the above)")
        return 1
    say("the server has the topic interface: WebSocket /topics/NAME, POST /publish/NAME, GET /topics, the ticker")

    browser = Browser(args.chromium)
    try:
        browser.start()
        await check_pages(browser, server, args.room, args.screenshot)
        await check_transports(browser, server, args.room + "-x")
        await check_fallback(browser, server, args.room + "-f")
    except Failure as failure:
        say(f"FAILED: {failure}")
        return 1
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
