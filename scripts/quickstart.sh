#!/usr/bin/env bash
# keel's two entry points, as the README shows them (run as root):
#
#   ./scripts/quickstart.sh run [hello flags...]
#       install the packages, configure and build the `default` preset, then
#       run the hello app in the foreground (flags go to it, e.g. --listen).
#
#   ./scripts/quickstart.sh test
#       install the packages (with the browser), then
#         layers:         the include rules of docs/architecture.md (scripts/check_layers.py)
#         headers:        each public header compiles alone (scripts/check_headers.py)
#         default preset: configure and build (stages of their own), the whole ctest suite
#         asan preset:    ASan+UBSan build (clang 14, with the fuzz targets), ctest labels core|websocket
#         tsan preset:    TSan build, ctest label concurrency
#         fuzz:           every libFuzzer target of the asan tree for KEEL_FUZZ_SECONDS (60)
#         tidy:           clang-tidy over framework/, middleware/ and redis/, zero warnings
#       and print the time each stage took. Exits non-zero if any stage fails;
#       every stage runs even after an earlier one failed, so one run shows all.
#
# Nothing here asks questions; with CI=true it is the same, minus colour.
# Set KEEL_FAIL_FAST=1 to stop `test` at the first failing stage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

if [[ "${CI:-}" == "true" ]]; then
  export CLICOLOR_FORCE=0 NO_COLOR=1
fi
export DEBIAN_FRONTEND=noninteractive

# ccache (used automatically when installed) skips every source compiled with
# a precompiled header unless told these are fine; the base dir makes hits
# independent of where the repo is cloned (CI clones afresh each run).
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}"
if [[ "${CI:-}" == "true" ]]; then
  export CCACHE_NOHASHDIR=1
fi

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

stage_names=()
stage_times=()
stage_results=()
total_passed=0
total_failed=0
total_skipped=0

# Add a ctest log's counts to the totals: "NN% tests passed, F tests failed out
# of T", minus the tests listed as (Skipped) under "did not run".
count_tests() {
  local log=$1 line total failed skipped
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  [[ -n "$line" ]] || return 0
  failed=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  skipped=$(grep -cE '\(Skipped\)$' "$log" || true)
  total_failed=$((total_failed + failed))
  total_skipped=$((total_skipped + skipped))
  total_passed=$((total_passed + total - failed - skipped))
}

# stage NAME COMMAND...: run, time and record one stage; output is also kept in
# build/quickstart-NAME.log so its test counts can be summed.
stage() {
  local name=$1; shift
  local log="$root/build/quickstart-$name.log" start rc
  mkdir -p "$root/build"
  printf '\n==> [%s] %s\n' "$name" "$*"
  start=$SECONDS
  set +e
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  local took=$((SECONDS - start))
  stage_names+=("$name")
  stage_times+=("$took")
  if ((rc != 0)); then
    stage_results+=("FAILED (exit $rc)")
  elif grep -q '^No tests were found' "$log"; then
    stage_results+=("ok, but NO TESTS")  # e.g. a sanitizer label nobody uses yet
  else
    stage_results+=("ok")
  fi
  printf '==> [%s] %s in %s\n' "$name" "${stage_results[-1]}" "$(fmt_time "$took")"
  count_tests "$log"
  return "$rc"
}

summary() {
  local i
  printf '\n==> quickstart summary\n'
  for i in "${!stage_names[@]}"; do
    printf '  %-10s %-20s %s\n' "${stage_names[$i]}" "${stage_results[$i]}" "$(fmt_time "${stage_times[$i]}")"
  done
  printf '  %-10s %-20s %s\n' total "" "$(fmt_time "$SECONDS")"
  printf 'tests: %d passed, %d failed, %d skipped\n' "$total_passed" "$total_failed" "$total_skipped"
}

# The sanitizer trees and clang-tidy's pass are compiled in the
# background at idle CPU priority (SCHED_IDLE) from the end of the default
# build on: on a fresh machine those builds are most of the run, and the
# default suite, much of it waiting on sockets, timers and child processes,
# leaves them CPU to use. Each stage waits for its own piece, then runs as before: its
# build step is then a no-op, or shows the errors again if the background
# build failed. A tree is never built by two ninjas at once.
prebuild_dir="$root/build/prebuild"
prebuild_pid=""
start_prebuild() {
  rm -rf "$prebuild_dir"
  mkdir -p "$prebuild_dir"
  # setsid: the chain and every compiler it starts form one process group to
  # stop. A new session is also a new autogroup, which the kernel would give a
  # fair share against the foreground's whatever its nice: the group is niced too.
  setsid chrt --idle 0 nice -n 19 bash -c '
    echo 19 > /proc/self/autogroup 2>/dev/null || true
    cd "$1" && dir=$2 && shift 2
    for piece in "$@"; do
      case $piece in
        tidy) cmd=(bash scripts/tidy.sh --jobs 2) ;;
        *) cmd=(bash -c "cmake --preset $piece >/dev/null && cmake --build --preset $piece") ;;
      esac
      start=$SECONDS
      "${cmd[@]}" > "$dir/$piece.log" 2>&1
      echo "$? $((SECONDS - start))" > "$dir/$piece.done"
    done' _ "$root" "$prebuild_dir" "$@" < /dev/null > "$prebuild_dir/chain.log" 2>&1 &
  prebuild_pid=$!
}
stop_prebuild() {
  if [[ -n "$prebuild_pid" ]]; then
    kill -- -"$prebuild_pid" 2>/dev/null || true
    wait "$prebuild_pid" 2>/dev/null || true
    prebuild_pid=""
  fi
}
trap stop_prebuild EXIT
# after_prebuild PIECE COMMAND...: wait until the background has finished PIECE
# (or has stopped), say how it went, then run COMMAND.
after_prebuild() {
  local piece=$1 waited=$SECONDS rc took
  shift
  if [[ -n "$prebuild_pid" ]]; then
    while [[ ! -f "$prebuild_dir/$piece.done" ]] && kill -0 "$prebuild_pid" 2>/dev/null; do
      sleep 1
    done
    if read -r rc took < "$prebuild_dir/$piece.done" 2>/dev/null; then
      printf 'quickstart: background %s exited %s after %ss (waited %ss here; log: %s)\n' \
        "$piece" "$rc" "$took" $((SECONDS - waited)) "build/prebuild/$piece.log"
    fi
  fi
  "$@"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift

case "$cmd" in
  run)
    stage deps bash "$root/scripts/install-deps.sh"
    stage configure cmake --preset default
    stage build cmake --build --preset default
    hello="$root/build/default/apps/hello/hello"
    if [[ ! -x "$hello" ]]; then
      echo "quickstart: $hello was not built" >&2
      exit 1
    fi
    printf '\n==> running %s %s\n' "$hello" "$*"
    exec "$hello" "$@"
    ;;
  test)
    failed=0
    # Without the packages nothing after this can pass: stop here.
    stage deps bash "$root/scripts/install-deps.sh" --with-browser || { summary; exit 1; }
    stage layers /usr/bin/python3 "$root/scripts/check_layers.py" || failed=1
    stage headers /usr/bin/python3 "$root/scripts/check_headers.py" --jobs 2 || failed=1
    # The default preset in the foreground: configure and build at full speed,
    # then the background builds start and its suite runs.
    if stage configure cmake --preset default && stage build cmake --build --preset default; then
      start_prebuild asan tsan tidy
      stage default ctest --preset default || failed=1
    else
      failed=1
    fi
    for preset in asan tsan; do
      [[ $failed == 1 && "${KEEL_FAIL_FAST:-0}" == 1 ]] && break
      stage "$preset" after_prebuild "$preset" cmake --workflow --preset "$preset" || failed=1
    done
    # Every libFuzzer target for a minute under ASan+UBSan (docs/fuzzing.md),
    # built in the asan tree beside its tests: one set of instrumented libraries.
    if [[ $failed == 0 || "${KEEL_FAIL_FAST:-0}" != 1 ]]; then
      stage fuzz bash "$root/tests/fuzz/run" --preset asan \
        --seconds "${KEEL_FUZZ_SECONDS:-60}" --jobs "${KEEL_FUZZ_JOBS:-2}" || failed=1
    fi
    # clang-tidy with the checked-in .clang-tidy; results cached per file (scripts/tidy.sh).
    if [[ $failed == 0 || "${KEEL_FAIL_FAST:-0}" != 1 ]]; then
      stage tidy after_prebuild tidy bash "$root/scripts/tidy.sh" --jobs 2 || failed=1
    fi
    stop_prebuild
    summary
    exit "$failed"
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
