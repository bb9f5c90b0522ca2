#!/usr/bin/env python3
"""Every public header compiles on its own (docs/architecture.md).

    scripts/check_headers.py [--jobs N] [ROOT]

For each public header (framework/include/keel/*.hpp, middleware's, redis's and
testing's public headers) compiles a one-line translation unit that includes only
that header, with `g++ -std=c++20 -fsyntax-only`, no precompiled header, and the
include paths and definitions an installed keel gives its users: keel's include
folders, the system's Boost, and keel_boost's PUBLIC definitions (read from
framework/CMakeLists.txt, so the two cannot drift). A header that compiles only
because the PCH or an earlier include brought in what it uses fails here. Needs
no build tree. Prints each failing header with the compiler's first errors;
exits 1 when there is one. Runs in CI (quickstart's `headers` stage).
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time

# The folders whose keel/ subtree is public, as installed (docs/building.md).
INCLUDE_DIRS = ["framework/include", "middleware/include", "redis/include", "testing/include"]
# The preset's warnings (CMakePresets.json, "base"), so a header clean here is clean in a build.
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"]
CXX = os.environ.get("KEEL_HEADER_CXX", "g++")


def public_headers(root):
    for inc in INCLUDE_DIRS:
        base = os.path.join(root, inc)
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith(".hpp"):
                    yield os.path.relpath(os.path.join(dirpath, f), base)


def boost_definitions(root):
    """keel_boost's PUBLIC definitions: every user's translation unit sees them."""
    with open(os.path.join(root, "framework", "CMakeLists.txt")) as f:
        text = f.read()
    m = re.search(r"target_compile_definitions\(keel_boost PUBLIC([^)]*)\)", text)
    if not m:
        sys.exit("check_headers: no target_compile_definitions(keel_boost PUBLIC ...) in framework/CMakeLists.txt")
    return ["-D" + d for d in m.group(1).split()]


def check(root, header, flags):
    """Compile `#include <header>` alone; returns (header, seconds, errors or None)."""
    start = time.monotonic()
    cmd = [CXX, "-std=c++20", "-fsyntax-only", *flags, "-x", "c++", "-"]
    proc = subprocess.run(cmd, input=f"#include <{header}>\n", text=True, capture_output=True, cwd=root)
    took = time.monotonic() - start
    return header, took, (proc.stderr if proc.returncode != 0 else None)


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("root", nargs="?", default=here)
    args = parser.parse_args()
    root = os.path.abspath(args.root)

    flags = WARNINGS + boost_definitions(root)
    flags += ["-I" + os.path.join(root, inc) for inc in INCLUDE_DIRS]
    headers = sorted(public_headers(root))
    failed = []
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for header, took, errors in pool.map(lambda h: check(root, h, flags), headers):
            if errors is None:
                print(f"ok      {header} ({took:.1f}s)", flush=True)
            else:
                failed.append(header)
                lines = errors.splitlines()
                print(f"FAILED  {header} ({took:.1f}s): does not compile on its own", flush=True)
                print("\n".join("    " + line for line in lines[:20]), flush=True)
                if len(lines) > 20:
                    print(f"    ... {len(lines) - 20} more lines", flush=True)
    took = time.monotonic() - start
    if failed:
        print(f"check_headers: {len(failed)} of {len(headers)} public headers do not compile alone "
              f"({took:.0f}s): {' '.join(failed)}")
        return 1
    print(f"check_headers: all {len(headers)} public headers compile alone ({took:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
