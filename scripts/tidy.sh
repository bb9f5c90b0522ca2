#!/usr/bin/env bash
# scripts/tidy.sh: clang-tidy 14 with the checked-in .clang-tidy over keel's
# sources, using build/fuzz/compile_commands.json (the clang-built preset, so
# the flags are clang's). Prints the warnings and a count per file and check;
# exits 1 when there is any warning. About 40 s per file on this machine.
#
#   scripts/tidy.sh [--jobs N] [--analyzer] [FILE...]
#   --analyzer   also the clang static analyzer's clang-analyzer-* checks (slower)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=2
checks=()
files=()
while (($#)); do
  case $1 in
    --jobs) jobs=$2; shift ;;
    --analyzer) checks=(--checks='clang-analyzer-*,-clang-analyzer-cplusplus.NewDeleteLeaks') ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) files+=("$1") ;;
  esac
  shift
done
db=build/fuzz/compile_commands.json
if [[ ! -f $db ]]; then
  cmake --preset fuzz >/dev/null
fi
tidy=$(command -v clang-tidy-14 || command -v clang-tidy)
if ((${#files[@]} == 0)); then
  mapfile -t files < <(python3 -c '
import json, sys
seen = set()
for e in json.load(open(sys.argv[1])):
    f = e["file"]
    if "/build/" in f or f.endswith("boost_impl.cpp") or f in seen: continue
    seen.add(f); print(f)' "$db" | sort)
fi
out=build/fuzz/tidy
mkdir -p "$out"
rm -f "$out"/*.log
start=$SECONDS
# --checks is appended to .clang-tidy's Checks (the analyzer), it does not replace it.
tidy_one() {
  local f=$1 log
  log=$out/$(sed "s|^$root/||; s|/|_|g" <<<"$f").log
  "$tidy" -p "$db" --quiet "${checks[@]}" "$f" > "$log" 2>&1 || true
}
export -f tidy_one
export tidy db out root
export checks_str="${checks[*]:-}"
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} bash -c 'checks=($checks_str); tidy_one "$1"' _ {}
cat "$out"/*.log | grep -E '^/.*: (warning|error): ' | sort -u > "$out/warnings.txt" || true
n=$(wc -l < "$out/warnings.txt")
if ((n)); then
  cat "$out/warnings.txt"
  echo "--- by file and check"
  sed -E 's|^'"$root"'/||; s|^([^:]*):[0-9]+:[0-9]+: [a-z]+: .*\[([^]]*)\]$|\1 \2|' "$out/warnings.txt" | sort | uniq -c | sort -rn
fi
echo "tidy: ${#files[@]} files, $n warnings, $((SECONDS - start))s"
((n == 0))
