#!/usr/bin/python3
"""apps/chat on several instances behind nginx, sharing rooms through a real redis-server.

usage: /usr/bin/python3 chat_scale_test.py PATH/TO/chat

Starts redis-server and nginx (Debian's) on free ports in a temporary directory,
three chat instances with --redis, nginx proxying HTTP and WebSocket upgrades to
them (round robin), then checks: clients on different instances exchange
messages in one room; members, presence, /api/rooms and history agree across
instances; kill -9 of one instance: its member leaves presence within the
expiry and reconnects through nginx; redis-server stopped and started again:
local delivery never stops, /readyz follows Redis, cross-instance delivery
resumes, the gap is counted in keel_hub_dropped_total, nothing arrives twice.

Exits 77 (ctest: skipped) when redis-server, nginx or python3-websockets is
missing, 1 on a failure. Every wait is bounded; nothing sleeps for a timeout:
the chat's expiry and reconnect cap are set to milliseconds.
"""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    import websockets
except ImportError:
    print("SKIP: python3-websockets is not installed (apt-get install python3-websockets)")
    sys.exit(77)
for tool in ("/usr/bin/redis-server", "/usr/sbin/nginx"):
    if not os.path.exists(tool):
        print(f"SKIP: {tool} is not installed (Debian packages redis-server, nginx-light)")
        sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import keeltest as kt  # noqa: E402
from keeltest import T, check, eventually, failures, free_port, http_get, port_open  # noqa: E402,F401

TTL_MS = 600  # --redis-member-ttl: a dead instance's members go within TTL + TTL/3


def metric(port, name):
    """Sum of the series of `name` in the instance's /metrics: every label set, or the one
    spelled out (`keel_hub_dropped_total{reason="gap"}`); 0 when unreachable."""
    return kt.metric(port, name) or 0.0


class Redis:
    def __init__(self, tmp):
        self.port, self.dir, self.p = free_port(), tmp, None
        self.start()

    def start(self):
        self.p = subprocess.Popen(["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", self.dir, "--loglevel", "warning"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not eventually(lambda: port_open(self.port)):
            raise RuntimeError("redis-server did not start")

    def stop(self):
        self.p.kill()
        self.p.wait(T)

    def command(self, *args):
        """One command over a fresh connection; the reply parsed (enough RESP for tests)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=T) as s:
            out = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
            s.sendall(out.encode())
            f = s.makefile("rb")

            def parse():
                line = f.readline().rstrip(b"\r\n")
                t, rest = line[:1], line[1:]
                if t in (b"+", b"-"):
                    return rest.decode()
                if t == b":":
                    return int(rest)
                if t == b"$":
                    n = int(rest)
                    return None if n < 0 else f.read(n + 2)[:-2].decode()
                if t == b"*":
                    return [parse() for _ in range(int(rest))]
                raise RuntimeError(f"bad RESP {line!r}")
            return parse()

    def subscribers(self, room):
        try:
            return self.command("PUBSUB", "NUMSUB", "keel:hub:" + room)[1]
        except OSError:
            return -1


class Chat:
    def __init__(self, binary, redis_url, readiness=True):
        self.p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--threads", "1", "--drain-timeout", "2s",
                                   "--redis", redis_url, "--redis-member-ttl", f"{TTL_MS}ms", "--redis-timeout", "300ms",
                                   "--reconnect-base", "50ms", "--reconnect-cap", "200ms",
                                   *(["--redis-readiness"] if readiness else [])],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.p.kill()
            raise RuntimeError(f"bad listening line {line!r}: {self.p.stderr.read()[-2000:]}")
        self.port = int(m.group(1))

    def stop(self):
        if self.p.poll() is not None:
            return self.p.returncode
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.communicate(timeout=T + 5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
        return self.p.returncode


class Nginx:
    def __init__(self, tmp, ports):
        self.port, self.dir = free_port(), tmp
        servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in ports)
        conf = (("user root root;\n" if os.geteuid() == 0 else "") +
                f"worker_processes 1;\ndaemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
                "events { worker_connections 256; }\n"
                "http {\n"
                f"  access_log off;\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n"
                f"  fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n"
                f"  upstream chat {{\n{servers}  }}\n"
                f"  server {{\n    listen 127.0.0.1:{self.port};\n"
                "    proxy_connect_timeout 1s;\n"
                "    location /ws {\n      proxy_pass http://chat;\n      proxy_http_version 1.1;\n"
                "      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection \"upgrade\";\n"
                "      proxy_set_header Host $host;\n      proxy_read_timeout 1h;\n      proxy_send_timeout 1h;\n    }\n"
                "    location / {\n      proxy_pass http://chat;\n      proxy_http_version 1.1;\n"
                "      proxy_set_header Connection \"\";\n    }\n  }\n}\n")
        with open(f"{tmp}/nginx.conf", "w") as f:
            f.write(conf)
        self.p = subprocess.Popen(["/usr/sbin/nginx", "-p", tmp + "/", "-e", f"{tmp}/error.log", "-c",
                                   f"{tmp}/nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not eventually(lambda: port_open(self.port)):
            with open(f"{tmp}/error.log") as e:
                raise RuntimeError("nginx did not start: " + e.read())

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(T)
        except subprocess.TimeoutExpired:
            self.p.kill()


class Client:
    """A chat member; keeps every message it reads so duplicates show."""

    def __init__(self, name, ws, joined):
        self.name, self.ws, self.joined = name, ws, joined
        self.pending, self.texts = [], []

    @staticmethod
    async def connect(port, room, name):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?room={room}&name={name}", open_timeout=T,
                                      close_timeout=T)
        joined = json.loads(await asyncio.wait_for(ws.recv(), T))
        return Client(name, ws, joined)

    async def next(self, pred, timeout=T):
        for i, m in enumerate(self.pending):
            if pred(m):
                return self.pending.pop(i)
        end = time.monotonic() + timeout
        while True:
            m = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.01, end - time.monotonic())))
            if m.get("type") == "message":
                self.texts.append(m["text"])
            if pred(m):
                return m
            self.pending.append(m)

    async def message(self, timeout=T):
        return await self.next(lambda m: m.get("type") == "message", timeout)

    async def presence(self, event, name, timeout=T):
        return await self.next(lambda m: m == {"type": "presence", "event": event, "name": name}, timeout)

    async def send(self, text):
        await self.ws.send(json.dumps({"type": "message", "text": text}))


async def sse_open(port, path):
    """A Server-Sent Events stream, read by hand: the response head, then events."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: chat\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
    return reader, writer, head.decode("latin-1")


async def sse_next(reader, timeout=T):
    """The next event with data, as {"event", "id", "data"}; comments are skipped."""
    event = {}
    end = time.monotonic() + timeout
    while True:
        line = (await asyncio.wait_for(reader.readline(), max(0.01, end - time.monotonic()))).decode()
        if not line:
            raise EOFError("the event stream ended")
        line = line.rstrip("\r\n")
        if line == "":
            if "data" in event:
                return event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value[1:] if value.startswith(" ") else value


async def without_redis(binary):
    """A chat whose Redis never answers still serves its own members; /readyz ignores
    Redis unless --redis-readiness asks."""
    lonely = Chat(binary, f"redis://127.0.0.1:{free_port()}/0", readiness=False)
    try:
        check("without Redis, /readyz stays 200 unless --redis-readiness", http_get(lonely.port, "/readyz")[0] == 200)
        a = await Client.connect(lonely.port, "solo", "ann")
        b = await Client.connect(lonely.port, "solo", "ben")
        check("without Redis, joined lists the instance's own members", b.joined["members"] == ["ann", "ben"],
              b.joined)
        await a.send("still local")
        check("without Redis, local delivery works", (await b.message())["text"] == "still local"
              and (await a.message())["text"] == "still local")
        await a.ws.close()
        await b.ws.close()
    finally:
        code = lonely.stop()
        check("a chat without Redis drains and exits 0", code == 0, code)


async def scenario(redis, chats, nginx):
    room = "scale"
    p = [c.port for c in chats]

    # Round robin: the first three upgrades through nginx land on three instances.
    alice = await Client.connect(nginx.port, room, "alice")
    check("alice joins through nginx", alice.joined["members"] == ["alice"] and alice.joined["history"] == [],
          alice.joined)
    check("alice's instance subscribes to the room", eventually(lambda: redis.subscribers(room) == 1))
    bob = await Client.connect(nginx.port, room, "bob")
    check("bob's joined lists alice, from another instance", bob.joined["members"] == ["alice", "bob"], bob.joined)
    check("a second instance subscribes", eventually(lambda: redis.subscribers(room) == 2))
    await alice.presence("join", "bob")
    carol = await Client.connect(nginx.port, room, "carol")
    check("carol's joined lists all three", carol.joined["members"] == ["alice", "bob", "carol"], carol.joined)
    check("a third instance subscribes", eventually(lambda: redis.subscribers(room) == 3))
    await alice.presence("join", "carol")
    await bob.presence("join", "carol")
    ws_per_instance = [metric(port, "keel_ws_connections_active") for port in p]
    check("nginx spread the three members over the three instances", ws_per_instance == [1, 1, 1], ws_per_instance)
    # nginx's round robin starts at the first server: alice on 0, bob on 1, carol on 2.
    where = {"alice": 0, "bob": 1, "carol": 2}

    # An SSE listener on bob's instance: it must see every instance's messages.
    sse, sse_writer, head = await sse_open(p[where["bob"]], f"/api/rooms/{room}/events")
    check("the room's event stream opens on bob's instance", head.startswith("HTTP/1.1 200"), head)

    everyone = [alice, bob, carol]
    for sender in everyone:
        await sender.send(f"hello from {sender.name}")
        got = [await c.message() for c in everyone]
        check(f"{sender.name}'s message reaches all three instances' members with one id",
              all(m["text"] == f"hello from {sender.name}" and m["from"] == sender.name for m in got)
              and len({m["id"] for m in got}) == 1, got)
        ev = await sse_next(sse)
        data = json.loads(ev["data"])
        check(f"{sender.name}'s message reaches the SSE stream on bob's instance, with its id as the event id",
              ev.get("event") == "message" and data["text"] == f"hello from {sender.name}"
              and ev.get("id") == got[0]["id"] == data["id"], ev)
    sse_writer.close()

    for port in p + [nginx.port]:
        status, body = http_get(port, "/api/rooms")
        check(f"/api/rooms on :{port} counts every instance's members",
              status == 200 and json.loads(body) == [{"room": room, "members": 3}], body)

    # 60 messages from all three instances: every instance serves the same last 50.
    sent = []
    for i in range(60):
        sender = everyone[i % 3]
        await sender.send(f"h{i}")
        sent.append(f"h{i}")
        for c in everyone:
            m = await c.message()
            if m["text"] != f"h{i}":
                check(f"h{i} arrives in order at {c.name}", False, m)
    histories = []
    for port in p:
        late = await Client.connect(port, room, "late")
        histories.append([m["text"] for m in late.joined["history"]])
        await late.ws.close()
    check("history: the last 50, the same on every instance",
          all(h == sent[10:] for h in histories), [h[:2] + h[-2:] for h in histories])
    for c in everyone:
        for _ in range(3):
            await c.presence("leave", "late")

    # kill -9 the instance carol is on: her member entry expires and is swept.
    dead = chats[where["carol"]]
    dead.p.kill()
    dead.p.wait(T)
    start = time.monotonic()
    await alice.presence("leave", "carol", timeout=5)
    took = time.monotonic() - start
    check(f"carol's leave reaches the others within the expiry ({took * 1000:.0f} ms, ttl {TTL_MS} ms)",
          took < (TTL_MS * 4 / 3 + 1500) / 1000, took)
    await bob.presence("leave", "carol")
    live = [c.port for c in chats if c is not dead]
    check("/api/rooms no longer counts carol",
          eventually(lambda: all(http_get(port, "/api/rooms")[1] == json.dumps(
              [{"room": room, "members": 2}], separators=(",", ":")).encode() for port in live)),
          [http_get(port, "/api/rooms")[1] for port in live])
    carol = await Client.connect(nginx.port, room, "carol")
    check("carol reconnects through nginx to a live instance",
          sorted(carol.joined["members"]) == ["alice", "bob", "carol"], carol.joined)
    await alice.presence("join", "carol")
    await bob.presence("join", "carol")
    everyone = [alice, bob, carol]
    alice2 = await Client.connect(chats[where["alice"]].port, room, "alice2")  # alice's instance, directly
    for c in everyone:
        await c.presence("join", "alice2")
    check("every live instance is subscribed", eventually(lambda: redis.subscribers(room) == 2))
    await alice.send("sync")
    for c in everyone + [alice2]:
        check(f"{c.name} gets the message after the crash", (await c.message())["text"] == "sync")

    # Redis goes away: alice's instance keeps delivering to its own members.
    a_port = chats[where["alice"]].port
    b_port = chats[where["bob"]].port
    dropped_before = metric(a_port, "keel_hub_dropped_total")
    gap_before = metric(b_port, 'keel_hub_dropped_total{reason="gap"}')
    redis.stop()
    check("/readyz follows Redis down (--redis-readiness)", eventually(lambda: http_get(a_port, "/readyz")[0] == 503))
    for i in range(3):
        await alice.send(f"local{i}")
        for c in (alice, alice2):
            m = await c.message()
            check(f"local delivery goes on without Redis ({c.name}, local{i})", m["text"] == f"local{i}", m)
    check("the cross-instance loss is counted in keel_hub_dropped_total",
          metric(a_port, "keel_hub_dropped_total") - dropped_before >= 3,
          metric(a_port, "keel_hub_dropped_total") - dropped_before)

    redis.start()
    check("/readyz follows Redis back", all(eventually(lambda port=port: http_get(port, "/readyz")[0] == 200)
                                            for port in live))
    check("the rooms are subscribed again after the restart", eventually(lambda: redis.subscribers(room) == 2))
    check("members are written back after the restart",
          eventually(lambda: all(http_get(port, "/api/rooms")[1] == json.dumps(
              [{"room": room, "members": 4}], separators=(",", ":")).encode() for port in live)),
          [http_get(port, "/api/rooms")[1] for port in live])
    await alice.send("after")
    for c in everyone + [alice2]:
        m = await c.message()
        check(f"cross-instance delivery resumes ({c.name})", m["text"] == "after", m)
    check("bob's instance counts the three it missed as a gap",
          metric(b_port, 'keel_hub_dropped_total{reason="gap"}') - gap_before == 3,
          metric(b_port, 'keel_hub_dropped_total{reason="gap"}') - gap_before)
    await bob.send("end")
    for c in everyone + [alice2]:
        m = await c.message()
        check(f"{c.name}: nothing arrives late or twice", m["text"] == "end", m)
    for c in everyone + [alice2]:
        check(f"{c.name} read each message once", len(c.texts) == len(set(c.texts)), c.texts)

    # A Redis that takes no writes for a while (as in a partition) while alice2 leaves:
    # the leave cannot be stored, and is cleaned up once this instance reconnects.
    redis.command("CLIENT", "PAUSE", "1500", "WRITE")
    await alice2.ws.close()
    for c in everyone:
        await c.presence("leave", "alice2") if c is alice else None
    check("a member that left while Redis took no writes is removed once it does",
          eventually(lambda: all(http_get(port, "/api/rooms")[1] == json.dumps(
              [{"room": room, "members": 3}], separators=(",", ":")).encode() for port in live)),
          [http_get(port, "/api/rooms")[1] for port in live])
    for c in everyone:
        await c.ws.close()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    tmp = tempfile.mkdtemp(prefix="keel-scale-")
    redis = chats = nginx = None
    try:
        redis = Redis(tmp)
        url = f"redis://127.0.0.1:{redis.port}/0"
        chats = [Chat(sys.argv[1], url) for _ in range(3)]
        nginx = Nginx(tmp, [c.port for c in chats])
        asyncio.run(asyncio.wait_for(without_redis(sys.argv[1]), 60))
        asyncio.run(asyncio.wait_for(scenario(redis, chats, nginx), 120))
    except Exception as e:  # a failed wait is a failure, with what it was waiting for
        check("the scenario ran to its end", False, repr(e))
    finally:
        if nginx:
            nginx.stop()
        for c in chats or []:
            if c.p.poll() is None:
                check(f"instance :{c.port} drains and exits 0 on SIGTERM", c.stop() == 0)
        if redis:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
