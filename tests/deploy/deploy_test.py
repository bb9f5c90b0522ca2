#!/usr/bin/python3
"""apps/chat/deploy against the app it deploys, offline.

usage: /usr/bin/python3 deploy_test.py PATH/TO/chat PATH/TO/apps/chat/deploy

- `kubectl kustomize` renders every overlay (no cluster needed); the Deployment's
  probes, ports, args, Prometheus annotations and grace period are checked against
  the app: the flags exist in `chat --help`, the probe paths answer 200 from a chat
  started with the rendered args and config, the grace period is above the preStop
  pause plus the drain timeout of the rendered app.json;
- `promtool check rules` and `promtool test rules` pass;
- every keel_* metric the rules and the dashboard query exists in a live /metrics
  scrape of chat (with a redis-server, after WebSocket and HTTP traffic).
Exits 77 (ctest: skipped) when kubectl, promtool, redis-server, PyYAML or
python3-websockets is missing, 1 on a failure.
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
import urllib.error
import urllib.request

try:
    import yaml
    import websockets
except ImportError as e:
    print(f"SKIP: {e.name} is missing (python3-yaml, python3-websockets)")
    sys.exit(77)
for tool in ("/usr/bin/kubectl", "/usr/bin/promtool", "/usr/bin/redis-server"):
    if not os.path.exists(tool):
        print(f"SKIP: {tool} is not installed (kubernetes-client, prometheus, redis-server)")
        sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from keeltest import T, check, failures, free_port  # noqa: E402,F401


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=T) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def duration_s(text):
    m = re.fullmatch(r"([0-9.]+)(ms|s|m|h)", text)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def start_chat(binary, args, env=None):
    p = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, **(env or {})})
    line = p.stdout.readline()
    m = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", line)
    if not m:
        p.kill()
        raise RuntimeError(f"chat {args} did not start: {line!r}")
    return p, int(m.group(1))


def stop_chat(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(T + 5)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def check_overlay(name, docs, binary, usage, tmp):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress"):
        check(f"{name}: renders a {kind}", kind in by_kind)
    dep = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "chat")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = next(x for x in spec["containers"] if x["name"] == "chat")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    args = c["args"]

    flags = [a.split("=")[0] for a in args if a.startswith("--")]
    check(f"{name}: every flag in args is one chat knows", all(f in usage for f in flags), flags)
    listen = args[args.index("--listen") + 1]
    listen_port = int(listen.rsplit(":", 1)[1])
    check(f"{name}: --listen's port is the container port", listen_port in ports.values(), (listen, ports))

    def probe_port(probe):
        p = probe["httpGet"]["port"]
        return ports[p] if isinstance(p, str) else p
    probes = {k: c.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    check(f"{name}: startup, readiness and liveness probes", all(probes.values()), probes)
    check(f"{name}: readiness is /readyz, liveness /healthz",
          probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
          and probes["livenessProbe"]["httpGet"]["path"] == "/healthz", probes)
    check(f"{name}: probes reach the listening port", all(probe_port(p) == listen_port for p in probes.values()))
    ann = pod["metadata"].get("annotations", {})
    check(f"{name}: Prometheus scrapes the listening port's /metrics",
          ann.get("prometheus.io/scrape") == "true" and int(ann.get("prometheus.io/port", 0)) == listen_port
          and ann.get("prometheus.io/path") == "/metrics", ann)

    # The config the pod mounts, and the drain timeout in it.
    cm_name = next(v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v)
    cm = next(d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == cm_name)
    app_json = json.loads(cm["data"]["app.json"])
    drain = duration_s(app_json.get("drain_timeout", "10s")) + duration_s(app_json.get("drain_delay", "0s"))
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(pre[1]) if pre[0] == "sleep" else 0
    grace = spec["terminationGracePeriodSeconds"]
    check(f"{name}: grace {grace} s > preStop {pause} s + drain {drain} s + a margin", grace >= pause + drain + 5,
          (grace, pause, drain))
    sc = c.get("securityContext", {})
    check(f"{name}: non-root, read-only root file system",
          spec.get("securityContext", {}).get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
          and sc.get("allowPrivilegeEscalation") is False, sc)
    check(f"{name}: requests and limits", all(k in c.get("resources", {}) for k in ("requests", "limits")))
    svc = next(d for d in by_kind["Service"] if d["metadata"]["name"] == "chat")
    tp = svc["spec"]["ports"][0]["targetPort"]
    check(f"{name}: the Service targets the container port", (ports.get(tp) if isinstance(tp, str) else tp)
          == listen_port, svc["spec"])
    ing = by_kind["Ingress"][0]
    check(f"{name}: the Ingress keeps WebSockets an hour",
          int(ing["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-read-timeout", 0)) >= 3600)
    env = {e["name"]: e["value"] for e in c.get("env", [])}
    if name == "dev":
        check("dev: a Redis Deployment and Service",
              any(d["metadata"]["name"] == "redis" for d in by_kind["Deployment"])
              and any(d["metadata"]["name"] == "redis" for d in by_kind["Service"]))
        redis_svc = next(d for d in by_kind["Service"] if d["metadata"]["name"] == "redis")
        check("dev: KEEL_REDIS names the Redis Service and its port",
              env.get("KEEL_REDIS") == f"redis://redis:{redis_svc['spec']['ports'][0]['port']}/0", env)
    check(f"{name}: KEEL_REDIS is a redis:// URL", env.get("KEEL_REDIS", "").startswith("redis://"), env)

    # The app started as the pod would start it (its port made local), probed as the kubelet would.
    conf = os.path.join(tmp, f"{name}-app.json")
    with open(conf, "w") as f:
        f.write(cm["data"]["app.json"])
    local = [("127.0.0.1:0" if a == listen else conf if a.endswith("app.json") else a) for a in args]
    p, port = start_chat(binary, local)
    for probe in probes.values():
        path = probe["httpGet"]["path"]
        check(f"{name}: {path} answers 200 from chat started with the pod's args", http_get(port, path)[0] == 200)
    check(f"{name}: chat drains and exits 0 on SIGTERM", stop_chat(p) == 0)


def metric_names(expr):
    names = set(re.findall(r"\b(keel_[a-z_]+)\b", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) else n
            for n in names}


async def traffic(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?room=r&name=n", open_timeout=T) as ws:
        await asyncio.wait_for(ws.recv(), T)
        await ws.send(json.dumps({"type": "message", "text": "hi"}))
        await asyncio.wait_for(ws.recv(), T)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, deploy = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="keel-deploy-")
    redis = None
    try:
        usage = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=T).stdout
        for name in ("dev", "prod"):
            r = subprocess.run(["/usr/bin/kubectl", "kustomize", os.path.join(deploy, "k8s", "overlays", name)],
                               capture_output=True, text=True, timeout=60)
            if not check(f"{name}: kubectl kustomize renders it offline", r.returncode == 0, r.stderr):
                continue
            check_overlay(name, [d for d in yaml.safe_load_all(r.stdout) if d], binary, usage, tmp)

        rules = os.path.join(deploy, "prometheus", "alerts.yml")
        r = subprocess.run(["/usr/bin/promtool", "check", "rules", rules], capture_output=True, text=True, timeout=60)
        check("promtool check rules", r.returncode == 0, r.stdout + r.stderr)
        r = subprocess.run(["/usr/bin/promtool", "test", "rules", "alerts_test.yml"], capture_output=True, text=True,
                           timeout=60, cwd=os.path.dirname(rules))
        check("promtool test rules", r.returncode == 0, r.stdout + r.stderr)

        wanted = set()
        for g in yaml.safe_load(open(rules))["groups"]:
            for rule in g["rules"]:
                wanted |= metric_names(rule["expr"])
        with open(os.path.join(deploy, "grafana", "chat-dashboard.json")) as f:
            for panel in json.load(f)["panels"]:
                for t in panel["targets"]:
                    wanted |= metric_names(t["expr"])

        rport = free_port()
        redis = subprocess.Popen(["/usr/bin/redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        p, port = None, None
        end = time.monotonic() + T
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", rport), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.01)  # a poll interval
        p, port = start_chat(binary, ["--listen", "127.0.0.1:0", "--redis", f"redis://127.0.0.1:{rport}/0"])
        asyncio.run(traffic(port))
        http_get(port, "/api/rooms")
        _, text = http_get(port, "/metrics")
        have = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        missing = sorted(wanted - have)
        check(f"the {len(wanted)} keel metrics the rules and dashboard query are all in a live scrape", not missing,
              missing)
        stop_chat(p)
    except Exception as e:
        check("the test ran to its end", False, repr(e))
    finally:
        if redis:
            redis.kill()
            redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
