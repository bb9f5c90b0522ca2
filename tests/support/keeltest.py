"""Shared helpers for keel's Python tests: free ports, app and nginx processes,
bounded polling, raw HTTP over sockets, /metrics, /proc figures.

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
    import keeltest as kt

Every wait here is bounded (`T` seconds unless told); polling loops sleep a
poll interval, never a timeout. Traffic goes to 127.0.0.1 only.
"""
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

T = 10  # seconds, for every single wait
SKIP = 77  # ctest SKIP_RETURN_CODE
failures = []


def check(label, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + label + ("" if cond else f"  {detail}"), flush=True)
    if not cond:
        failures.append(label)
    return cond


def skip(why):
    print("SKIP: " + why, flush=True)
    sys.exit(SKIP)


def finish():
    """Exit 1 naming the failed checks, else 0."""
    if failures:
        print(f"{len(failures)} check(s) failed: " + "; ".join(failures), flush=True)
        sys.exit(1)
    print("all checks passed", flush=True)
    sys.exit(0)


def rng():
    """A random.Random seeded from KEEL_TEST_SEED, fixed under CI=true, else fresh; it prints the seed."""
    seed = os.environ.get("KEEL_TEST_SEED")
    if seed is None:
        seed = "1313" if os.environ.get("CI") == "true" else str(random.SystemRandom().randrange(1 << 30))
    print(f"seed {seed} (KEEL_TEST_SEED={seed} repeats this run)", flush=True)
    return random.Random(int(seed))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def eventually(pred, timeout=T, interval=0.01):
    """pred()'s first true value, or its last value once `timeout` passed."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(interval)  # a poll interval, not a timeout


def http_get(port, path, headers=None, timeout=T):
    """(status, body bytes) of one GET on a fresh connection; status 0 when it failed."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def metric(port, name):
    """Sum of the series of `name` in /metrics: every label set, or the one spelled out
    (`keel_http_requests_total{method="GET",route="/x",status="200"}`). None when unreachable."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or ("{" not in name and line.startswith(name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_seconds(pid):
    """utime + stime of a process (and its threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def socket_count(pid):
    """The process's socket descriptors: listeners and connections (not its timers and pipes)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return n


class App:
    """A keel app as a child process on a free port (`--listen 127.0.0.1:0`): waits for its
    `listening on http://…` line, keeps its stderr (the JSON log) in a file that can be
    polled while it runs. `preexec` runs in the child before exec (e.g. resource limits)."""

    def __init__(self, argv, scheme="http", env=None, preexec=None, listen=True):
        self.log = tempfile.NamedTemporaryFile(mode="w+", prefix="keel-test-log-", delete=False)
        args = list(argv) + (["--listen", "127.0.0.1:0"] if listen else [])
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                  env=env, preexec_fn=preexec)
        self.pid = self.p.pid
        line = self._first_line()
        m = re.fullmatch(scheme + r"://127\.0\.0\.1:(\d+)\n", line.replace("listening on ", "", 1)) \
            if line.startswith("listening on ") else None
        if not m:
            self.kill()
            raise RuntimeError(f"{argv[0]}: bad listening line {line!r}: {self.stderr()[-2000:]}")
        self.port = int(m.group(1))

    def _first_line(self):
        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        ready = sel.select(T)
        sel.close()
        return self.p.stdout.readline() if ready else ""

    def stderr(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def log_lines(self, msg=None):
        """The JSON log's lines (those whose msg is `msg`, when given), parsed."""
        import json
        out = []
        for line in self.stderr().splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if msg is None or o.get("msg") == msg:
                out.append(o)
        return out

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(T)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(T)
        self.p.stdout.close()
        return self.p.returncode

    def stop(self):
        """SIGTERM (drain), bounded; returns (exit code, stderr) and removes the log file."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(T + 5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(T)
        self.p.stdout.close()
        err = self.stderr()
        os.unlink(self.log.name)
        return self.p.returncode, err


NGINX = "/usr/sbin/nginx"


class Nginx:
    """Debian's nginx on a free port as an HTTP/1.1 reverse proxy to `upstream_ports`, with
    keep-alive upstream connections (`keepalive` idle ones kept per worker). Logs and temp
    files stay in `tmp`; the access log is `tmp/access.log`."""

    def __init__(self, tmp, upstream_ports, keepalive=16, extra_http="", extra_location="", log_format=None):
        self.port, self.dir = free_port(), tmp
        log = f"{tmp}/access.log" + (" keeltest" if log_format else "")
        if log_format:
            extra_http = f"  log_format keeltest '{log_format}';\n" + extra_http
        servers = "".join(f"    server 127.0.0.1:{p};\n" for p in upstream_ports)
        conf = (("user root root;\n" if os.geteuid() == 0 else "") +
                f"worker_processes 1;\ndaemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log info;\n"
                "events { worker_connections 512; }\n"
                "http {\n"
                f"{extra_http}  access_log {log};\n  client_body_temp_path {tmp}/body;\n"
                f"  proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n"
                f"  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n"
                f"  upstream app {{\n{servers}    keepalive {keepalive};\n  }}\n"
                f"  server {{\n    listen 127.0.0.1:{self.port};\n"
                "    proxy_connect_timeout 2s;\n"
                "    location / {\n      proxy_pass http://app;\n      proxy_http_version 1.1;\n"
                f"      proxy_set_header Connection \"\";\n{extra_location}    }}\n  }}\n}}\n")
        with open(f"{tmp}/nginx.conf", "w") as f:
            f.write(conf)
        self.p = subprocess.Popen([NGINX, "-p", tmp + "/", "-e", f"{tmp}/error.log", "-c", f"{tmp}/nginx.conf"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not eventually(lambda: port_open(self.port) or self.p.poll() is not None) or self.p.poll() is not None:
            raise RuntimeError("nginx did not start: " + self.error_log())

    def access_log(self):
        try:
            with open(f"{self.dir}/access.log", errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def error_log(self):
        try:
            with open(f"{self.dir}/error.log") as e:
                return e.read()
        except OSError:
            return ""

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(T)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(T)


def connect(port, timeout=T):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_close(s, timeout=T, limit=1 << 20):
    """Everything the peer sends until it closes (or `timeout` passes: then `closed` is False)."""
    s.settimeout(0.2)
    data, end = b"", time.monotonic() + timeout
    while time.monotonic() < end and len(data) < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_responses(data):
    """The HTTP/1.1 responses in `data` as (status, headers dict lowercased, body), in order; sized
    bodies only (Content-Length, or none); the unparsed tail is dropped."""
    out = []
    while data.startswith(b"HTTP/1."):
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ")[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        if len(data) < end + 4 + n:
            break
        out.append((status, headers, data[end + 4:end + 4 + n]))
        data = data[end + 4 + n:]
    return out
