#!/usr/bin/env python3
"""The layer rules of docs/architecture.md, checked on every #include.

    scripts/check_layers.py [ROOT]

framework/src/ is in folders by concern, each allowed to reach only the layers
listed for it below; the public headers (framework/include/keel/, flat) belong
to a layer each, and their includes obey the same rules. middleware/ and
redis/ are built on the public headers only: no private framework header. The
framework never includes a middleware or Redis header. Prints each broken rule
with its file and line; exits 1 when there is one. Runs in CI (quickstart's
`layers` stage) and takes well under a second.
"""
import os
import re
import sys

# Each layer and the layers it may include from (besides itself), bottom up.
ALLOWED = {
    "base": set(),
    "core": {"base"},
    "http": {"base", "core"},
    "streaming": {"base", "core", "http"},
    "ws": {"base", "core", "http"},
    "client": {"base", "core", "http"},
    "server": {"base", "core", "http", "streaming", "ws", "client"},
    # Built on the public headers: any framework layer's, never a private one.
    "middleware": {"base", "core", "http", "streaming", "ws", "client", "server"},
    "redis": {"base", "core", "http", "streaming", "ws", "client", "server"},
}

# The layer each public header belongs to (framework/include/keel/<name>.hpp).
PUBLIC = {
    "base": "config error json log metrics net options utf8",
    "core": "backoff offload pool task_scope timeout",
    "http": "body_stream context middleware multipart request response router",
    "streaming": "sse static_files stream",
    "ws": "hub ws ws_client",
    "client": "http_client",
    "server": "app server",
}
PUBLIC_LAYER = {name: layer for layer, names in PUBLIC.items() for name in names.split()}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def sources(folder):
    for dirpath, _, files in os.walk(folder):
        for f in sorted(files):
            if f.endswith((".cpp", ".hpp")):
                yield os.path.join(dirpath, f)


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    src = os.path.join(root, "framework", "src")
    public = os.path.join(root, "framework", "include", "keel")
    problems = []

    layers = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for d in layers:
        if d not in ALLOWED:
            problems.append(f"framework/src/{d}/: a folder with no layer rule (add it to scripts/check_layers.py "
                            "and docs/architecture.md)")
    loose = [f for f in os.listdir(src) if os.path.isfile(os.path.join(src, f)) and f != "pch.hpp"]
    for f in loose:
        problems.append(f"framework/src/{f}: every source lives in a layer's folder")
    for f in os.listdir(public):
        name = f[:-4] if f.endswith(".hpp") else f
        if name not in PUBLIC_LAYER and os.path.isfile(os.path.join(public, f)):
            problems.append(f"framework/include/keel/{f}: a public header with no layer (add it to PUBLIC)")

    # (file, its layer, whether private framework headers are visible to it)
    files = [(p, os.path.relpath(p, src).split(os.sep)[0], True) for d in layers for p in sources(os.path.join(src, d))]
    files += [(os.path.join(public, f), PUBLIC_LAYER.get(f[:-4]), False) for f in sorted(os.listdir(public))
              if f.endswith(".hpp")]
    for lib in ("middleware", "redis"):
        for sub in ("src", "include"):
            files += [(p, lib, False) for p in sources(os.path.join(root, lib, sub))]

    for path, layer, private_ok in files:
        if layer is None:
            continue
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                quote, target = m.groups()
                if quote == '"':
                    head = target.split("/")[0]
                    if head in ALLOWED and head not in ("middleware", "redis") and "/" in target:
                        if not private_ok:
                            problems.append(f"{rel}:{n}: includes the framework's private \"{target}\" "
                                            "(only keel's public headers are open to it)")
                        elif head != layer and head not in ALLOWED[layer]:
                            problems.append(f"{rel}:{n}: {layer}/ may not include {head}/ (\"{target}\")")
                    continue
                if not target.startswith("keel/"):
                    continue
                name = target[len("keel/"):]
                if name.startswith(("middleware/", "redis", "testing")):
                    if private_ok or rel.startswith("framework/"):
                        problems.append(f"{rel}:{n}: the framework never includes <{target}>")
                    continue
                owner = PUBLIC_LAYER.get(name[:-4] if name.endswith(".hpp") else name)
                if owner and owner != layer and owner not in ALLOWED[layer]:
                    problems.append(f"{rel}:{n}: {layer} may not include <{target}> (layer {owner})")

    for p in problems:
        print(p)
    print(f"check_layers: {len(files)} files, {len(problems)} broken rules")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
