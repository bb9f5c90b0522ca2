# bench/lib.sh: shared by bench/run, bench/instructions and bench/buildtime (sourced, not run).
# Installs and builds the peers, starts and stops servers, reads /proc.

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.build
BIN=$WORK/bin
LOGS=$WORK/logs
SKIP=77
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$WORK" "$BIN" "$LOGS"

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skip() { say "SKIP: $*"; exit $SKIP; }
fail() { say "FAIL: $*"; exit 1; }

# ---- cleanup: every server we start is remembered and killed on exit ----------
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null
  done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One lock for bench/.build: two bench runs at once would share ports' CPUs and files.
# A script started by a bench script that holds the lock inherits it.
take_lock() {
  [[ -n ${BENCH_LOCKED:-} ]] && return
  exec 9>"$WORK/lock"
  flock -w 1800 9 || fail "another bench run holds $WORK/lock"
  export BENCH_LOCKED=$$
}

# ---- peers --------------------------------------------------------------------
GORILLA=${BENCH_GORILLA_DIR:-/usr/share/gocode/src/github.com/gorilla/websocket}
APT_PACKAGES="wrk nginx-light golang-go golang-github-gorilla-websocket-dev valgrind"

ensure_peers() {
  local missing=() c pkgs=$APT_PACKAGES
  for c in wrk nginx go valgrind taskset; do command -v "$c" >/dev/null || missing+=("$c"); done
  [[ -d $GORILLA ]] || missing+=(gorilla)
  # Only what is missing: NodeSource's nodejs ships npm and conflicts with Debian's npm.
  command -v node >/dev/null || { missing+=(node); pkgs="$pkgs nodejs"; }
  command -v npm >/dev/null || { missing+=(npm); pkgs="$pkgs npm"; }
  if ((${#missing[@]})); then
    say "missing: ${missing[*]}; installing from Debian: $pkgs"
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || skip "cannot install ${missing[*]} (needs root and apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # nginx-light must not start the system's nginx on port 80: a policy-rc.d
    # (exit 101, "action forbidden") keeps apt from starting services.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    local ok=0
    # shellcheck disable=SC2086
    if timeout 900 apt-get install -y --no-install-recommends $pkgs >"$LOGS/apt.log" 2>&1; then
      ok=1
    else
      timeout 300 apt-get update >>"$LOGS/apt.log" 2>&1
      # shellcheck disable=SC2086
      timeout 900 apt-get install -y --no-install-recommends $pkgs >>"$LOGS/apt.log" 2>&1 && ok=1
    fi
    ((own_policy)) && rm -f "$policy"
    ((ok)) || skip "apt-get install failed (no network?), see $LOGS/apt.log"
  fi
  for c in wrk nginx go valgrind taskset node npm; do command -v "$c" >/dev/null || skip "$c still missing"; done
  [[ -d $GORILLA ]] || skip "gorilla/websocket still missing"
  if [[ ! -f $BENCH/.node/node_modules/ws/package.json ]]; then
    say "installing ws from npm into bench/.node"
    timeout 300 npm install --no-save --no-audit --no-fund --prefix "$BENCH/.node" ws >"$LOGS/npm.log" 2>&1 ||
      skip "npm install ws failed (no network?), see $LOGS/npm.log"
  fi
}

# ---- builds -------------------------------------------------------------------
# keel's hello with the release preset (unless HELLO is already set).
build_keel() {
  if [[ -n ${HELLO:-} ]]; then
    [[ -x $HELLO ]] || fail "--hello $HELLO is not an executable"
    return
  fi
  say "building keel (cmake --preset release; cmake --build --preset release --target hello)"
  (cd "$ROOT" && cmake --preset release >"$LOGS/keel-configure.log" 2>&1) || fail "keel configure failed, see $LOGS/keel-configure.log"
  (cd "$ROOT" && cmake --build --preset release --target hello >"$LOGS/keel-build.log" 2>&1) || fail "keel build failed, see $LOGS/keel-build.log"
  HELLO=$ROOT/build/release/apps/hello/hello
}

# beast_baseline and wsload (bench/CMakeLists.txt), Release, own build dir.
build_bench_cxx() {
  say "building bench/baseline and bench/wsload"
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  [[ -f $WORK/cmake/CMakeCache.txt ]] && gen=()
  cmake -S "$BENCH" -B "$WORK/cmake" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release >"$LOGS/bench-configure.log" 2>&1 ||
    fail "bench configure failed, see $LOGS/bench-configure.log"
  cmake --build "$WORK/cmake" >"$LOGS/bench-build.log" 2>&1 || fail "bench build failed, see $LOGS/bench-build.log"
  BASELINE=$WORK/cmake/beast_baseline
  WSLOAD=$WORK/cmake/wsload
}

# Go servers, offline, against Debian's gorilla (no modules, no proxy).
build_go() {
  say "building the Go servers (GO111MODULE=off GOPATH=/usr/share/gocode)"
  (cd "$BENCH" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS='' GOPROXY=off GOCACHE="$WORK/gocache" \
    go build -o "$BIN/go-http" ./go/http && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS='' GOPROXY=off \
    GOCACHE="$WORK/gocache" go build -o "$BIN/go-ws" ./go/ws) >"$LOGS/go-build.log" 2>&1 ||
    skip "Go servers do not build, see $LOGS/go-build.log"
}

# ---- /proc --------------------------------------------------------------------
descendants() {  # PID and every live descendant
  local p c
  for p in "$@"; do
    echo "$p"
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do descendants "$c"; done
  done
}

ticks() {  # utime+stime, clock ticks, of PID and its descendants
  local total=0 p line rest
  for p in $(descendants "$1"); do
    read -r line <"/proc/$p/stat" 2>/dev/null || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# ---- ports and servers --------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 10000))
    port_open "$p" || { echo "$p"; return; }
  done
  fail "no free port"
}

SERVER_LIMIT=${SERVER_LIMIT:-900}  # no server outlives this many seconds, whatever happens to us

# start_server NAME SCOPE [extra args...] -> sets SPID (pid to measure) and SPORT
#   SCOPE: pin (CPU 0, one thread/worker) or all (every core, two threads/workers)
#   NAME: keel-none keel-default beast nginx nginx-log go node gorilla node-ws
start_server() {
  local name=$1 scope=$2
  shift 2
  SPORT=$(free_port)
  local threads=1 pin=(taskset -c 0) env=(env GOMAXPROCS=1)
  if [[ $scope == all ]]; then
    threads=2
    pin=()
    env=(env)
  fi
  ((NCPU < 2)) && pin=()
  local cmd=()
  case $name in
    keel-none | keel-default)
      cmd=("$HELLO" --listen "127.0.0.1:$SPORT" --threads "$threads" --middleware "${name#keel-}"
        --max-connections "${MAXCONN:-20000}" --max-connections-per-client "${MAXCONN:-20000}" "$@") ;;
    beast) cmd=("$BASELINE" --listen "127.0.0.1:$SPORT" --threads "$threads") ;;
    nginx | nginx-log | nginx-tls)
      nginx_conf "$name" "$threads"
      cmd=(nginx -p "$WORK/nginx/" -e "$WORK/nginx/error.log" -c "$WORK/nginx/$name.conf") ;;
    go) cmd=("$BIN/go-http" -listen "127.0.0.1:$SPORT") ;;
    gorilla) cmd=("$BIN/go-ws" -listen "127.0.0.1:$SPORT") ;;
    node) cmd=(node "$BENCH/node/http.js" "$SPORT" "$threads") ;;
    node-ws) cmd=(env NODE_PATH="$BENCH/.node/node_modules" node "$BENCH/node/ws.js" "$SPORT") ;;
    *) fail "unknown server $name" ;;
  esac
  timeout -k 5 "$SERVER_LIMIT" "${env[@]}" "${pin[@]}" "${cmd[@]}" >"$LOGS/$name.out" 2>"$LOGS/$name.err" &
  SPID=$!
  PIDS+=("$SPID")
  local waited=0
  until port_open "$SPORT"; do
    kill -0 "$SPID" 2>/dev/null || { say "$name exited at start:"; tail -n 5 "$LOGS/$name.err" >&2; return 1; }
    sleep 0.05
    waited=$((waited + 1))
    ((waited > 600)) && { say "$name did not listen within 30 s"; return 1; }
  done
  return 0
}

forget() {  # a pid that has exited: no longer ours to kill
  local keep=() q
  for q in "${PIDS[@]}"; do [[ $q != "$1" ]] && keep+=("$q"); done
  PIDS=("${keep[@]}")
}

stop_server() {
  local p=${SPID:-}
  [[ -z $p ]] && return
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  forget "$p"
  SPID=
}

# nginx returning the same bytes as hello; nginx-log writes a buffered access log.
nginx_conf() {
  local name=$1 workers=$2 log="access_log off;" listen="listen 127.0.0.1:$SPORT reuseport;"
  mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
  [[ $name == nginx-log ]] && log="access_log $WORK/nginx/logs/access.log combined buffer=64k flush=1s;"
  # nginx-tls: the same certificate and protocol range as keel's TLS listener.
  [[ $name == nginx-tls ]] && listen="listen 127.0.0.1:$SPORT ssl reuseport;
    ssl_certificate $TLS_CERT; ssl_certificate_key $TLS_KEY; ssl_protocols TLSv1.2 TLSv1.3;"
  : >"$WORK/nginx/logs/access.log"
  cat >"$WORK/nginx/$name.conf" <<EOF
# generated by bench/lib.sh
daemon off;
master_process on;
worker_processes $workers;
worker_rlimit_nofile 20000;
pid $WORK/nginx/$name.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 20000; }
http {
  $log
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  server {
    $listen
    location = /plaintext { default_type text/plain; charset utf-8; return 200 "Hello, World!"; }
    location = /json { default_type application/json; return 200 '{"message":"Hello, World!"}'; }
  }
}
EOF
}

NCPU=$(nproc)
