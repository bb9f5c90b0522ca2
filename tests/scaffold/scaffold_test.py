#!/usr/bin/python3
"""ctest scaffold_test: `keel new` and `keel add` as a user runs them, against an installed keel.

usage: scaffold_test.py KEEL_BUILD_DIR [WORK_DIR]

WORK_DIR defaults to a fresh temporary directory (outside the source tree), removed when
every check passed. Installs the build tree into WORK_DIR/prefix; checks that each bad input gets a clear
message, exit status 2 and writes nothing; then for every template generates a project
in WORK_DIR/projects (outside the source tree), builds and tests it with the commands its
README gives, starts it on port 0, calls its routes (a WebSocket message for `websocket`),
sends SIGTERM and expects exit 0. Finally `keel add middleware` and `keel add handler` on
the minimal project, rebuilt and retested. Exit 0 when every check passed.
"""
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

build_dir = os.path.abspath(sys.argv[1])
work = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="keel-scaffold-")
prefix, projects = os.path.join(work, "prefix"), os.path.join(work, "projects")
failures = []


def check(label, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + label + ("" if cond else f"  {detail}"), flush=True)
    if not cond:
        failures.append(label)


def run(cmd, cwd=None, env=None, timeout=600):
    t0 = time.time()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"  $ {' '.join(cmd)}  ({r.returncode}, {time.time() - t0:.1f}s)", flush=True)
    return r


def tree(path):
    out = set()
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(root, n), path))
    return out


shutil.rmtree(work, ignore_errors=True)
os.makedirs(projects)
r = run(["cmake", "--install", build_dir, "--prefix", prefix])
if r.returncode != 0:
    print(r.stdout + r.stderr)
    sys.exit(1)
keel = os.path.join(prefix, "bin", "keel")
env = dict(os.environ, CMAKE_PREFIX_PATH=prefix)
if shutil.which("ccache"):
    env["CMAKE_CXX_COMPILER_LAUNCHER"] = "ccache"

# --- the command itself ---------------------------------------------------------
r = run([keel, "--version"])
check("keel --version prints keel and a version", r.returncode == 0 and re.fullmatch(r"keel \d+\.\d+\.\d+\n", r.stdout), r.stdout)
for args in (["help"], ["--help"], ["new", "--help"], ["add", "--help"], ["help", "new"]):
    r = run([keel] + args)
    check(f"keel {' '.join(args)} prints usage", r.returncode == 0 and "usage: keel" in r.stdout, r.stdout + r.stderr)
r = run([keel, "new", "--list"])
names = [l.split("\t")[0] for l in r.stdout.splitlines()]
check("keel new --list lists minimal, rest and websocket, one line each",
      r.returncode == 0 and names == ["minimal", "rest", "websocket"] and all("\t" in l for l in r.stdout.splitlines()), r.stdout)

# --- bad input: a clear message, exit 2, nothing written -------------------------
bad = os.path.join(work, "bad")
os.makedirs(os.path.join(bad, "taken"))
open(os.path.join(bad, "taken", "file.txt"), "w").write("mine\n")
before = tree(bad)
cases = [
    (["new", "Bad_Name"], "lowercase letters"),
    (["new", "9lives"], "starting with a letter"),
    (["new", "a/b"], "lowercase letters"),
    (["new", "class"], "reserved"),
    (["new", "ok-name", "--template", "nope"], "minimal, rest, websocket"),
    (["new", "taken"], "already exists and is not an empty directory"),
    (["new", "ok-name", "--dir", os.path.join(bad, "missing")], "does not exist"),
    (["new"], "name is required"),
    (["new", "ok-name", "--frobnicate"], "unknown option --frobnicate"),
    (["add", "middleware", "audit"], "keel add runs inside a project made by `keel new`"),
    (["frobnicate"], "unknown command"),
]
for args, expect in cases:
    r = run([keel] + args, cwd=bad)
    check(f"keel {' '.join(args)}: exit 2 with a message saying {expect!r}",
          r.returncode == 2 and expect in r.stderr, f"exit {r.returncode}: {r.stderr.strip()}")
check("bad input wrote nothing", tree(bad) == before, str(tree(bad) ^ before))


# --- every template, built and run as its README says ------------------------------
def http(port, path, method="GET", body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def start(project, name):
    p = subprocess.Popen([os.path.join(project, "build", name), "--config", "config/app.json", "--listen",
                          "127.0.0.1:0", "--threads", "2"], cwd=project, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", line)
    check(f"{name} prints its listening line", m is not None, repr(line))
    return p, int(m.group(1)) if m else 0


def stop(p, name):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    check(f"{name} exits 0 on SIGTERM", rc == 0, f"exit {rc}")


async def ws_exchange(port):
    import websockets
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?room=r") as a, \
            websockets.connect(f"ws://127.0.0.1:{port}/ws?room=r") as b:
        ja, jb = json.loads(await a.recv()), json.loads(await b.recv())
        await a.send("hi from a")
        got = json.loads(await asyncio.wait_for(b.recv(), 10))
        return ja["type"] == "joined" and jb["type"] == "joined" and got == {"type": "message", "text": "hi from a"}


def without_hiredis():
    """The environment with hiredis hidden from pkg-config (every other .pc file still found):
    a project that does not use Redis must configure and build on a machine without it."""
    shadow = os.path.join(work, "pkgconfig-without-hiredis")
    os.makedirs(shadow, exist_ok=True)
    pc_path = run(["pkg-config", "--variable", "pc_path", "pkg-config"]).stdout.strip()
    for d in pc_path.split(":"):
        for f in (os.listdir(d) if os.path.isdir(d) else []):
            if f.endswith(".pc") and not f.startswith("hiredis") and not os.path.exists(os.path.join(shadow, f)):
                os.symlink(os.path.join(d, f), os.path.join(shadow, f))
    hidden = dict(env, PKG_CONFIG_LIBDIR=shadow, PKG_CONFIG_PATH="")
    check("hiredis is hidden from pkg-config in that environment",
          run(["pkg-config", "--exists", "hiredis"], env=hidden).returncode != 0
          and run(["pkg-config", "--exists", "libbrotlienc"], env=hidden).returncode == 0)
    return hidden


def build_and_test(project, label, env=env):
    r = run(["cmake", "--preset", "default"], cwd=project, env=env)
    ok = r.returncode == 0
    if ok:
        r = run(["cmake", "--build", "--preset", "default"], cwd=project, env=env)
        ok = r.returncode == 0
    check(f"{label}: cmake --preset default && cmake --build --preset default", ok, (r.stdout + r.stderr)[-3000:])
    if not ok:
        return False
    r = run(["ctest", "--preset", "default"], cwd=project, env=env)
    check(f"{label}: its own tests pass (ctest --preset default)", r.returncode == 0, (r.stdout + r.stderr)[-3000:])
    return r.returncode == 0


for tmpl in ("minimal", "rest", "websocket"):
    name = f"svc-{tmpl}"
    r = run([keel, "new", name, "--template", tmpl, "--dir", projects])
    project = os.path.join(projects, name)
    check(f"keel new {name} --template {tmpl}", r.returncode == 0 and os.path.isfile(os.path.join(project, "CMakeLists.txt")),
          r.stderr)
    for f in ("CMakePresets.json", "README.md", "Dockerfile", ".gitignore", "config/app.json", "src/main.cpp"):
        check(f"{name} has {f}", os.path.isfile(os.path.join(project, f)))
    if tmpl == "websocket":
        # The deploy files of apps/chat/deploy, for the generated service (rooms through Redis in dev).
        for overlay in ("dev", "prod"):
            path = os.path.join(project, "deploy", "k8s", "overlays", overlay)
            check(f"{name} has deploy/k8s/overlays/{overlay}", os.path.isfile(os.path.join(path, "kustomization.yaml")))
            if os.path.exists("/usr/bin/kubectl"):
                k = run(["/usr/bin/kubectl", "kustomize", path], timeout=60)
                check(f"{name}: kubectl kustomize renders the {overlay} overlay for it",
                      k.returncode == 0 and f"name: {name}\n" in k.stdout and "{{" not in k.stdout.replace("{{ ", ""),
                      k.stderr[-2000:])
    leftovers = [n for n in os.listdir(projects) if "keel-new" in n]
    check(f"{name}: no temporary directory left", not leftovers, str(leftovers))
    readme = open(os.path.join(project, "README.md")).read()
    check(f"{name}: README gives the build-and-run and the test command",
          f"./build/{name}" in readme and "cmake --workflow --preset default" in readme)
    # Only the websocket template uses Redis (keel::redis): the others build without hiredis.
    if not build_and_test(project, name + ("" if tmpl == "websocket" else " (no hiredis)"),
                          env if tmpl == "websocket" else without_hiredis()):
        continue
    p, port = start(project, name)
    if port:
        for path in ("/healthz", "/readyz", "/metrics"):
            st, _ = http(port, path)
            check(f"{name}: {path} 200", st == 200, str(st))
        if tmpl == "minimal":
            st, body = http(port, "/hello/world")
            check(f"{name}: GET /hello/world", st == 200 and json.loads(body)["message"] == "Hello, world!", f"{st} {body}")
        if tmpl == "rest":
            auth = {"Authorization": "Bearer dev-token-change-me", "Content-Type": "application/json"}
            st, body = http(port, "/api/items", "POST", b'{"name":"apple"}', auth)
            check(f"{name}: POST /api/items 201", st == 201 and json.loads(body)["name"] == "apple", f"{st} {body}")
            st, body = http(port, "/api/items", headers=auth)
            check(f"{name}: GET /api/items lists it", st == 200 and len(json.loads(body)["items"]) == 1, f"{st} {body}")
            st, _ = http(port, "/api/items")
            check(f"{name}: /api without a token is 401", st == 401, str(st))
        if tmpl == "websocket":
            st, body = http(port, "/")
            check(f"{name}: GET / serves the page", st == 200 and "new WebSocket" in body, str(st))
            try:
                ok = asyncio.run(asyncio.wait_for(ws_exchange(port), 20))
            except Exception as e:  # a failed exchange is a failed check, with its reason
                ok, why = False, repr(e)
            check(f"{name}: a WebSocket message goes from one member to the other", ok, "" if ok else why)
    stop(p, name)

# --- keel add, inside a generated project ----------------------------------------------
project = os.path.join(projects, "svc-minimal")
if os.path.isdir(os.path.join(project, "build")):
    r = run([keel, "add", "middleware", "audit_log"], cwd=os.path.join(project, "src"))
    check("keel add middleware audit_log (from a subdirectory) says what it changed",
          r.returncode == 0 and "created src/audit_log.cpp" in r.stdout and "CMakeLists.txt" in r.stdout, r.stdout + r.stderr)
    r = run([keel, "add", "handler", "status_page"], cwd=project)
    check("keel add handler status_page", r.returncode == 0 and "created tests/status_page_test.cpp" in r.stdout,
          r.stdout + r.stderr)
    before = tree(project)
    cmake_before = open(os.path.join(project, "CMakeLists.txt")).read()
    for args, expect in ((["add", "handler", "status_page"], "already exists"),
                         (["add", "handler", "Bad-Name"], "lowercase letters"),
                         (["add", "widget", "w"], "middleware or a handler")):
        r = run([keel] + args, cwd=project)
        check(f"keel {' '.join(args)}: exit 2 with {expect!r}", r.returncode == 2 and expect in r.stderr,
              f"exit {r.returncode}: {r.stderr.strip()}")
    check("refused keel add wrote nothing", tree(project) == before and
          open(os.path.join(project, "CMakeLists.txt")).read() == cmake_before)
    if build_and_test(project, "svc-minimal after keel add"):
        r = run([os.path.join(project, "build", "svc_minimal_tests"), "--list-test-names-only"], cwd=project)
        check("the added tests run with the project's", "audit_log stamps the responses it sees" in r.stdout and
              "status_page answers with JSON" in r.stdout, r.stdout)

print(f"scaffold: {len(failures)} failed" + (": " + "; ".join(failures) if failures else ""))
if not failures and len(sys.argv) <= 2:
    shutil.rmtree(work, ignore_errors=True)
elif failures:
    print(f"scaffold: the projects are kept in {projects}")
sys.exit(1 if failures else 0)
