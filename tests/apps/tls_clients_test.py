#!/usr/bin/python3
"""keel's TLS listener against real clients: curl, Python's ssl, python3-websockets.

usage: /usr/bin/python3 tls_clients_test.py PATH/TO/hello PATH/TO/chat
The hello and chat apps are used unchanged: TLS comes from their settings. The
test makes its own CA and certificates with the openssl CLI in a temporary
directory. Exits 77 (ctest: skipped) when openssl, curl or python3-websockets
is missing, 1 on a failure. Every wait is bounded; timeouts the server enforces
are set to milliseconds through its settings, never waited out at a default.
"""
import asyncio
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

try:
    import websockets
except ImportError:
    print("SKIP: python3-websockets is not installed (apt-get install python3-websockets)")
    sys.exit(77)
for tool in ("openssl", "curl"):
    if shutil.which(tool) is None:
        print(f"SKIP: {tool} is not installed")
        sys.exit(77)

T = 10  # seconds, for every single wait
failures = []


def check(label, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + label + ("" if cond else f"  {detail}"))
    if not cond:
        failures.append(label)


def sh(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr}")


class PKI:
    """Two CAs; certificates for localhost/127.0.0.1 (good, good2 from the
    second CA, expired), one for another host only, and a key matching none."""

    def __init__(self, d):
        self.d = d
        ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        for ca in ("ca", "ca2"):
            sh(f"openssl req -x509 {ec} -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN=keel-test-{ca}", d)
        self.cert("good", "ca", "DNS:localhost,IP:127.0.0.1", 2)
        self.cert("good2", "ca2", "DNS:localhost,IP:127.0.0.1", 2)
        self.cert("expired", "ca", "DNS:localhost,IP:127.0.0.1", -1)
        self.cert("wronghost", "ca", "DNS:wrong.example", 2)
        sh(f"openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out other.key", d)

    def cert(self, name, ca, san, days):
        d = self.d
        with open(os.path.join(d, f"{name}.cnf"), "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
        sh(f"openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {name}.key"
           f" -out {name}.csr -subj /CN={name}", d)
        sh(f"openssl x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -out {name}.pem"
           f" -days {days} -extfile {name}.cnf", d)

    def path(self, name):
        return os.path.join(self.d, name)


class App:
    def __init__(self, binary, *args):
        # stderr (the JSON log) goes to a file the test can poll while the app runs.
        self.log = tempfile.NamedTemporaryFile(mode="w+", prefix="keel-tls-log-", delete=False)
        self.p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--threads", "2", "--drain-timeout", "2s", *args],
                                  stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.p.stdout.readline()
        m = re.fullmatch(r"listening on https://127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.p.kill()
            self.p.communicate()
            raise RuntimeError(f"bad listening line {line!r}: {self.stderr()}")
        self.port = int(m.group(1))

    def stderr(self):
        with open(self.log.name) as f:
            return f.read()

    def wait_log(self, text):
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            if text in self.stderr():
                return True
            time.sleep(0.05)  # polling the log, bounded by the deadline
        return False

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.communicate(timeout=T + 5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
        err = self.stderr()
        os.unlink(self.log.name)
        return self.p.returncode, err


def startup_failure(binary, *args):
    p = subprocess.run([binary, "--listen", "127.0.0.1:0", *args], capture_output=True, text=True, timeout=T)
    return p.returncode, p.stdout, p.stderr


def client_ctx(pki, ca="ca.pem"):
    ctx = ssl.create_default_context(cafile=pki.path(ca))
    return ctx


def https_get(port, ctx, path="/plaintext", host="localhost"):
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=T)
    c.request("GET", path)
    r = c.getresponse()
    return c, r.status, r.read()


def fingerprint(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=T) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def curl(port, pki, ca, host="localhost"):
    return subprocess.run(["curl", "-sS", "--max-time", str(T), "--cacert", pki.path(ca),
                           "--resolve", f"{host}:{port}:127.0.0.1", f"https://{host}:{port}/plaintext"],
                          capture_output=True, text=True)


def test_good_certificate(hello, pki):
    app = App(hello, "--tls-cert", pki.path("good.pem"), "--tls-key", pki.path("good.key"))
    try:
        r = curl(app.port, pki, "ca.pem")
        check("curl over https with the CA gets the body", r.returncode == 0 and r.stdout == "Hello, World!",
              f"rc={r.returncode} out={r.stdout!r} err={r.stderr!r}")
        r = curl(app.port, pki, "ca2.pem")
        check("curl refuses a certificate from a CA it was not given", r.returncode != 0, r.stdout)

        ctx = client_ctx(pki)
        c, status, body = https_get(app.port, ctx)
        check("Python ssl (hostname checked) gets 200", status == 200 and body == b"Hello, World!", (status, body))
        c.close()
        _, status, body = https_get(app.port, ctx, host="127.0.0.1")
        check("an IP address SAN verifies too", status == 200, status)

        with socket.create_connection(("127.0.0.1", app.port), timeout=T) as raw:
            alpn = client_ctx(pki)
            alpn.set_alpn_protocols(["h2", "http/1.1"])
            with alpn.wrap_socket(raw, server_hostname="localhost") as s:
                check("ALPN picks http/1.1 over h2", s.selected_alpn_protocol() == "http/1.1",
                      s.selected_alpn_protocol())
                check("TLS 1.3 is negotiated by default", s.version() == "TLSv1.3", s.version())

        old = client_ctx(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", app.port), timeout=T) as raw:
            with old.wrap_socket(raw, server_hostname="localhost") as s:
                check("TLS 1.2 is accepted", s.version() == "TLSv1.2", s.version())
        ancient = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ancient.load_verify_locations(pki.path("ca.pem"))
        ancient.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ancient.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ancient.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        refused = False
        try:
            with socket.create_connection(("127.0.0.1", app.port), timeout=T) as raw:
                with ancient.wrap_socket(raw, server_hostname="localhost"):
                    pass
        except (ssl.SSLError, ConnectionError, OSError):
            refused = True
        check("TLS 1.1 is refused", refused)

        # A client that connects and never sends a ClientHello is cut at
        # tls_handshake_timeout (below, a server started with 200ms).
    finally:
        code, err = app.stop()
        check("SIGTERM drains a TLS server to exit 0", code == 0, err[-500:])


def test_handshake_timeout(hello, pki):
    app = App(hello, "--tls-cert", pki.path("good.pem"), "--tls-key", pki.path("good.key"),
              "--tls-handshake-timeout", "200ms")
    try:
        with socket.create_connection(("127.0.0.1", app.port), timeout=T) as raw:
            start = time.monotonic()
            try:
                data = raw.recv(1)
            except ConnectionResetError:
                data = b""
            took = time.monotonic() - start
            check("a client that never sends a ClientHello is closed", data == b"", data)
            check("... after about tls_handshake_timeout", 0.1 <= took < T / 2, f"{took:.3f}s")
        # The server is unharmed: a real client still gets through.
        _, status, _ = https_get(app.port, client_ctx(pki))
        check("the next client is served", status == 200, status)
    finally:
        app.stop()


def test_wrong_host(hello, pki):
    app = App(hello, "--tls-cert", pki.path("wronghost.pem"), "--tls-key", pki.path("wronghost.key"))
    try:
        r = curl(app.port, pki, "ca.pem")
        check("curl rejects a certificate for another host", r.returncode == 60, f"rc={r.returncode} {r.stderr!r}")
        rejected = False
        try:
            https_get(app.port, client_ctx(pki))
        except ssl.SSLCertVerificationError as e:
            rejected = "Hostname mismatch" in str(e) or "doesn't match" in str(e) or "IP address mismatch" in str(e)
            print("     (python: " + str(e)[:120] + ")")
        check("Python ssl rejects a certificate for another host", rejected)
    finally:
        app.stop()


def test_startup_refusals(hello, pki):
    exp = pki.path("expired.pem")
    code, out, err = startup_failure(hello, "--tls-cert", exp, "--tls-key", pki.path("expired.key"))
    check("an expired certificate fails startup with exit 2", code == 2, (code, err))
    check("... naming the file", exp in err and "expired" in err, err)
    check("... and prints no listening line", "listening" not in out, out)

    key = pki.path("other.key")
    code, out, err = startup_failure(hello, "--tls-cert", pki.path("good.pem"), "--tls-key", key)
    check("a key that does not match fails startup with exit 2", code == 2, (code, err))
    check("... naming the key file", key in err and "does not match" in err, err)

    missing = pki.path("absent.pem")
    code, out, err = startup_failure(hello, "--tls-cert", missing, "--tls-key", pki.path("good.key"))
    check("a certificate file that does not exist fails startup, naming it", code == 2 and missing in err, (code, err))

    garbage = pki.path("garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    code, out, err = startup_failure(hello, "--tls-cert", garbage, "--tls-key", pki.path("good.key"))
    check("a file that is not PEM fails startup, naming it", code == 2 and garbage in err, (code, err))

    code, out, err = startup_failure(hello, "--tls-cert", pki.path("good.pem"))
    check("a certificate without a key is refused", code == 2 and "--tls-key" in err, (code, err))

    env = dict(os.environ, KEEL_TLS_CERT=pki.path("good.pem"), KEEL_TLS_KEY=pki.path("good.key"))
    p = subprocess.Popen([hello, "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=T)
    check("KEEL_TLS_CERT/KEEL_TLS_KEY enable TLS", line.startswith("listening on https://"), line)

    cfg = pki.path("app.json")
    with open(cfg, "w") as f:
        json.dump({"tls_cert": pki.path("good.pem"), "tls_key": pki.path("good.key")}, f)
    p = subprocess.Popen([hello, "--listen", "127.0.0.1:0", "--config", cfg], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=T)
    check("tls_cert/tls_key in the config file enable TLS", line.startswith("listening on https://"), line)


def test_reload(hello, pki):
    # The server reads these paths; the test swaps what they hold.
    cert, key = pki.path("live.pem"), pki.path("live.key")
    shutil.copy(pki.path("good.pem"), cert)
    shutil.copy(pki.path("good.key"), key)
    app = App(hello, "--tls-cert", cert, "--tls-key", key, "--idle-timeout", "30s")
    try:
        ctx1, ctx2 = client_ctx(pki, "ca.pem"), client_ctx(pki, "ca2.pem")
        before = fingerprint(app.port, ctx1)
        kept, status, _ = https_get(app.port, ctx1)  # a kept-alive connection from before the reload
        check("before the reload the first certificate is served", status == 200, status)

        shutil.copy(pki.path("good2.pem"), cert)
        shutil.copy(pki.path("good2.key"), key)
        app.p.send_signal(signal.SIGHUP)
        after, deadline = None, time.monotonic() + T
        while time.monotonic() < deadline:
            try:
                after = fingerprint(app.port, ctx2)
                break
            except ssl.SSLError:
                time.sleep(0.05)  # polling for the reload, bounded by the deadline
        check("after SIGHUP a new connection gets the new certificate", after is not None and after != before)

        kept.request("GET", "/plaintext")
        r = kept.getresponse()
        check("the connection opened before the reload keeps working", r.status == 200 and r.read() == b"Hello, World!")
        kept.close()

        # A failed reload logs and keeps what works.
        with open(key, "w") as f:
            f.write("broken\n")
        app.p.send_signal(signal.SIGHUP)
        check("the failed reload is logged", app.wait_log("TLS reload failed"))
        still = fingerprint(app.port, ctx2)
        check("a reload that fails keeps the certificate in use", still == after)
        check("the server still runs after a failed reload", app.p.poll() is None)
    finally:
        code, err = app.stop()
        check("the failed reload was logged, naming the file",
              "TLS reload failed" in err and key in err, err[-800:])


async def ws_flows(hello, chat, pki):
    ctx = client_ctx(pki)
    app = App(hello, "--tls-cert", pki.path("good.pem"), "--tls-key", pki.path("good.key"))
    try:
        async with websockets.connect(f"wss://localhost:{app.port}/ws/echo", ssl=ctx, open_timeout=T,
                                      close_timeout=T) as ws:
            await ws.send("hello over wss")
            got = await asyncio.wait_for(ws.recv(), T)
            check("python3-websockets echo over wss (text)", got == "hello over wss", got)
            await ws.send(b"\x00\x01binary")
            got = await asyncio.wait_for(ws.recv(), T)
            check("python3-websockets echo over wss (binary)", got == b"\x00\x01binary", got)
            big = "x" * 60000
            await ws.send(big)
            got = await asyncio.wait_for(ws.recv(), T)
            check("a 60 kB message crosses TLS records intact", got == big, len(got))
        # Drain closes an open wss session with 1001 after its queue.
        ws = await websockets.connect(f"wss://localhost:{app.port}/ws/echo", ssl=ctx, open_timeout=T,
                                      close_timeout=T)
        app.p.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), T)
            code = None
        except websockets.exceptions.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
        check("drain closes a wss session with 1001", code == 1001, code)
    finally:
        rc, err = app.stop()
        check("hello exits 0 after draining wss", rc == 0, err[-500:])

    app = App(chat, "--tls-cert", pki.path("good.pem"), "--tls-key", pki.path("good.key"))
    try:
        async with websockets.connect(f"wss://localhost:{app.port}/ws?room=r1&name=ann", ssl=ctx,
                                      open_timeout=T, close_timeout=T) as ws:
            joined = json.loads(await asyncio.wait_for(ws.recv(), T))
            check("chat over wss: joined", joined.get("type") == "joined" and joined.get("room") == "r1", joined)
            await ws.send(json.dumps({"type": "message", "text": "hi"}))
            msg = json.loads(await asyncio.wait_for(ws.recv(), T))
            check("chat over wss: own message comes back", msg.get("type") == "message" and msg.get("text") == "hi",
                  msg)
            # Server-Sent Events over TLS: the room's stream carries the next message.
            sse = socket.create_connection(("127.0.0.1", app.port), timeout=T)
            s = ctx.wrap_socket(sse, server_hostname="localhost")
            s.sendall(b"GET /api/rooms/r1/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            check("chat SSE over TLS answers 200 text/event-stream",
                  head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head, head[:200])
            await ws.send(json.dumps({"type": "message", "text": "via sse"}))
            body = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
            deadline = time.monotonic() + T
            while b"via sse" not in body and time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                body += chunk
            check("chat SSE over TLS delivers the event", b"event: message" in body and b"via sse" in body, body[:300])
            s.close()
        status_line = ""
        c = http.client.HTTPSConnection("localhost", app.port, context=ctx, timeout=T)
        c.request("GET", "/")
        r = c.getresponse()
        status_line = r.status
        check("chat page over https", status_line == 200 and b"<html" in r.read().lower(), status_line)
    finally:
        rc, err = app.stop()
        check("chat exits 0 after draining", rc == 0, err[-500:])


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    hello, chat = sys.argv[1], sys.argv[2]
    d = tempfile.mkdtemp(prefix="keel-tls-")
    try:
        pki = PKI(d)
        test_good_certificate(hello, pki)
        test_handshake_timeout(hello, pki)
        test_wrong_host(hello, pki)
        test_startup_refusals(hello, pki)
        test_reload(hello, pki)
        asyncio.run(ws_flows(hello, chat, pki))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed: " + "; ".join(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
