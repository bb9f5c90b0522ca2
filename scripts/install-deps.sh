#!/usr/bin/env bash
# Install what keel needs to build and test, from Debian 12's packages only.
#
#   scripts/install-deps.sh [--with-browser] [--bench]
#
#   (no option)     compiler, CMake/Ninja/ccache, Boost 1.81, Catch2, OpenSSL,
#                   zlib, SQLite, and the peers the tests talk to (python3
#                   websockets, nginx, redis, promtool, kubectl for the
#                   deploy test's offline `kubectl kustomize`)
#   --with-browser  also chromium and nodejs/npm (browser tests)
#   --bench         also wrk, Go + gorilla/websocket and nodejs/npm (bench/)
#
# Idempotent: each package is checked with dpkg-query first, and apt-get (and
# its `update`) runs only when something is missing, so a second run is fast
# and needs no network. Run as root; as another user it uses `sudo -n` only if
# it has something to install.
#
# The system services that nginx-light, redis-server and prometheus bring are
# never left running: a policy-rc.d keeps apt from starting them, and any that
# run anyway are stopped and disabled (with or without systemd), because tests
# start their own servers on their own ports.
set -euo pipefail

with_browser=0
with_bench=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=1 ;;
    --bench) with_bench=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  catch2 libssl-dev zlib1g-dev libbrotli-dev libsqlite3-dev
  curl openssl brotli python3 python3-websockets
  nginx-light redis-server libhiredis-dev prometheus
  clang-14 libclang-rt-14-dev
  kubernetes-client python3-yaml
)
if ((with_browser)); then
  packages+=(chromium nodejs npm)
fi
if ((with_bench)); then
  packages+=(wrk golang-go golang-github-gorilla-websocket-dev nodejs npm)
fi

# Services that some of the packages above start on install.
services=(nginx redis-server prometheus)

log() { printf 'install-deps: %s\n' "$*"; }

# True when the package is installed. nodejs and npm also count as present when
# their commands are: NodeSource's nodejs provides npm and conflicts with
# Debian's, so asking apt for npm there would remove node.
is_present() {
  case "$1" in
    nodejs) command -v node >/dev/null 2>&1 && return 0 ;;
    npm) command -v npm >/dev/null 2>&1 && return 0 ;;
    # Any kubectl renders kustomizations offline (Debian's is 1.20, kustomize v2.0.3).
    kubernetes-client) command -v kubectl >/dev/null 2>&1 && return 0 ;;
  esac
  dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

declare -A seen=()
missing=()
for p in "${packages[@]}"; do
  [[ -n "${seen[$p]:-}" ]] && continue
  seen[$p]=1
  is_present "$p" || missing+=("$p")
done

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "must run as root to install: ${missing[*]}" >&2
    exit 1
  fi
}

# Stop and disable one system service, whether or not systemd is PID 1.
# `systemctl disable` works offline too (it edits symlinks), so a machine that
# later boots with systemd does not start the daemon either.
quiet_service() {
  local svc=$1
  if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet "$svc" 2>/dev/null; then
    log "disabling system service $svc"
    as_root systemctl disable --quiet "$svc" >/dev/null 2>&1 || true
  fi
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet "$svc" 2>/dev/null; then
      log "stopping system service $svc"
      as_root systemctl stop "$svc" >/dev/null 2>&1 || true
    fi
  elif [[ -x /etc/init.d/$svc ]] && /etc/init.d/"$svc" status >/dev/null 2>&1; then
    log "stopping system service $svc"
    as_root /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
  fi
}

if ((${#missing[@]} == 0)); then
  log "all ${#seen[@]} packages present"
else
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

  # Keep apt from starting daemons while it installs (invoke-rc.d honours
  # policy-rc.d, exit 101 = "action forbidden"). Remove ours afterwards.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    own_policy=1
    trap 'as_root rm -f "$policy"' EXIT
  fi

  start=$SECONDS
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
    install --no-install-recommends "${missing[@]}"
  log "installed ${#missing[@]} package(s) in $((SECONDS - start))s"

  if ((own_policy)); then
    as_root rm -f "$policy"
    trap - EXIT
  fi
fi

# Always check: a daemon started by an earlier install (or a boot) would hold
# ports 80/6379/9090 and make tests depend on the machine's state.
for svc in "${services[@]}"; do
  quiet_service "$svc"
done
