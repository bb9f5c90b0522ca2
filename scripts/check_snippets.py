#!/usr/bin/env python3
"""Checks that code quoted in docs/ matches the code it quotes.

A quote in a Markdown file is a fenced block preceded by a marker line:

    <!-- snippet: middleware/src/defaults.cpp default-stack -->
    ```cpp
    ...
    ```

and the source file holds the same lines between two `// [default-stack]`
lines (compared after removing their common indentation).
usage: check_snippets.py REPO_ROOT   (exit 1 and a message per mismatch)
"""
import pathlib
import re
import sys
import textwrap

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
marker = re.compile(r"<!-- snippet: (\S+) (\S+) -->")
failures = 0
count = 0
for doc in sorted((root / "docs").rglob("*.md")):
    lines = doc.read_text().splitlines()
    for i, line in enumerate(lines):
        m = marker.search(line)
        if not m:
            continue
        count += 1
        path, name = m.group(1), m.group(2)
        where = f"{doc.relative_to(root)}:{i + 1}"
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            print(f"{where}: the snippet marker must be followed by a code fence")
            failures += 1
            continue
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        quoted = "\n".join(lines[i + 2:end]) if end else ""
        source = root / path
        if not source.exists():
            print(f"{where}: {path} does not exist")
            failures += 1
            continue
        src = source.read_text().splitlines()
        tag = f"// [{name}]"
        at = [k for k, l in enumerate(src) if l.strip() == tag]
        if len(at) != 2:
            print(f"{where}: {path} needs exactly two '{tag}' lines, has {len(at)}")
            failures += 1
            continue
        region = textwrap.dedent("\n".join(src[at[0] + 1:at[1]]))
        if region.strip("\n") != textwrap.dedent(quoted).strip("\n"):
            print(f"{where}: the quote of {path} [{name}] differs from the code; paste it again")
            failures += 1
print(f"check_snippets: {count} snippets, {failures} out of date")
sys.exit(1 if failures else 0)
