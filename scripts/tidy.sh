#!/usr/bin/env bash
# scripts/tidy.sh: clang-tidy 14 with the checked-in .clang-tidy over keel's
# framework/, middleware/ and redis/ sources (or the files given), with the flags of
# the clang-built `fuzz` preset (only configured, never built: its precompiled
# header is left out, the header it was made from is still included). Prints
# the warnings and a count per file and check; exits 1 when there is any.
#
#   scripts/tidy.sh [--jobs N] [--analyzer] [--no-cache] [FILE...]
#   --analyzer   also the clang static analyzer's clang-analyzer-* checks (slower)
#   --no-cache   re-check every file
#
# A file's result is cached in ${KEEL_TIDY_CACHE:-~/.cache/keel/tidy} under a
# hash of clang-tidy's version, .clang-tidy, the checks asked for and the
# file's preprocessed text, so an unchanged file costs one preprocessing (~1 s)
# instead of ~20 s of checks.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=2
checks=()
files=()
use_cache=1
while (($#)); do
  case $1 in
    --jobs) jobs=$2; shift ;;
    --analyzer) checks=(--checks='clang-analyzer-*,-clang-analyzer-cplusplus.NewDeleteLeaks') ;;
    --no-cache) use_cache=0 ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) files+=("$(realpath "$1")") ;;
  esac
  shift
done
if [[ ! -f build/fuzz/compile_commands.json ]]; then
  cmake --preset fuzz >/dev/null
fi
out=build/fuzz/tidy
mkdir -p "$out"
rm -f "$out"/*.log
db=$out/db
mkdir -p "$db"
python3 - build/fuzz/compile_commands.json "$db/compile_commands.json" <<'EOF'
import json, re, sys
entries = json.load(open(sys.argv[1]))
for e in entries:
    e["command"] = re.sub(r" -Xclang -include-pch -Xclang \S+", "", e["command"])
json.dump(entries, open(sys.argv[2], "w"), indent=0)
EOF
tidy=$(command -v clang-tidy-14 || command -v clang-tidy)
if ((${#files[@]} == 0)); then
  mapfile -t files < <(python3 -c '
import json, sys
root = sys.argv[2]
seen = set()
for e in json.load(open(sys.argv[1])):
    f = e["file"]
    if not f.startswith((root + "/framework/", root + "/middleware/", root + "/redis/")):
        continue
    if f.endswith("boost_impl.cpp") or f in seen: continue
    seen.add(f); print(f)' "$db/compile_commands.json" "$root" | sort)
fi
cache=${KEEL_TIDY_CACHE:-$HOME/.cache/keel/tidy}
mkdir -p "$cache"
salt=$( { "$tidy" --version; cat .clang-tidy; echo "${checks[*]:-}"; } | sha256sum | cut -c1-64)
start=$SECONDS
# The key's preprocessed text has no line markers and the root replaced (assert's
# __FILE__), so clones in other directories share the cache; so do the logs.
tidy_one() {
  local f=$1 log key cmd
  log=$out/$(sed "s|^$root/||; s|/|_|g" <<<"$f").log
  if [[ $use_cache == 1 ]]; then
    cmd=$(python3 -c '
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"] == sys.argv[2]:
        a = shlex.split(e["command"])
        i = a.index("-o"); del a[i:i + 2]
        a = [x for x in a if x != "-c"]
        print(shlex.join(a)); break' "$db/compile_commands.json" "$f")
    key=$( { echo "$salt ${f#"$root"/}"; (cd "$root/build/fuzz" && eval "$cmd -E -P") 2>&1 | sed "s|$root|@ROOT@|g"; } |
      sha256sum | cut -c1-64)
    if [[ -f $cache/$key ]]; then
      sed "s|@ROOT@|$root|g" "$cache/$key" > "$log"
      return
    fi
  fi
  "$tidy" -p "$db" --quiet "${checks[@]}" "$f" > "$log" 2>&1 || true
  # A run that could not parse the file is not a result worth keeping.
  if [[ $use_cache == 1 ]] && ! grep -q 'clang-diagnostic-error' "$log"; then
    sed "s|$root|@ROOT@|g" "$log" > "$cache/$key.tmp" && mv "$cache/$key.tmp" "$cache/$key"
  fi
}
export -f tidy_one
export tidy db out root cache salt use_cache
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
