#!/usr/bin/python3
"""apps/chat against a second WebSocket implementation: Debian's python3-websockets.

usage: /usr/bin/python3 chat_ws_test.py PATH/TO/chat [--with-redis]
With --with-redis, the same flows run against a chat with --redis (a redis-server of
the test's own on a free port): the SPEC §4 contract must not change with it.
Exits 77 (ctest: skipped) when the websockets module is missing, 1 on a failure.
Every wait is bounded (asyncio.wait_for), so a broken server fails instead of hanging.
"""
import asyncio
import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

try:
    import websockets
    from websockets.exceptions import InvalidStatusCode
except ImportError:
    print("SKIP: python3-websockets is not installed (apt-get install python3-websockets)")
    sys.exit(77)

T = 10  # seconds, for every single wait
failures = []


def check(label, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + label + ("" if cond else f"  {detail}"))
    if not cond:
        failures.append(label)


EXTRA = []  # flags every Chat gets (--with-redis adds --redis URL)


class Chat:
    def __init__(self, binary, *extra):
        self.p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--threads", "2", "--drain-timeout", "2s", *EXTRA,
                                   *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.p.kill()
            raise RuntimeError(f"bad listening line {line!r}")
        self.port = int(m.group(1))

    def ws(self, query, **kw):
        return websockets.connect(f"ws://127.0.0.1:{self.port}/ws?{query}", open_timeout=T, close_timeout=T, **kw)

    def get(self, path, headers=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=T) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            _, err = self.p.communicate(timeout=T + 5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate()
        return self.p.returncode, err


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), T))


async def upgrade_status(chat, query, **kw):
    try:
        async with chat.ws(query, **kw):
            return 101
    except InvalidStatusCode as e:
        return e.status_code


async def flows(chat):
    async with chat.ws("room=py&name=alice") as alice:
        j = await recv(alice)
        check("joined to the joiner", j == {"type": "joined", "room": "py", "name": "alice", "members": ["alice"],
                                            "member_count": 1, "history": []}, j)
        async with chat.ws("room=py&name=bob") as bob:
            jb = await recv(bob)
            check("joined lists every member", jb["members"] == ["alice", "bob"], jb)
            p = await recv(alice)
            check("presence join to the others", p == {"type": "presence", "event": "join", "name": "bob"}, p)

            await bob.send(json.dumps({"type": "message", "text": "héllo <i>"}))
            for who, ws in (("alice", alice), ("bob (the sender)", bob)):
                m = await recv(ws)
                check(f"message to {who}", m["type"] == "message" and m["from"] == "bob" and m["text"] == "héllo <i>"
                      and m["room"] == "py" and isinstance(m["id"], str) and abs(m["ts"] - time.time() * 1000) < 60000,
                      m)

            for raw, code in (("{", "bad_message"), ('{"type":"nope"}', "bad_message"),
                              (json.dumps({"type": "message", "text": "x" * 4097}), "too_long")):
                await bob.send(raw)
                e = await recv(bob)
                check(f"error {code} for {raw[:20]!r}", e["type"] == "error" and e["code"] == code
                      and isinstance(e["message"], str), e)
            await bob.send(b"\x00binary")
            e = await recv(bob)
            check("error for a binary message", e["type"] == "error" and e["code"] == "bad_message", e)
            await bob.send(json.dumps({"type": "message", "text": "still here"}))
            check("the connection stays open after errors", (await recv(bob))["text"] == "still here")
            await recv(alice)

            status, _, body = chat.get("/api/rooms")
            check("/api/rooms counts", status == 200 and json.loads(body) == [{"room": "py", "members": 2}], body)
        p = await recv(alice)
        check("presence leave to the others", p == {"type": "presence", "event": "leave", "name": "bob"}, p)

        ids = set()
        for i in range(60):
            await alice.send(json.dumps({"type": "message", "text": f"h{i}"}))
            ids.add((await recv(alice))["id"])
        check("message ids are unique in the room", len(ids) == 60, len(ids))
        async with chat.ws("room=py&name=late") as late:
            h = (await recv(late))["history"]
            check("a late joiner gets the last 50", [m["text"] for m in h] == [f"h{i}" for i in range(10, 60)],
                  [m["text"] for m in h][:3])

    check("no room: 400 before the upgrade", await upgrade_status(chat, "name=x") == 400)
    check("no name: 400 before the upgrade", await upgrade_status(chat, "room=x") == 400)


def sse_resume(chat):
    # The room "py" holds 62 messages; its history keeps the last 50 (ids 13..62).
    c = http.client.HTTPConnection("127.0.0.1", chat.port, timeout=T)
    c.request("GET", "/api/rooms/py/events", headers={"Last-Event-ID": "60"})
    r = c.getresponse()
    check("events: 200 text/event-stream", r.status == 200 and
          r.getheader("Content-Type", "").startswith("text/event-stream"), r.status)
    events, cur = [], {}
    while len(events) < 2:
        line = r.fp.readline().decode().rstrip("\n")
        if not line:
            events.append(cur)
            cur = {}
            continue
        k, _, v = line.partition(": ")
        cur[k] = v
    check("events resume after Last-Event-ID", [e["id"] for e in events] == ["61", "62"], events)
    check("events carry the message objects",
          all(e["event"] == "message" and json.loads(e["data"])["id"] == e["id"] for e in events), events)
    c.close()


async def auth(chat):
    check("--token: the upgrade needs it", await upgrade_status(chat, "room=a&name=n") == 401)
    check("--token: a wrong one is refused", await upgrade_status(chat, "room=a&name=n&access_token=no") == 401)
    check("--token: ?access_token= is accepted", await upgrade_status(chat, "room=a&name=n&access_token=pytok") == 101)
    check("--token: Authorization: Bearer is accepted",
          await upgrade_status(chat, "room=a&name=n", extra_headers={"Authorization": "Bearer pytok"}) == 101)
    status, headers, _ = chat.get("/api/rooms")
    check("--token: /api/rooms 401 with WWW-Authenticate", status == 401 and "WWW-Authenticate" in headers, status)
    status, _, _ = chat.get("/api/rooms", {"Authorization": "Bearer pytok"})
    check("--token: /api/rooms with the token", status == 200, status)


def start_redis():
    import os
    import socket
    import tempfile
    if not os.path.exists("/usr/bin/redis-server"):
        print("SKIP: redis-server is not installed")
        sys.exit(77)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="keel-chat-redis-")
    p = subprocess.Popen(["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    end = time.monotonic() + T
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.01)  # a poll interval
    EXTRA.extend(["--redis", f"redis://127.0.0.1:{port}/0"])
    return p


def main():
    binary = sys.argv[1]
    redis = start_redis() if "--with-redis" in sys.argv[2:] else None
    try:
        run(binary)
    finally:
        if redis:
            redis.kill()
            redis.wait()
    print(f"chat_ws_test: {len(failures)} failed")
    sys.exit(1 if failures else 0)


def run(binary):
    chat = Chat(binary)
    try:
        asyncio.run(flows(chat))
        sse_resume(chat)
    finally:
        code, _ = chat.stop()
    check("SIGTERM drains and exits 0", code == 0, code)

    chat = Chat(binary, "--token", "pytok")
    try:
        asyncio.run(auth(chat))
    finally:
        code, log = chat.stop()
    check("the access log redacts the token", "access_token=REDACTED" in log and "pytok" not in log)


if __name__ == "__main__":
    main()
