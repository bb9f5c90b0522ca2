#!/usr/bin/python3
"""Resource exhaustion against keel_probe_app, one scenario per run.

usage: /usr/bin/python3 exhaustion_test.py PATH/TO/keel_probe_app connections|descriptors|slow_reader|steady_reader|bodies
       /usr/bin/python3 exhaustion_test.py PATH/TO/hello ws_queues|silent_peers|half_open

connections  max_connections idle keep-alive connections, then one more: it is
             closed at once (EOF within a bound), counted in
             keel_connections_rejected_total, and the kept ones are still served.
descriptors  the running server's RLIMIT_NOFILE lowered (prlimit) to a few
             descriptors above what it holds, then a flood of connections: accept
             fails with EMFILE, backs off (process CPU over 2 s stays far below a
             busy loop's), the failures are counted, a connection opened before the
             flood is still served, and once the flood closes new connections are
             served again. (max_connections must fit the limit at startup, SPEC §2,
             so the limit is lowered afterwards, as another part of the process
             taking descriptors would.)
slow_reader  a client that asks for 32 MiB and never reads is cut at write_timeout
             (set to 300ms by flag): the server's descriptor count and RSS return
             to their baseline while another client is served meanwhile.
steady_reader a client reading a 24 MiB body steadily but slower than one write_timeout
             for the whole is not cut: write_timeout is between writes (SPEC §2).
bodies       64 clients each one byte short of a max_body (1 MiB) body: RSS stays under
             baseline + 64 x (max_body + max_head) x 1.5; every body is then served.
ws_queues    (apps/hello) 32 WebSocket subscribers that never read while 64 KiB messages
             are published: each is dropped as a slow consumer and its connection closed,
             RSS stays under baseline + 32 x (ws_send_queue + message) x 1.5.
silent_peers (apps/hello) WebSocket peers that never answer a ping (frozen or gone) are
             closed by the heartbeat within ws_ping_interval + ws_pong_timeout, counted.
half_open    (apps/hello, in its own network namespace) peers that vanish without FIN or
             RST (the namespace's loopback taken down under them): a WebSocket, an idle
             keep-alive and a half-sent head are each released by their timeout.
Every wait is bounded; loopback only. Exits 1 on a failure.
"""
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import keeltest as kt  # noqa: E402

probe, scenario = sys.argv[1], sys.argv[2]
GET = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"


def roundtrip(s, req=GET):
    """One keep-alive request on s; the parsed responses (empty when the connection failed)."""
    try:
        s.sendall(req)
        data = b""
        s.settimeout(kt.T)
        while True:
            rs = kt.parse_responses(data)
            if rs:
                return rs
            chunk = s.recv(65536)
            if not chunk:
                return []
            data += chunk
    except OSError:
        return []


def metric_over(s, name):
    """`name` from /metrics over an open keep-alive connection (None when it failed)."""
    rs = roundtrip(s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    if not rs:
        return None
    total = 0.0
    for line in rs[0][2].decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def eof_within(s, timeout):
    """Seconds until the peer closed s (EOF or reset), or None if it did not within timeout."""
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return None
    return time.monotonic() - t0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connections():
    limit = 20
    app = kt.App([probe, "--threads", "2", "--max-connections", str(limit), "--drain-timeout", "2s"])
    kept = []
    try:
        for _ in range(limit):
            s = kt.connect(app.port)
            kept.append(s)
            if not roundtrip(s):
                break
        kt.check(f"{limit} keep-alive connections are served", len(kept) == limit)
        extra = kt.connect(app.port)
        took = eof_within(extra, 5)
        extra.close()
        kt.check("connection number limit+1 is closed at once", took is not None and took < 2, f"took {took}")
        served = sum(1 for s in kept[1:] if roundtrip(s))
        kt.check("the kept connections are still served", served == limit - 1, f"{served}")
        # /metrics needs a connection of its own: free one, then ask over it.
        kept[0].close()
        kept[0] = None
        refused_polls = [0]

        def reopen():
            s = kt.connect(app.port)
            if roundtrip(s):
                return s
            s.close()
            refused_polls[0] += 1
            return None
        s = kt.eventually(reopen, timeout=kt.T)
        kt.check("a slot freed by a client is given to a new connection", s is not None)
        if s is not None:
            kept[0] = s
            rejected = metric_over(s, "keel_connections_rejected_total")
            kt.check("the refusal is counted in keel_connections_rejected_total",
                     rejected is not None and 1 <= rejected <= 1 + refused_polls[0], f"{rejected}")
            print(f"figures connections: limit {limit}, refused in {took * 1000:.1f} ms, "
                  f"keel_connections_rejected_total {rejected}", flush=True)
    finally:
        for s in kept:
            if s is not None:
                s.close()
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


def descriptors():
    app = kt.App([probe, "--threads", "2", "--max-connections", "1000", "--drain-timeout", "2s"])
    flood = []
    try:
        kept = kt.connect(app.port)
        kt.check("a connection opened before the flood is served", bool(roundtrip(kept)))
        base = kt.fd_count(app.pid)
        low = base + 8
        resource.prlimit(app.pid, resource.RLIMIT_NOFILE, (low, low))
        print(f"server holds {base} descriptors; RLIMIT_NOFILE lowered to {low}", flush=True)
        for _ in range(200):
            flood.append(kt.connect(app.port))
        rejected = kt.eventually(lambda: (metric_over(kept, "keel_connections_rejected_total") or 0) > 0,
                                 timeout=kt.T)
        kt.check("accept failures for lack of descriptors are counted", rejected)
        cpu0, t0 = kt.cpu_seconds(app.pid), time.monotonic()
        time.sleep(2)  # the measurement window
        cpu = kt.cpu_seconds(app.pid) - cpu0
        wall = time.monotonic() - t0
        kt.check("accept backs off: the server's CPU over 2 s stays low", cpu < 0.4 * wall, f"{cpu:.2f} s CPU")
        kt.check("the kept connection is still served while descriptors are out", bool(roundtrip(kept)))
        failures = metric_over(kept, "keel_connections_rejected_total")
        print(f"figures descriptors: {cpu:.3f} s CPU in {wall:.2f} s while out of descriptors; "
              f"{failures:.0f} accept failures counted (about 20 a second: a 50 ms back-off)", flush=True)
        for s in flood:
            s.close()
        flood.clear()

        def served():
            try:
                with kt.connect(app.port, timeout=2) as s:
                    return bool(roundtrip(s))
            except OSError:
                return False
        kt.check("after the flood closes, new connections are served", kt.eventually(served, timeout=kt.T))
        kt.check("the kept connection is still served", bool(roundtrip(kept)))
        kept.close()
    finally:
        for s in flood:
            s.close()
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


def slow_reader():
    app = kt.App([probe, "--threads", "2", "--write-timeout", "300ms", "--drain-timeout", "2s"])
    try:
        base_sockets = kt.socket_count(app.pid)  # the listener, no connection yet
        with kt.connect(app.port) as s:  # warm up: lazily made descriptors, the first big allocations
            roundtrip(s, b"GET /big?mib=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        kt.eventually(lambda: kt.socket_count(app.pid) <= base_sockets)
        base_fds = kt.fd_count(app.pid)
        base_rss = rss_kib(app.pid)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", app.port))
        slow.sendall(b"GET /big?mib=32 HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        kt.check("the slow reader holds a socket", kt.eventually(lambda: kt.socket_count(app.pid) > base_sockets))
        status, body = kt.http_get(app.port, "/plaintext")
        kt.check("another client is served meanwhile", status == 200 and body == b"ok")
        peak = [rss_kib(app.pid)]

        def released():
            peak[0] = max(peak[0], rss_kib(app.pid))
            return kt.socket_count(app.pid) <= base_sockets
        back = kt.eventually(released, timeout=kt.T)
        took = time.monotonic() - t0
        kt.check("write_timeout cuts the slow reader: sockets back to the baseline", back,
                 f"{kt.socket_count(app.pid)} vs {base_sockets}")
        kt.check("... after about write_timeout (300 ms), not the 30 s default", 0.25 <= took < 5, f"{took:.2f} s")
        kt.check("... and every descriptor with it", kt.eventually(lambda: kt.fd_count(app.pid) <= base_fds),
                 f"{kt.fd_count(app.pid)} vs {base_fds}")
        after_rss = kt.eventually(lambda: (lambda r: r if r < base_rss + 8192 else None)(rss_kib(app.pid)),
                                  timeout=kt.T) or rss_kib(app.pid)
        kt.check("... and the 32 MiB response is freed (RSS within 8 MiB of the baseline)",
                 after_rss < base_rss + 8192, f"baseline {base_rss} KiB, after {after_rss} KiB")
        peak_rss = peak[0]
        got, closed = kt.read_until_close(slow, timeout=kt.T, limit=64 << 20)
        slow.close()
        kt.check("the slow reader finds its connection closed before the whole body", closed and len(got) < 32 << 20,
                 f"{len(got)} bytes, closed {closed}")
        print(f"figures slow_reader: cut {took * 1000:.0f} ms after the request (write_timeout 300 ms); "
              f"RSS {base_rss} KiB baseline, {peak_rss} KiB while writing, {after_rss} KiB after; "
              f"{len(got)} of {32 << 20} bytes reached the client", flush=True)
    finally:
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


def bodies():
    """64 clients each holding a largest-allowed body one byte short of complete: RSS stays
    within a bound computed from the settings, and every body is then served."""
    n, max_body, max_head = 64, 1 << 20, 16 << 10
    app = kt.App([probe, "--threads", "2", "--max-body", "1MiB", "--drain-timeout", "2s"])
    socks = []
    try:
        base = rss_kib(app.pid)
        body = b"x" * max_body
        for _ in range(n):
            s = kt.connect(app.port)
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % max_body)
            socks.append(s)
        for s in socks:
            s.sendall(body[:-1])
        # Bound: each connection's body plus its head buffer, with half again for allocator slack.
        bound = base + n * (max_body + max_head) * 3 // 2 // 1024
        # Poll until the server has taken in (nearly) all bodies, then read the peak.
        kt.eventually(lambda: rss_kib(app.pid) > base + n * max_body * 9 // 10 // 1024, timeout=kt.T)
        peak = rss_kib(app.pid)
        kt.check(f"RSS with {n} bodies of max_body in flight stays under the computed bound",
                 peak < bound, f"peak {peak} KiB, bound {bound} KiB")
        for s in socks:
            s.sendall(b"x")
        served = 0
        for s in socks:
            rs = []
            s.settimeout(kt.T)
            data = b""
            while not rs:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                rs = kt.parse_responses(data)
            served += bool(rs) and rs[0][2] == b'{"len":%d}' % max_body
        kt.check("every body is then served in full", served == n, f"{served} of {n}")
        for s in socks:
            s.close()
        socks.clear()
        kt.eventually(lambda: kt.socket_count(app.pid) <= 1)
        after = rss_kib(app.pid)
        print(f"figures bodies: {n} x max_body 1 MiB in flight: RSS {base} KiB baseline, {peak} KiB peak "
              f"({(peak - base) / n:.0f} KiB per connection), bound {bound} KiB; {after} KiB after the "
              f"connections closed", flush=True)
    finally:
        for s in socks:
            s.close()
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


def ws_upgrade(port, target):
    """A raw WebSocket client with a 4 KiB receive buffer, upgraded; None when refused.
    It never reads past the 101 and never answers a ping: a peer that has gone silent."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    s.settimeout(kt.T)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)  # byte by byte: nothing past the 101's head is taken
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        s.close()
        return None
    return s


def silent_peers():
    """WebSocket peers that stop answering (never a pong, as a frozen or vanished client):
    the heartbeat drops each after ws_ping_interval + ws_pong_timeout, counted as no_pong."""
    n = 8
    app = kt.App([probe, "--threads", "2", "--ws-ping-interval", "200ms", "--ws-pong-timeout", "300ms",
                  "--drain-timeout", "2s"])
    peers = []
    try:
        for _ in range(n):
            s = ws_upgrade(app.port, "/ws/echo")
            if s is None:
                break
            peers.append(s)
        kt.check(f"{n} peers upgraded", len(peers) == n)
        t0 = time.monotonic()
        closed = kt.eventually(lambda: kt.socket_count(app.pid) <= 1, timeout=kt.T)
        took = time.monotonic() - t0
        kt.check("the heartbeat closes every silent peer's connection", closed, f"{kt.socket_count(app.pid)} sockets")
        kt.check("... after about ping interval + pong timeout (0.5 s), not the 40 s default", took < 5, f"{took:.2f} s")
        no_pong = kt.metric(app.port, 'keel_ws_dropped_total{reason="no_pong"}')
        kt.check("... counted as no_pong", no_pong == n, f"{no_pong}")
        print(f"figures silent_peers: {n} peers closed {took:.2f} s after their upgrade "
              f"(ping 200 ms + pong 300 ms); no_pong {no_pong:.0f}", flush=True)
    finally:
        for s in peers:
            s.close()
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


def ponger(s, stop):
    """Answers every ping on the raw WebSocket s with a (masked) pong until stop is set or
    the connection ends: a live client, as far as keel's heartbeat can tell."""
    import threading
    s.settimeout(0.1)
    buf = b""

    def run():
        nonlocal buf
        while not stop.is_set():
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 2:
                op, n = buf[0] & 0x0F, buf[1] & 0x7F
                at = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                if len(buf) < at:
                    break
                if n >= 126:
                    n = int.from_bytes(buf[2:at], "big")
                if len(buf) < at + n:
                    break
                payload, buf = buf[at:at + n], buf[at + n:]
                if op == 0x9:
                    try:
                        s.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                    except OSError:
                        return
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def half_open():
    """Peers that vanish without a FIN or an RST: the test runs in its own network
    namespace (unshare -n) and takes its loopback down under established connections, so
    nothing is delivered or acknowledged any more. keel must still let go of each: a
    WebSocket by its heartbeat (no_pong), an idle keep-alive connection by idle_timeout,
    one waiting for a request head by header_timeout. Skips (77) where no namespace can
    be made."""
    import subprocess
    if os.environ.get("KEEL_IN_NETNS") != "1":
        env = dict(os.environ, KEEL_IN_NETNS="1")
        try:
            p = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), probe, "half_open"],
                               env=env, timeout=50)
        except (OSError, subprocess.TimeoutExpired) as e:
            kt.skip(f"unshare -n failed: {e}")
        sys.exit(p.returncode)
    if subprocess.run(["ip", "link", "set", "lo", "up"]).returncode != 0:
        kt.skip("cannot bring up loopback in a new network namespace (no CAP_NET_ADMIN?)")
    app = kt.App([probe, "--threads", "2", "--ws-ping-interval", "300ms", "--ws-pong-timeout", "1s",
                  "--idle-timeout", "500ms", "--header-timeout", "700ms", "--drain-timeout", "2s"])
    peers = []
    try:
        import threading
        stop = threading.Event()
        for _ in range(4):
            peers.append(ws_upgrade(app.port, "/ws/echo"))
        for p in peers:
            if p is not None:
                ponger(p, stop)
        kt.check("every peer connected", all(p is not None for p in peers))
        # Live, the WebSockets outlast several heartbeats: their pongs arrive.
        time.sleep(2)  # several heartbeats (ping every 0.3 s, 1 s for the pong), the thing observed
        kt.check("answering pings, the WebSockets stay connected through several heartbeats",
                 kt.metric(app.port, 'keel_ws_dropped_total{reason="no_pong"}') == 0)
        idle = kt.connect(app.port)
        kt.check("an idle keep-alive connection is served", bool(roundtrip(idle)))
        peers.append(idle)
        partial = kt.connect(app.port)
        partial.sendall(b"GET /plaintext HTTP/1.1\r\nHost:")
        peers.append(partial)
        kt.check("the server holds them", kt.eventually(lambda: kt.socket_count(app.pid) >= 1 + 4 + 2))
        subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
        t0 = time.monotonic()
        released = kt.eventually(lambda: kt.socket_count(app.pid) <= 1, timeout=kt.T)
        took = time.monotonic() - t0
        left = kt.socket_count(app.pid)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        kt.check("with the peers unreachable, keel closes every connection by its timeout", released,
                 f"{left - 1} still open")
        kt.check("... within a bound of the longest timeout (1.3 s), not the defaults", took < 5, f"{took:.2f} s")
        no_pong = kt.eventually(lambda: kt.metric(app.port, 'keel_ws_dropped_total{reason="no_pong"}'))
        kt.check("the WebSockets are counted as no_pong", no_pong == 4, f"{no_pong}")
        status, _ = kt.http_get(app.port, "/plaintext")
        kt.check("the server serves new connections once the network is back", status == 200)
        print(f"figures half_open: 4 live WebSockets, 1 idle keep-alive and 1 half-sent head behind a downed loopback "
              f"all released in {took:.2f} s; no_pong {no_pong:.0f}", flush=True)
    finally:
        subprocess.run(["ip", "link", "set", "lo", "up"])
        if "stop" in locals():
            stop.set()
        for p in peers:
            if p is not None:
                p.close()
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


def ws_queues():
    """32 WebSocket subscribers that never read while megabytes are published to them:
    each is dropped as a slow consumer once its send queue is full, RSS stays under
    baseline + 32 x (ws_send_queue + one message) x 1.5, and falls back once they are gone."""
    import http.client
    n, queue, msg = 32, 256 << 10, 64 << 10
    app = kt.App([probe, "--threads", "2", "--ws-send-queue", "256KiB", "--drain-timeout", "2s"])
    subs = []
    try:
        base = rss_kib(app.pid)
        for _ in range(n):
            s = ws_upgrade(app.port, "/ws/sub?topic=t")
            if s is None:
                break
            subs.append(s)
        kt.check(f"{n} subscribers upgraded", len(subs) == n)
        bound = base + n * (queue + msg) * 3 // 2 // 1024
        pub = http.client.HTTPConnection("127.0.0.1", app.port, timeout=kt.T)
        peak, published, t0 = base, 0, time.monotonic()
        dropped = 0.0
        # Publish until every subscriber is dropped (the kernel's socket buffers take some MB first).
        while time.monotonic() - t0 < 20:
            pub.request("POST", "/publish?topic=t", body=b"m" * msg)
            r = pub.getresponse()
            r.read()
            published += 1
            peak = max(peak, rss_kib(app.pid))
            if published % 16 == 0:
                dropped = kt.metric(app.port, 'keel_ws_dropped_total{reason="slow_consumer"}') or 0
                if dropped >= n:
                    break
        pub.close()
        kt.check("every subscriber that stopped reading is dropped as a slow consumer", dropped >= n,
                 f"{dropped} of {n} after {published} messages")
        closing = time.monotonic()
        # Within 5 s, well below write_timeout's 30 s: a write pending at the overflow gets
        # the 1008's one second too (the regression this scenario caught).
        closed = kt.eventually(lambda: kt.socket_count(app.pid) <= 1, timeout=5)
        close_s = time.monotonic() - closing
        kt.check("... and their TCP connections closed about 1 s later (the 1008's grace), not at write_timeout",
                 closed, f"{kt.socket_count(app.pid)} sockets after {close_s:.2f} s")
        kt.check("RSS stays under the bound computed from ws_send_queue", peak < bound,
                 f"peak {peak} KiB, bound {bound} KiB")
        after = kt.eventually(lambda: (lambda r: r if r < base + 16384 else None)(rss_kib(app.pid))) or rss_kib(app.pid)
        kt.check("... and falls back once they are gone", after < base + 16384, f"{after} KiB, baseline {base} KiB")
        status, body = kt.http_get(app.port, "/plaintext")
        kt.check("the server still serves others", status == 200)
        print(f"figures ws_queues: {n} subscribers, ws_send_queue 256 KiB, {published} messages of 64 KiB "
              f"published; dropped {dropped:.0f}, sockets closed {close_s:.2f} s later; RSS {base} KiB baseline, "
              f"{peak} KiB peak, bound {bound} KiB, {after} KiB after", flush=True)
    finally:
        for s in subs:
            s.close()
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


def steady_reader():
    """A client that keeps reading, slower than the response could be written in one
    write_timeout, is not cut: the timeout is between writes (SPEC §2), not for the whole."""
    app = kt.App([probe, "--threads", "2", "--write-timeout", "1s", "--drain-timeout", "2s"])
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", app.port))
        s.sendall(b"GET /big?mib=24 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.settimeout(kt.T)
        got, t0, closed = 0, time.monotonic(), False
        # About 8 MiB/s: 3 s for the body, three times write_timeout; each pause far below it.
        while time.monotonic() - t0 < 20:
            try:
                chunk = s.recv(64 * 1024)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                closed = True
                break
            got += len(chunk)
            time.sleep(len(chunk) / (8 << 20))  # the reader's pace, not a wait for an event
        s.close()
        took = time.monotonic() - t0
        want = 24 << 20
        kt.check("a steady reader slower than one write_timeout gets the whole response", closed and got > want,
                 f"{got} bytes of {want} + head in {took:.2f} s")
        print(f"figures steady_reader: {got} bytes in {took:.2f} s with write_timeout 1 s", flush=True)
    finally:
        code, err = app.stop()
        kt.check("exits 0", code == 0, err[-500:])


{"connections": connections, "descriptors": descriptors, "slow_reader": slow_reader,
 "steady_reader": steady_reader, "bodies": bodies, "ws_queues": ws_queues,
 "silent_peers": silent_peers, "half_open": half_open}[scenario]()
kt.finish()
