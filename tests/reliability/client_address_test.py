#!/usr/bin/env python3
"""The client address and what is keyed by it (SPEC §2), against keel_probe_app.

usage: client_address_test.py PATH/TO/keel_probe_app proxies|per_client

proxies     trusted_proxies through a real nginx (Debian's): nginx binds 127.0.0.2 for its
            upstream connections and appends $remote_addr to X-Forwarded-For; keel trusts
            127.0.0.2/32. Clients reach nginx from 127.0.0.3, .4, .5 (loopback addresses of
            their own): each gets its own rate-limit key and access-log client, whatever it
            spoofs on the left of X-Forwarded-For; a Forwarded header nginx passes through
            names no one; a peer outside trusted_proxies is believed about nothing; an
            invalid CIDR fails at startup naming the setting.
per_client  max_connections_per_client 3: a fourth connection from 127.0.0.1 is closed at
            once and counted while the three stay served, another address still connects,
            and once one of the three closes a new one is accepted.

Exits 77 (ctest: skipped) when nginx is not installed (Debian package nginx-light).
"""
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import keeltest as kt  # noqa: E402

probe, scenario = sys.argv[1], sys.argv[2]


def connect_from(source, port):
    s = socket.socket()
    s.settimeout(kt.T)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def get_from(source, port, path, headers=()):
    """(status, body) of one GET from loopback address `source`; (0, b"") when it failed."""
    try:
        s = connect_from(source, port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: keel.test\r\nConnection: close\r\n{extra}\r\n".encode())
        data, _ = kt.read_until_close(s)
        s.close()
    except OSError:
        return 0, b""
    r = kt.parse_responses(data)
    return (r[0][0], r[0][2]) if r else (0, b"")


def roundtrip(s):
    """One keep-alive GET /plaintext on `s`: True when answered 200."""
    try:
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: keel.test\r\n\r\n")
        data = b""
        while True:
            r = kt.parse_responses(data)
            if r:
                return r[0][0] == 200
            chunk = s.recv(65536)
            if not chunk:
                return False
            data += chunk
    except OSError:
        return False


def closed_at_once(s):
    """True when the server closes `s` without answering a request."""
    try:
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: keel.test\r\n\r\n")
    except OSError:
        return True
    data, closed = kt.read_until_close(s, timeout=5)
    return closed and not data


def proxies():
    if not os.access(kt.NGINX, os.X_OK):
        kt.skip(f"{kt.NGINX} is not installed (Debian package nginx-light)")
    bad = subprocess.run([probe, "--listen", "127.0.0.1:0", "--trusted-proxies", "127.0.0.2/32,10.0.0.0/33"],
                         capture_output=True, text=True, timeout=kt.T)
    kt.check("an invalid CIDR fails at startup naming trusted_proxies and the entry",
             bad.returncode != 0 and "trusted_proxies" in bad.stderr and "10.0.0.0/33" in bad.stderr
             and "listening" not in bad.stdout, f"exit {bad.returncode}: {bad.stderr[-500:]}")

    app = kt.App([probe, "--threads", "2", "--trusted-proxies", "127.0.0.2/32", "--drain-timeout", "2s"])
    with tempfile.TemporaryDirectory(prefix="keel-proxies-") as tmp:
        nginx = kt.Nginx(tmp, [app.port], extra_location=(
            "      proxy_bind 127.0.0.2;\n"
            "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"))
        try:
            a = get_from("127.0.0.3", nginx.port, "/limited", [("X-Forwarded-For", "6.6.6.6")])
            kt.check("a client behind nginx is known by its own address, not nginx's nor its spoofed one",
                     a == (200, b"127.0.0.3"), a)
            again = get_from("127.0.0.3", nginx.port, "/limited", [("X-Forwarded-For", "7.7.7.7")])
            kt.check("... and its second request is limited, whatever it spoofs", again[0] == 429, again)
            b = get_from("127.0.0.4", nginx.port, "/limited")
            kt.check("another client behind the same nginx has a rate-limit key of its own",
                     b == (200, b"127.0.0.4"), b)
            c = get_from("127.0.0.5", nginx.port, "/limited", [("Forwarded", "for=6.6.6.6")])
            kt.check("a Forwarded header nginx passes through does not choose the address",
                     c[0] == 200 and c[1] != b"6.6.6.6", c)
            direct = get_from("127.0.0.6", app.port, "/limited", [("X-Forwarded-For", "8.8.8.8"),
                                                                  ("Forwarded", "for=8.8.8.8")])
            kt.check("a peer outside trusted_proxies is the client whatever it says",
                     direct == (200, b"127.0.0.6"), direct)

            def limited_lines():
                return [o for o in app.log_lines("access") if o.get("path") == "/limited"]
            lines = kt.eventually(lambda: (lambda l: l if len(l) >= 5 else None)(limited_lines())) or []
            by_client = {o.get("client"): o for o in lines}
            kt.check("the access log shows the client behind nginx, with nginx as the peer",
                     "127.0.0.3" in by_client and by_client["127.0.0.3"]["peer"].startswith("127.0.0.2:")
                     and "127.0.0.4" in by_client, lines)
            kt.check("... and never a spoofed address",
                     not any("6.6.6.6" in str(o) or "7.7.7.7" in str(o) or "8.8.8.8" in str(o.get("client"))
                             for o in lines), lines)
        finally:
            nginx.stop()
            code, _ = app.stop()
            kt.check("the app drains and exits 0", code == 0, code)


def per_client():
    app = kt.App([probe, "--threads", "2", "--max-connections-per-client", "3", "--drain-timeout", "2s"])
    kept = []
    try:
        for _ in range(3):
            s = kt.connect(app.port)
            kept.append(s)
        kt.check("three keep-alive connections from 127.0.0.1 are served", all(roundtrip(s) for s in kept))
        fourth = kt.connect(app.port)
        kt.check("a fourth from 127.0.0.1 is closed at once", closed_at_once(fourth))
        fourth.close()
        kt.check("... while the three stay served", all(roundtrip(s) for s in kept))
        other = connect_from("127.0.0.7", app.port)
        kt.check("another client address still connects", roundtrip(other))
        other.close()
        kept.pop(0).close()

        def accepted():
            s = kt.connect(app.port)
            if roundtrip(s):
                return s
            s.close()
            return None
        again = kt.eventually(accepted)
        kt.check("once one of the three closes, a new connection is accepted", again is not None)
        if again:
            again.close()
        # The scrape is a connection from 127.0.0.1 too: two kept, one free.
        rejected = kt.eventually(lambda: (kt.metric(app.port, "keel_connections_rejected_per_client_total") or 0) >= 1)
        kt.check("the refusal is counted", rejected,
                 kt.metric(app.port, "keel_connections_rejected_per_client_total"))
        total = kt.metric(app.port, "keel_connections_rejected_total")
        kt.check("... in keel_connections_rejected_total too", total is not None and total >= 1, total)
    finally:
        for s in kept:
            s.close()
        code, _ = app.stop()
        kt.check("the app drains and exits 0", code == 0, code)


{"proxies": proxies, "per_client": per_client}[scenario]()
kt.finish()
