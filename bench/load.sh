#!/usr/bin/env bash
# Load and soak scenarios of portcullis (issue 9, item 4; budgets from DESIGN.md §7). Loopback
# only, bounded in time, stops by itself. Not a test: it measures and reports.
#
#   (a) 10,000 concurrent keep-alive connections with valid sessions       budget: zero errors
#   (b) one million sessions in the memory store (examples/million_sessions) budget: < 600 MB RSS
#   (c) 1,000 slowloris connections while a normal client keeps its latency
#   (d) password-guessing flood at /normal while a legitimate user signs in  budget: ≤ 5 s
#   (e) soak at half of peak load (fixed rate), RSS and fds sampled          budget: p99 added < 1 ms
#
# Usage: bench/load.sh [a] [b] [c] [d] [e]      (no argument: all five, in this order)
#   SOAK_SECONDS=600        (e) duration at half of peak (SOAK_SECONDS=60 for a quick run)
#   UP_PORT=19080 PC_PORT=19081 NGX_PORT=19082   loopback ports (must be free; distinct from
#                           bench/run.sh's); NGX_PORT: (e3) nginx as a plain proxy, for comparison
#   CONNECTIONS=10000 HOLD_SECONDS=30 INTERVAL_MS=3000          (a)
#   SESSIONS=1000000 SESSION_USERS=600000                        (b)
#   SLOW=1000 SLOW_PHASE_SECONDS=30 BYTE_INTERVAL_MS=3000 NORMAL_RATE=200 PROBE_RATE=20  (c)
#   FLOOD_SECONDS=30 FLOOD_CONCURRENCY=64 FLOOD_IP_POOL=32 LEGIT_LOGINS=5                (d)
#                           (FLOOD_IP_POOL=0: a new client address per attempt, never locked)
#   SOAK_CONNECTIONS=64 DIRECT_SECONDS=60 E3_ROUNDS=3           (e)
#   SOAK_RATE=              (e) fixed rate in req/s instead of half of the measured peak
#   LOAD_THREADS=1          runtime threads of the load generator
#   PC_WORKERS=             server.workers of the gateway (default: all cores)
#   CARGO_TARGET_DIR        honoured (binaries are taken from there)
#   SKIP_BUILD=1            use the existing release binaries
#
# Output: progress on stderr, a markdown table on stdout and in bench/out/load.md; raw results,
# configs and logs in bench/out/load/. Everything it starts listens on 127.0.0.1 only and is
# stopped on exit (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SOAK_SECONDS=${SOAK_SECONDS:-600}
UP_PORT=${UP_PORT:-19080}
PC_PORT=${PC_PORT:-19081}
NGX_PORT=${NGX_PORT:-19082}
CONNECTIONS=${CONNECTIONS:-10000}
HOLD_SECONDS=${HOLD_SECONDS:-30}
INTERVAL_MS=${INTERVAL_MS:-3000}
SESSIONS=${SESSIONS:-1000000}
SESSION_USERS=${SESSION_USERS:-600000}
SLOW=${SLOW:-1000}
SLOW_PHASE_SECONDS=${SLOW_PHASE_SECONDS:-30}
BYTE_INTERVAL_MS=${BYTE_INTERVAL_MS:-3000}
NORMAL_RATE=${NORMAL_RATE:-200}
PROBE_RATE=${PROBE_RATE:-20}
FLOOD_SECONDS=${FLOOD_SECONDS:-30}
FLOOD_CONCURRENCY=${FLOOD_CONCURRENCY:-64}
FLOOD_IP_POOL=${FLOOD_IP_POOL:-32}
LEGIT_LOGINS=${LEGIT_LOGINS:-5}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-64}
DIRECT_SECONDS=${DIRECT_SECONDS:-60}
E3_ROUNDS=${E3_ROUNDS:-3}
SOAK_RATE=${SOAK_RATE:-}
LOAD_THREADS=${LOAD_THREADS:-1}
PC_WORKERS=${PC_WORKERS:-}
COOKIE_SESSIONS=16                 # sessions the connections of (a), (c), (e) take turns with
HEADER_TIMEOUT=10                  # server.header_timeout default, seconds (not set in the config)
PASSWORD=load-password-123
LEGIT_PASSWORD=contractor-password-456
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/release/portcullis
LOAD=$TARGET_DIR/release/examples/load
MILLION=$TARGET_DIR/release/examples/million_sessions
WORK=$ROOT/bench/out/load
TABLE=$ROOT/bench/out/load.md

die() { echo "load: $*" >&2; exit 1; }
log() { echo "load: $*" >&2; }

for v in SOAK_SECONDS UP_PORT PC_PORT CONNECTIONS HOLD_SECONDS INTERVAL_MS SESSIONS SESSION_USERS SLOW \
  SLOW_PHASE_SECONDS BYTE_INTERVAL_MS NORMAL_RATE PROBE_RATE FLOOD_SECONDS FLOOD_CONCURRENCY LEGIT_LOGINS \
  SOAK_CONNECTIONS DIRECT_SECONDS E3_ROUNDS NGX_PORT LOAD_THREADS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $FLOOD_IP_POOL =~ ^[0-9]+$ ]] || die "FLOOD_IP_POOL must be a number (0: a new address per attempt)"
[ -z "$SOAK_RATE" ] || [[ $SOAK_RATE =~ ^[1-9][0-9]*$ ]] || die "SOAK_RATE must be a positive integer"
[ -z "$PC_WORKERS" ] || [[ $PC_WORKERS =~ ^[1-9][0-9]*$ ]] || die "PC_WORKERS must be a positive integer"
[ "$UP_PORT" != "$PC_PORT" ] || die "UP_PORT and PC_PORT must differ"

SCENARIOS=()
for s in "${@:-a b c d e}"; do
  for x in $s; do
    case $x in a | b | c | d | e) SCENARIOS+=("$x") ;; *) die "unknown scenario '$x' (use a b c d e)" ;; esac
  done
done
want() { local x; for x in "${SCENARIOS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
NEED_GATEWAY=0
for x in a c d e; do want $x && NEED_GATEWAY=1; done

# ---------------------------------------------------------------- processes and cleanup
PIDS=()
cleanup() {
  set +e
  trap - EXIT INT TERM
  local pid alive
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 80); do          # at most 8 s for a graceful stop
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      pkill -KILL -P "$pid" 2>/dev/null   # children of this one process only (nginx worker)
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'echo "load: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# forget PID: drop one pid from PIDS (after it was stopped and reaped).
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# stop_pid PID: SIGTERM, up to 8 s, then SIGKILL; reaps it.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

# ---------------------------------------------------------------- system
# Sockets are files: 10,000 client connections need as many descriptors in the load generator
# and in the gateway (plus its upstream connections). Raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if want a; then
  [ "$NOFILE" = unlimited ] || [ "$NOFILE" -ge $((CONNECTIONS + 2000)) ] ||
    die "(a) needs at least $((CONNECTIONS + 2000)) open files per process; ulimit -Hn is $NOFILE (raise it, or lower CONNECTIONS)"
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
NGINX=$(command -v nginx || true); [ -n "$NGINX" ] || NGINX=/usr/sbin/nginx
[ "$NEED_GATEWAY" = 0 ] || [ -x "$NGINX" ] || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ "$NEED_GATEWAY" = 0 ] || [ -x "$NGINX" ] || die "nginx not found after installing nginx-light"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ "$NEED_GATEWAY" = 1 ]; then
  for p in "$UP_PORT" "$PC_PORT" "$NGX_PORT"; do
    port_busy "$p" && die "port $p on 127.0.0.1 is already in use (set UP_PORT/PC_PORT/NGX_PORT)"
  done
fi

# ---------------------------------------------------------------- build
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  for f in "$BIN" "$LOAD" "$MILLION"; do [ -x "$f" ] || die "SKIP_BUILD=1 but $f does not exist"; done
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust 1.88 or newer"
  log "cargo build --release --bin portcullis --examples (target dir $TARGET_DIR)"
  cargo build --release --bin portcullis --examples
fi

rm -rf "$WORK"
mkdir -p "$WORK"
rm -f "$TABLE"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R        # every RESULT key=value of every scenario
UP_PID=""
GW_PID=""

# CPU accounting, to tell whether someone else used the machine during a scenario.
# cpu_ticks PID: utime+stime of the process (all threads) and its direct children.
cpu_ticks() {
  local pid=$1 total=0 p stat f
  [ -n "$pid" ] || { echo 0; return; }
  for p in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    read -r -a f <<<"${stat##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
# own_ticks: everything this script started: the live upstream and gateway, plus (through this
# shell's cutime/cstime) every reaped child: the load generator, stopped gateways.
own_ticks() {
  local stat f
  stat=$(cat /proc/$$/stat); read -r -a f <<<"${stat##*) }"
  echo $(( f[13] + f[14] + $(cpu_ticks "$UP_PID") + $(cpu_ticks "$GW_PID") ))
}
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
TICKS=$(getconf CLK_TCK)
NCPU=$(nproc)
declare -A OTHER
scenario_begin() { S_OWN=$(own_ticks); S_BUSY=$(busy_ticks); S_T=$(date +%s%N); }
# scenario_end NAME: share of the machine's CPU used by processes this script did not start.
scenario_end() {
  local own busy t
  own=$(own_ticks); busy=$(busy_ticks); t=$(date +%s%N)
  OTHER[$1]=$(awk -v b=$((busy - S_BUSY)) -v o=$((own - S_OWN)) -v hz="$TICKS" -v n="$NCPU" -v ns=$((t - S_T)) \
    'BEGIN { x = (b - o) / hz / (n * ns / 1e9) * 100; printf "%.0f", (x < 0 ? 0 : x) }')
  log "($1) other processes used ${OTHER[$1]}% of the machine's CPU meanwhile"
}

# run_tool NAME SECONDS CMD...: runs a measuring tool in the background (so Ctrl-C and TERM
# reach the traps at once), at most SECONDS + 60; RESULT lines go to $WORK/NAME.out and into R.
run_tool() {
  local name=$1 secs=$2 pid rc=0 line kv
  shift 2
  timeout -k 5 $((secs + 60)) "$@" >"$WORK/$name.out" 2> >(tee "$WORK/$name.log" >&2) &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget "$pid"
  [ $rc = 0 ] || die "$name failed (exit $rc); see $WORK/$name.log"
  while IFS= read -r line; do
    kv=${line#RESULT }
    R[${kv%%=*}]=${kv#*=}
  done < <(grep '^RESULT ' "$WORK/$name.out")
}

# ---------------------------------------------------------------- (b) needs no gateway
if want b; then
  log "(b) $SESSIONS sessions in the memory store"
  scenario_begin
  run_tool b 900 "$MILLION" --sessions "$SESSIONS" --users "$SESSION_USERS"
  scenario_end b
fi

# ---------------------------------------------------------------- upstream and gateway
# wait_port PORT PID LOGFILE: up to 15 s for PORT to accept, failing early if PID exits.
wait_port() {
  local port=$1 pid=$2 logf=$3 _i
  for _i in $(seq 150); do
    port_busy "$port" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "--- $logf" >&2; tail -n 30 "$logf" >&2 || true
      die "process $pid exited before listening on $port"
    fi
    sleep 0.1
  done
  echo "--- $logf" >&2; tail -n 30 "$logf" >&2 || true
  die "nothing listening on 127.0.0.1:$port after 15 s"
}

CONFIG=$WORK/portcullis.toml
PC=http://127.0.0.1:$PC_PORT
GW_PID=""
if [ "$NEED_GATEWAY" = 1 ]; then
  dir=$WORK/upstream
  NGX_FILES=$NOFILE; [ "$NGX_FILES" = unlimited ] && NGX_FILES=65536
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $NGX_FILES;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $((NGX_FILES - 100)); }
http {
    access_log off;
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / { return 200 "ok\\n"; }
    }
}
EOF
  "$NGINX" -t -q -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" || die "nginx rejected $dir/nginx.conf"
  "$NGINX" -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  UP_PID=$!
  PIDS+=("$UP_PID")
  wait_port "$UP_PORT" "$UP_PID" "$dir/logs/error.log"
  [ "$(curl -s --max-time 5 "http://127.0.0.1:$UP_PORT/app")" = ok ] || die "upstream nginx does not answer 'ok'"

  # The flood (d) comes from many client addresses through a proxy the gateway trusts
  # (X-Forwarded-For from 127.0.0.1); the other scenarios send no X-Forwarded-For.
  write_config() {
    cat >"$CONFIG" <<EOF
[server]
listen = "127.0.0.1:$PC_PORT"
public_url = "$PC"
default_login = "native"
access_log = false
signing_key = "assertion.p8"
trusted_proxies = ["127.0.0.1"]
shutdown_grace = "5s"
$([ -n "$PC_WORKERS" ] && echo "workers = $PC_WORKERS")
$1

[upstream]
url = "http://127.0.0.1:$UP_PORT"

[session]
idle_timeout = "30m"
max_lifetime = "12h"

[storage]
url = "sqlite://portcullis.db"

[native]

[roles.end_user]
groups = ["end-users"]
require_mfa = false

[roles.contractor]
groups = ["contractors"]
require_mfa = false

[[routes]]
prefix = "/"
allow_roles = ["end_user", "contractor"]
EOF
  }
  # server.max_connections_per_ip, when this version has it: loopback load all comes from
  # 127.0.0.1, so it must allow every connection of (a) and (c).
  PER_IP_LIMIT=$((CONNECTIONS + SLOW + 5000))
  write_config "max_connections_per_ip = $PER_IP_LIMIT"
  if check=$("$BIN" check --config "$CONFIG" 2>&1); then
    PER_IP="server.max_connections_per_ip = $PER_IP_LIMIT"
  elif printf '%s\n' "$check" | grep -q max_connections_per_ip; then
    write_config ""
    PER_IP="no server.max_connections_per_ip in this version"
    check=$("$BIN" check --config "$CONFIG" 2>&1) || { echo "$check" >&2; die "portcullis check rejected $CONFIG"; }
  else
    echo "$check" >&2; die "portcullis check rejected $CONFIG"
  fi
  [ "$(printf '%s\n' "$check" | tail -n 1)" = ok ] || { echo "$check" >&2; die "portcullis check did not print 'ok'"; }
  log "config: $PER_IP"

  add_user() {
    local out
    if ! out=$(printf '%s\n' "$3" | timeout 60 "$BIN" users add "$1" --role "$2" --password-stdin --config "$CONFIG" 2>&1); then
      echo "$out" >&2
      die "step 'users add $1' failed"
    fi
  }
  log "creating native users 'loaduser' (end_user) and 'contractor1' (contractor, no MFA)"
  add_user loaduser end_user "$PASSWORD"
  add_user contractor1 contractor "$LEGIT_PASSWORD"
fi

# start_gateway: a fresh gateway process for each scenario (sessions, lockouts and connections
# of one scenario do not leak into the next); signs in COOKIE_SESSIONS times through the real
# native login and checks that a session cookie passes and no cookie does not.
start_gateway() {
  "$BIN" run --config "$CONFIG" >>"$WORK/portcullis.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_port "$PC_PORT" "$GW_PID" "$WORK/portcullis.log"
  LOAD_PASSWORD=$PASSWORD "$LOAD" login --addr "127.0.0.1:$PC_PORT" --user loaduser \
    --count "$COOKIE_SESSIONS" >"$WORK/cookies.txt" 2>"$WORK/login.log" ||
    { cat "$WORK/login.log" >&2; die "native login of 'loaduser' failed"; }
  local status
  status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Cookie: $(head -n 1 "$WORK/cookies.txt")" "$PC/app")
  [ "$status" = 200 ] || die "GET /app with a session cookie answered $status instead of 200"
  status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "$PC/app")
  [ "$status" = 401 ] || die "GET /app without a session answered $status instead of 401"
}
stop_gateway() { stop_pid "$GW_PID"; GW_PID=""; }

ADDR=127.0.0.1:$PC_PORT
if want a; then
  log "(a) $CONNECTIONS keep-alive connections, held ${HOLD_SECONDS}s, a request every ${INTERVAL_MS} ms each"
  scenario_begin
  start_gateway
  run_tool a $((HOLD_SECONDS + 200)) "$LOAD" --threads "$LOAD_THREADS" conns --addr "$ADDR" \
    --cookies "$WORK/cookies.txt" --connections "$CONNECTIONS" --hold-secs "$HOLD_SECONDS" \
    --interval-ms "$INTERVAL_MS" --pid "$GW_PID"
  stop_gateway
  scenario_end a
fi
if want c; then
  log "(c) $SLOW slowloris connections (1 byte / ${BYTE_INTERVAL_MS} ms), phases of ${SLOW_PHASE_SECONDS}s"
  scenario_begin
  start_gateway
  run_tool c $((2 * SLOW_PHASE_SECONDS + 60)) "$LOAD" --threads "$LOAD_THREADS" slowloris --addr "$ADDR" \
    --cookies "$WORK/cookies.txt" --slow "$SLOW" --byte-interval-ms "$BYTE_INTERVAL_MS" \
    --phase-secs "$SLOW_PHASE_SECONDS" --rate "$NORMAL_RATE" --probe-rate "$PROBE_RATE" --pid "$GW_PID"
  stop_gateway
  scenario_end c
fi
if want d; then
  log "(d) password-guessing flood, $FLOOD_CONCURRENCY concurrent, ${FLOOD_SECONDS}s; legitimate login of contractor1"
  scenario_begin
  start_gateway
  export LOAD_LEGIT_PASSWORD=$LEGIT_PASSWORD
  run_tool d $((FLOOD_SECONDS + 40)) "$LOAD" --threads "$LOAD_THREADS" flood \
    --addr "$ADDR" --concurrency "$FLOOD_CONCURRENCY" --secs "$FLOOD_SECONDS" --ip-pool "$FLOOD_IP_POOL" \
    --legit-user contractor1 --legit-logins "$LEGIT_LOGINS"
  stop_gateway
  scenario_end d
fi
if want e; then
  log "(e) soak at half of peak for ${SOAK_SECONDS}s, then the same rate at the upstream and through nginx"
  # nginx as a plain reverse proxy to the same upstream (as in bench/run.sh): the added latency
  # it shows under the same method tells how much of the gateway's is the machine's.
  ndir=$WORK/nginx-proxy
  mkdir -p "$ndir/logs" "$ndir/tmp"
  cat >"$ndir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $ndir/nginx.pid;
error_log $ndir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    client_body_temp_path $ndir/tmp/body;
    proxy_temp_path $ndir/tmp/proxy;
    fastcgi_temp_path $ndir/tmp/fastcgi;
    uwsgi_temp_path $ndir/tmp/uwsgi;
    scgi_temp_path $ndir/tmp/scgi;
    upstream upstream_pool {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$NGX_PORT backlog=4096;
        location / {
            proxy_pass http://upstream_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
  "$NGINX" -t -q -p "$ndir/" -e "$ndir/logs/error.log" -c "$ndir/nginx.conf" || die "nginx rejected $ndir/nginx.conf"
  "$NGINX" -p "$ndir/" -e "$ndir/logs/error.log" -c "$ndir/nginx.conf" >"$ndir/logs/stdout.log" 2>&1 &
  NGX_PID=$!
  PIDS+=("$NGX_PID")
  wait_port "$NGX_PORT" "$NGX_PID" "$ndir/logs/error.log"
  scenario_begin
  start_gateway
  run_tool e $((SOAK_SECONDS + 3 * DIRECT_SECONDS + 30)) "$LOAD" --threads "$LOAD_THREADS" soak --addr "$ADDR" \
    --cookies "$WORK/cookies.txt" --connections "$SOAK_CONNECTIONS" --secs "$SOAK_SECONDS" \
    --pid "$GW_PID" --direct "127.0.0.1:$UP_PORT" --direct-secs "$DIRECT_SECONDS" \
    --compare "127.0.0.1:$NGX_PORT" --rounds "$E3_ROUNDS" ${SOAK_RATE:+--rate "$SOAK_RATE"}
  stop_gateway
  stop_pid "$NGX_PID"
  scenario_end e
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
r() { echo "${R[$1]:-?}"; }
# le A B: A <= B (decimals); false when either is not a number.
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a == a + 0 && b == b + 0 && a + 0 <= b + 0) }'; }
row_verdict() { if "$@"; then echo PASS; else echo "**FAIL**"; fi; }
a_ok() { [ "$(r a_errors)" = 0 ] && [ "$(r a_open)" = "$(r a_connections)" ]; }
d_legit_ok() { [ "$(r d_legit_ok)" = "$(r d_legit_logins)" ] && le "$(r d_legit_max_s)" 5; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (with uncommitted changes)"
{
  echo "## portcullis load and soak ($(date -u +%Y-%m-%d))"
  echo
  echo "- machine: $(nproc) CPUs ($cpu_model), $mem RAM, Linux $(uname -r); load average at start $LOAD_START, at end $LOAD_END"
  echo "- portcullis $commit, release build, $([ -n "$PC_WORKERS" ] && echo "workers = $PC_WORKERS" || echo "workers = all cores"), access log off, in-memory sessions; upstream nginx \`return 200 \"ok\\n\"\`; load generator \`examples/load.rs\` ($LOAD_THREADS runtime thread(s)) on the same machine; open files per process: $NOFILE${PER_IP:+; $PER_IP}"
  echo "- $(date -u +%Y-%m-%dT%H:%M:%SZ); scenarios: ${SCENARIOS[*]}"
  others=(); max_other=0
  for x in "${SCENARIOS[@]}"; do
    others+=("($x) ${OTHER[$x]:-?}%")
    [ "${OTHER[$x]:-0}" -gt "$max_other" ] && max_other=${OTHER[$x]}
  done
  echo "- CPU used by processes this script did not start, share of the machine during each scenario: ${others[*]}"
  if [ "$max_other" -gt 10 ]; then
    echo "- **warning:** other processes used up to ${max_other}% of the machine's CPU during a scenario: latency and throughput figures are disturbed; run again on a quiet machine."
  fi
  echo
  echo "| scenario | measured | budget | verdict |"
  echo "|---|---|---|---|"
  if want a; then
    echo "| (a) $(r a_connections) keep-alive connections with sessions, all open for $(r a_hold_secs) s, a request every $INTERVAL_MS ms on each | $(r a_open) open in $(r a_open_secs) s; $(r a_requests) requests ($(r a_rps_hold) req/s while held), $(r a_connect_failures) connect failures, $(r a_errors) errors; latency of the first request on each (while opening) p50 $(r a_first_p50_ms) ms, p99 $(r a_first_p99_ms) ms, of the later ones p50 $(r a_p50_ms) ms, p99 $(r a_p99_ms) ms, max $(r a_max_ms) ms; gateway: $(r a_gw_fds_min_while_open)–$(r a_gw_fds_max) fds while held, RSS max $(r a_gw_rss_max_mib) MiB | zero errors | $(row_verdict a_ok) |"
  fi
  if want b; then
    echo "| (b) $(r sessions) sessions ($(r users) users) inserted into \`MemoryStore\` | RSS $(r rss_before_mib) → $(r rss_after_mib) MiB, **$(r bytes_per_session) bytes per session**, inserted in $(r insert_secs) s | < 600 MB | $(row_verdict le "$(r rss_after_mib)" 572.2) |"
    if [ -n "${R[rss_with_assertion_mib]:-}" ]; then
      echo "| (b2) the same after one proxied request each (the signed assertion, $(r assertion_bytes) bytes, cached in the session) | RSS $(r rss_with_assertion_mib) MiB, **$(r bytes_per_session_with_assertion) bytes per session** | < 600 MB | $(row_verdict le "$(r rss_with_assertion_mib)" 572.2) |"
    fi
  fi
  if want c; then
    life_ok() { le "$(r c_slow_life_max_s)" $((HEADER_TIMEOUT + 2)) && le "$(r c_slow_oldest_at_stop_s)" $((HEADER_TIMEOUT + 2)); }
    lat_ok() {
      [ "$(r c_attack_ka_errors)" = 0 ] && [ "$(r c_attack_new_errors)" = 0 ] &&
        le "$(r c_attack_ka_p99_ms)" "$(awk -v b="$(r c_base_ka_p99_ms)" 'BEGIN { print 2 * b + 1 }')" &&
        le "$(r c_attack_new_p99_ms)" "$(awk -v b="$(r c_base_new_p99_ms)" 'BEGIN { print 2 * b + 1 }')"
    }
    echo "| (c) normal client, $NORMAL_RATE req/s keep-alive + $PROBE_RATE req/s on new connections, without / with $(r c_slow) slowloris connections | keep-alive p50 $(r c_base_ka_p50_ms) / $(r c_attack_ka_p50_ms) ms, p99 $(r c_base_ka_p99_ms) / $(r c_attack_ka_p99_ms) ms; new connection p50 $(r c_base_new_p50_ms) / $(r c_attack_new_p50_ms) ms, p99 $(r c_base_new_p99_ms) / $(r c_attack_new_p99_ms) ms; errors $(r c_base_ka_errors)+$(r c_base_new_errors) / $(r c_attack_ka_errors)+$(r c_attack_new_errors) | no errors; p99 with ≤ 2 × without + 1 ms | $(row_verdict lat_ok) |"
    echo "| (c2) the slowloris connections ($(r c_attack_secs) s of attack, reconnecting when closed) | $(r c_slow_open_at_start) open at once; $(r c_slow_opened) opened, **$(r c_slow_closed) closed by the gateway** after $(r c_slow_life_min_s)–$(r c_slow_life_max_s) s (median $(r c_slow_life_p50_s) s; answers before closing: $(r c_slow_answers)); oldest still open at the end: $(r c_slow_oldest_at_stop_s) s | closed after \`header_timeout\` ($HEADER_TIMEOUT s) | $(row_verdict life_ok) |"
    echo "| (c3) $(r c_silent) connections that send nothing at all | $(r c_silent_closed) closed by the gateway; oldest still open at the end: $(r c_silent_oldest_at_stop_s) s | closed after \`header_timeout\` ($HEADER_TIMEOUT s) | $(row_verdict le "$(r c_silent_oldest_at_stop_s)" $((HEADER_TIMEOUT + 2))) |"
  fi
  if want d; then
    echo "| (d) $(r d_concurrency) concurrent wrong-password \`POST /normal\` (valid CSRF, a new user name each, from $( [ "$(r d_ip_pool)" = 0 ] && echo "a new address each" || echo "$(r d_ip_pool) addresses")) for $(r d_secs) s | $(r d_posts) POSTs ($(r d_posts_per_s)/s), status mix $(r d_statuses); 503 with Retry-After: $(r d_503_with_retry_after); $( [ "$(r d_first_429_s)" = never ] && echo "no lockout (429)" || echo "first lockout (429) after $(r d_first_429_s) s"); POST p50 $(r d_post_p50_ms) ms, p99 $(r d_post_p99_ms) ms; errors $(r d_errors) | 503 + Retry-After when saturated | $(row_verdict [ "$(r d_errors)" = 0 ]) |"
    echo "| (d2) legitimate login of \`contractor1\` (no MFA) during the flood, retrying 1 s after a 503 | $(r d_legit_ok) of $(r d_legit_logins) signed in; started at $(r d_legit_at_s) s into the flood, took $(r d_legit_times_s) s (attempts $(r d_legit_attempts)); failures: $(r d_legit_failures) | every login ≤ 5 s | $(row_verdict d_legit_ok) |"
  fi
  if want e; then
    rss_ok() { le "$(r e_rss_last_mib)" "$(awk -v f="$(r e_rss_first_mib)" 'BEGIN { print f * 1.25 + 16 }')" && le "$(r e_fds_last)" $(( $(r e_fds_first) + 16 )); }
    echo "| (e) peak (closed loop, $SOAK_CONNECTIONS connections, 5 s), then $([ -n "$SOAK_RATE" ] && echo "a fixed rate of $SOAK_RATE req/s" || echo "half of it at a fixed rate") for $SOAK_SECONDS s | peak $(r e_peak_rps) req/s (machine CPU $(r e_peak_machine_cpu_pct)% busy); at $(r e_rate) req/s: $(r e_soak_requests) requests, $(r e_soak_errors) errors, p50 $(r e_soak_p50_ms) ms, p99 $(r e_soak_p99_ms) ms, p99.9 $(r e_soak_p999_ms) ms, max $(r e_soak_max_ms) ms; CPU: machine $(r e_soak_machine_cpu_pct)% busy, gateway $(r e_soak_gateway_cpu_pct)% of a core, load generator $(r e_soak_generator_cpu_pct)% | no errors | $(row_verdict [ "$(r e_soak_errors)" = 0 ]) |"
    echo "| (e2) gateway RSS and open fds, sampled every 10 s ($(r e_samples) samples) | RSS first $(r e_rss_first_mib), last $(r e_rss_last_mib), max $(r e_rss_max_mib) MiB; fds first $(r e_fds_first), last $(r e_fds_last), max $(r e_fds_max) | no growth (last ≤ 1.25 × first + 16 MiB; fds ≤ first + 16) | $(row_verdict rss_ok) |"
    # Added p99: the median over the interleaved rounds of (gateway p99 − upstream p99) in the
    # same round; p50 from all rounds together.
    added=$(r e_added_p99_ms)
    ngx_added=$(r e_cmp_added_p99_ms)
    added50=$(awk -v g="$(r e_gw_short_p50_ms)" -v d="$(r e_direct_p50_ms)" 'BEGIN { if (g == g + 0 && d == d + 0) printf "%.3f", g - d; else print "?" }')
    echo "| (e3) added latency at $(r e_rate) req/s: $E3_ROUNDS interleaved rounds of $(( DIRECT_SECONDS / E3_ROUNDS )) s each straight at the upstream, through the gateway, and through nginx (plain proxy, for comparison) | upstream p50 $(r e_direct_p50_ms) ms, p99 $(r e_direct_p99_ms) ms (machine CPU in the first round $(r e_direct_machine_cpu_pct)% busy); gateway p50 $(r e_gw_short_p50_ms) ms, p99 $(r e_gw_short_p99_ms) ms (first round $(r e_gw_short_machine_cpu_pct)% busy); **added p50 $added50 ms, p99 $added ms** (median of rounds: $(r e_added_p99_rounds)); nginx p50 $(r e_cmp_p50_ms) ms, p99 $(r e_cmp_p99_ms) ms (first round $(r e_cmp_machine_cpu_pct)% busy), added p99 $ngx_added ms (rounds: $(r e_cmp_added_p99_rounds)) | added p99 < 1 ms (DESIGN.md §7) | $(row_verdict le "$added" 1) |"
  fi
  echo
  if want e && [ -n "${R[e_series]:-}" ]; then
    echo "Soak samples (time: gateway RSS: open fds): $(r e_series)"
    echo
  fi
  echo "Latencies are measured by the load generator on the same machine, from the scheduled send time when a connection was still busy (no coordinated omission); 600 MB = 572.2 MiB. Raw results: \`bench/out/load/*.out\`, logs: \`bench/out/load/*.log\`."
} >"$TABLE.tmp"
mv "$TABLE.tmp" "$TABLE"
echo
cat "$TABLE"
echo
log "table written to bench/out/load.md; raw results and logs in bench/out/load/"
if grep -q 'FAIL\*\*' "$TABLE"; then log "some rows are outside their budget (FAIL)"; fi
