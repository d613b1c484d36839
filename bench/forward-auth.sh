#!/usr/bin/env bash
# Benchmark (not a test) of forward-auth (issue 17, DESIGN.md §9): nginx with `auth_request` to
# portcullis (config/examples/nginx-forward-auth.conf, as shipped, with these ports), against
# nginx alone in front of the same upstream, and against portcullis as the reverse proxy.
# Every request carries a signed-in session (authenticated path) except on nginx alone.
#
# Usage: bench/forward-auth.sh
#   DURATION=5 ROUNDS=3 CONNECTIONS=64     wrk seconds per run, interleaved rounds, connections
#   UP_PORT=18090 NGX_PORT=18091 FA_PORT=18092 PC_PORT=18093   loopback ports (must be free)
#   SKIP_BUILD=1  use the existing target/release/portcullis
# Output: a table on stdout and as markdown in bench/out-forward-auth/results.md.
# Everything listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
UP_PORT=${UP_PORT:-18090}
NGX_PORT=${NGX_PORT:-18091}
FA_PORT=${FA_PORT:-18092}
PC_PORT=${PC_PORT:-18093}
OUT=$ROOT/bench/out-forward-auth
BIN=$ROOT/target/release/portcullis
PASSWORD=bench-password-123

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
for v in DURATION ROUNDS CONNECTIONS UP_PORT NGX_PORT FA_PORT PC_PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

PIDS=()
cleanup() {
  set +e
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx not found (apt-get install nginx)"
command -v wrk >/dev/null 2>&1 || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null 2>&1 || die "curl not found"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$UP_PORT" "$NGX_PORT" "$FA_PORT" "$PC_PORT"; do
  port_busy "$p" && die "port $p on 127.0.0.1 is already in use"
done
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  [ -x "$BIN" ] || die "SKIP_BUILD=1 but $BIN does not exist"
else
  cargo build --release
fi
rm -rf "$OUT"; mkdir -p "$OUT"

wait_port() {
  local port=$1 pid=$2 logf=$3 i
  for i in $(seq 150); do
    port_busy "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$logf" >&2; die "process $pid exited before listening on $port"; }
    sleep 0.1
  done
  die "nothing listening on 127.0.0.1:$port after 15 s"
}

# nginx NAME PORT HTTP_BODY: one nginx (1 worker, no access log) with HTTP_BODY in `http {}`.
nginx() {
  local name=$1 port=$2 body=$3 dir=$OUT/$1
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
$body
}
EOF
  "$NGINX" -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" "$!" "$dir/logs/error.log"
}

nginx upstream "$UP_PORT" "server { listen 127.0.0.1:$UP_PORT; location / { return 200 \"ok\\n\"; } }"
nginx nginx-alone "$NGX_PORT" "upstream app { server 127.0.0.1:$UP_PORT; keepalive 64; }
server { listen 127.0.0.1:$NGX_PORT; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
# The shipped example, with this run's ports.
site=$(sed -e "s/127\.0\.0\.1:8443/127.0.0.1:$PC_PORT/g" -e "s/127\.0\.0\.1:3000/127.0.0.1:$UP_PORT/g" \
  -e "s/listen 80;/listen 127.0.0.1:$FA_PORT;/" config/examples/nginx-forward-auth.conf)
nginx nginx-forward-auth "$FA_PORT" "$site"

CONFIG=$OUT/portcullis.toml
cat >"$CONFIG" <<EOF
[server]
listen = "127.0.0.1:$PC_PORT"
public_url = "http://127.0.0.1:$PC_PORT"
default_login = "native"
workers = 1
access_log = false
signing_key = "assertion.p8"
trusted_proxies = ["127.0.0.1/32"]

[forward_auth]
enabled = true

[upstream]
url = "http://127.0.0.1:$UP_PORT"

[storage]
url = "sqlite://portcullis.db"

[native]

[roles.end_user]
groups = ["end-users"]
require_mfa = false

[[routes]]
prefix = "/"
allow_roles = ["end_user"]
EOF
"$BIN" check --config "$CONFIG" >/dev/null || die "portcullis check rejected $CONFIG"
printf '%s\n' "$PASSWORD" | timeout 60 "$BIN" users add bench --role end_user --password-stdin --config "$CONFIG" >/dev/null 2>&1 ||
  die "users add failed"
"$BIN" run --config "$CONFIG" >"$OUT/portcullis.log" 2>&1 &
PIDS+=($!)
wait_port "$PC_PORT" "$!" "$OUT/portcullis.log"

# A native login (no second factor for end_user), as in bench/run.sh.
PC=http://127.0.0.1:$PC_PORT
JAR=$OUT/cookies.txt
csrf=$(curl -s -c "$JAR" -b "$JAR" "$PC/normal" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$csrf" ] || die "no csrf_token in the login form"
status=$(curl -s -c "$JAR" -b "$JAR" -o /dev/null -w '%{http_code}' --data-urlencode username=bench \
  --data-urlencode "password=$PASSWORD" --data-urlencode "csrf_token=$csrf" --data-urlencode rd=/ "$PC/normal")
[ "$status" = 302 ] || die "login answered $status"
session=$(awk -F'\t' '$6 == "portcullis" { v = $7 } END { print v }' "$JAR")
[ -n "$session" ] || die "no session cookie after login"
COOKIE="Cookie: portcullis=$session"
for check in "$FA_PORT:200:$COOKIE" "$FA_PORT:401:X-None: 1" "$PC_PORT:200:$COOKIE"; do
  IFS=: read -r port want hdr <<<"$check"
  got=$(curl -s -o /dev/null -w '%{http_code}' -H "$hdr" "http://127.0.0.1:$port/app")
  [ "$got" = "$want" ] || die "GET /app on $port answered $got instead of $want"
done
log "checks ok: forward-auth with session 200, without 401; portcullis proxy 200"

to_ms() {
  awk -v v="$1" 'BEGIN { n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : -1; printf "%.3f", n * f }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

TARGETS=(nginx forward portcullis)
declare -A PORT=([nginx]=$NGX_PORT [forward]=$FA_PORT [portcullis]=$PC_PORT)
declare -A LABEL=([nginx]="nginx alone" [forward]="nginx + auth_request → portcullis" [portcullis]="portcullis as reverse proxy")
declare -A RPS AVG P99 ERRS
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for t in "${TARGETS[@]}"; do wrk -t1 -c"$CONNECTIONS" -d1s -H "$COOKIE" "http://127.0.0.1:${PORT[$t]}/app" >/dev/null; ERRS[$t]=0; done
for r in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    f=$OUT/wrk-round$r-$t.txt
    log "round $r/$ROUNDS: $t (${DURATION}s)"
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$COOKIE" "http://127.0.0.1:${PORT[$t]}/app" >"$f" 2>&1
    RPS[$t,$r]=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
    AVG[$t,$r]=$(to_ms "$(awk '/^    Latency/ { print $2; exit }' "$f")")
    P99[$t,$r]=$(to_ms "$(awk '/Latency Distribution/ { d = 1 } d && $1 == "99%" { print $2; exit }' "$f")")
    bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } END { print n + 0 }' "$f")
    ERRS[$t]=$((ERRS[$t] + bad))
  done
done
vals() { local t=$1 r out=(); local -n a=$2; for r in $(seq "$ROUNDS"); do out+=("${a[$t,$r]}"); done; echo "${out[@]}"; }
declare -A M_RPS M_AVG M_P99
for t in "${TARGETS[@]}"; do
  M_RPS[$t]=$(median $(vals "$t" RPS)); M_AVG[$t]=$(median $(vals "$t" AVG)); M_P99[$t]=$(median $(vals "$t" P99))
done
added=$(awk -v a="${M_AVG[forward]}" -v b="${M_AVG[nginx]}" 'BEGIN { printf "%.3f", a - b }')
{
  echo "## forward-auth: nginx + auth_request → portcullis"
  echo
  echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), load average at start: $LOAD_START"
  echo "- load: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` on \`GET /app\` with a session cookie, $ROUNDS interleaved rounds; upstream nginx \`return 200\`; every proxy 1 worker"
  echo "- portcullis $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "| target | req/s (median) | mean latency ms | p99 ms | non-2xx |"
  echo "|---|---:|---:|---:|---:|"
  for t in "${TARGETS[@]}"; do
    echo "| ${LABEL[$t]} | ${M_RPS[$t]} | ${M_AVG[$t]} | ${M_P99[$t]} | ${ERRS[$t]} |"
  done
  echo
  echo "Added latency of the auth subrequest (mean, forward-auth minus nginx alone, at $CONNECTIONS connections): $added ms per request."
} | tee "$OUT/results.md"
