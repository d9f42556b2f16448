"""Topics of `duplex serve`, from Python's `websockets` clients: websockets_topics_check.py BASE_URL
(http://127.0.0.1:PORT). Subscribers on /topics/NAME get what any of them sends (the sender too),
text and binary, in order, and what is POSTed to /publish/NAME; GET /topics counts them; bad names
are refused. Prints `ok: ...` per check and `RESULT: OK` at the end; exits 1 on the first failure."""
import asyncio
import json
import sys
import urllib.error
import urllib.request

import websockets

BASE = sys.argv[1].rstrip("/")
WS = BASE.replace("http://", "ws://", 1)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def http(method, path, body=None, content_type=None):
    request = urllib.request.Request(BASE + path, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), 5)


async def main():
    async with websockets.connect(f"{WS}/topics/py.room") as a, websockets.connect(f"{WS}/topics/py.room") as b:
        for _ in range(50):  # subscriptions are made when the connections open: wait for both
            status, body = http("GET", "/topics")
            counts = {t["name"]: t["subscribers"] for t in json.loads(body)["topics"]}
            if counts.get("py.room") == 2:
                break
            await asyncio.sleep(0.05)
        check(counts.get("py.room") == 2, "GET /topics counts both subscribers")

        for i in range(100):
            await a.send(f"text {i}")
        for ws, name in ((a, "sender"), (b, "other subscriber")):
            got = [await recv(ws) for _ in range(100)]
            check(got == [f"text {i}" for i in range(100)], f"{name} gets 100 text messages in order")

        await b.send(bytes(range(256)) * 40)
        for ws in (a, b):
            message = await recv(ws)
            check(isinstance(message, bytes) and message == bytes(range(256)) * 40, "10 KiB binary stays binary")

        status, body = http("POST", "/publish/py.room", b'{"hello": "json"}', "application/json")
        check(status == 200 and json.loads(body) == {"topic": "py.room", "subscribers": 2},
              "POST /publish answers the topic and its 2 subscribers")
        for ws in (a, b):
            check(await recv(ws) == '{"hello": "json"}', "a JSON POST arrives as text")
        status, body = http("POST", "/publish/py.room", b"\x00\xff", "application/octet-stream")
        check(status == 200, "a binary POST is accepted")
        for ws in (a, b):
            check(await recv(ws) == b"\x00\xff", "a binary POST arrives as binary")

    status, _ = http("POST", "/publish/bad%20name", b"x", "text/plain")
    check(status == 400, "a bad topic name is a 400 over HTTP")
    try:
        async with websockets.connect(f"{WS}/topics/bad!name"):
            check(False, "a bad topic name is refused at the upgrade")
    except websockets.exceptions.InvalidStatus as error:
        check(error.response.status_code == 400, "a bad topic name is refused at the upgrade with 400")
    print("RESULT: OK")


asyncio.run(main())
