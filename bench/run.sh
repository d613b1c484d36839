#!/usr/bin/env bash
# Benchmark (not a test) of the authenticated proxy path of portcullis against nginx as a
# plain reverse proxy to the same upstream, side by side in one run (DESIGN.md §7:
# portcullis must reach at least 90% of nginx's requests/s).
#
# Usage: bench/run.sh
#   DURATION=5  seconds per wrk run          ROUNDS=3  interleaved rounds (direct, nginx, portcullis)
#   UP_PORT=18080 NGX_PORT=18081 PC_PORT=18082   loopback ports (must be free)
#   PC_ADMIN_PORT=18087  portcullis's admin listener (a metrics-only token): the report gives
#                 how many assertions were signed during the rounds (the session cache's misses)
#   CONNECTIONS=64  wrk connections (wrk always runs with one thread: -t1); CONNECTIONS=1
#                   measures the added latency (p50 of each proxy minus the direct upstream's)
#   BODY_BYTES=1024 size of the upstream's response body (nginx `return 200`; 1..4000)
#   CPUS_WRK= CPUS_PROXY= CPUS_UPSTREAM=   optional taskset CPU lists (default: no pinning)
#   SESSION_STORE=redis  sessions in Redis (REDIS_URL, default redis://127.0.0.1:6379/0; a key
#                        prefix of its own, removed at the end); budget 0.80 (issue: scale-out)
#   UPSTREAM_TLS=h2|h1  also measure an https upstream in the same run: the upstream nginx
#                 serves TLS on UP_TLS_PORT (18083; h2: ALPN offers h2, h1: http/1.1 only), a
#                 second portcullis (PC_TLS_PORT 18085) reaches it over TLS with its own CA file,
#                 and nginx proxies to it too (NGX_TLS_PORT 18084, proxy_ssl, HTTP/1.1 keep-alive)
#   SAME_HEAD=1   also measure nginx sending the upstream the request head portcullis sends: the
#                 identity headers and the signed assertion portcullis gave this session (read
#                 from its forward-auth answer), as static proxy_set_header values, on
#                 NGX_SAME_PORT (18086): what the gateway's own work costs beside nginx's, with
#                 the upstream's cost of the bigger head (DESIGN.md §2) the same for both
#   BEARER=1      also measure the machine-client path: a service token (`Authorization: Bearer`,
#                 DESIGN.md §9) on the same route, as a fourth target beside the cookie one
#   SKIP_BUILD=1  use the existing target/release/portcullis instead of building
#   BIN=path      (with SKIP_BUILD=1) measure that portcullis binary instead, e.g. an older build
#                 for a before/after comparison against the same nginx
#
# Output: a table on stdout and the same as markdown in bench/out/results.md.
# Everything it starts listens on 127.0.0.1 only and is stopped on exit (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
UP_PORT=${UP_PORT:-18080}
NGX_PORT=${NGX_PORT:-18081}
PC_PORT=${PC_PORT:-18082}
UPSTREAM_TLS=${UPSTREAM_TLS:-off}
UP_TLS_PORT=${UP_TLS_PORT:-18083}
NGX_TLS_PORT=${NGX_TLS_PORT:-18084}
PC_TLS_PORT=${PC_TLS_PORT:-18085}
SESSION_STORE=${SESSION_STORE:-memory}
BEARER=${BEARER:-0}
SAME_HEAD=${SAME_HEAD:-0}
PC_ADMIN_PORT=${PC_ADMIN_PORT:-18087}
NGX_SAME_PORT=${NGX_SAME_PORT:-18086}
BODY_BYTES=${BODY_BYTES:-1024}
WARMUP=1
BUDGET=0.90
PASSWORD=bench-password-123
OUT=$ROOT/bench/out
BIN=${BIN:-$ROOT/target/release/portcullis}

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

case $UPSTREAM_TLS in off|h1|h2) ;; *) die "UPSTREAM_TLS must be off, h1 or h2 (got '$UPSTREAM_TLS')" ;; esac
for v in DURATION ROUNDS CONNECTIONS BODY_BYTES UP_PORT NGX_PORT PC_PORT UP_TLS_PORT NGX_TLS_PORT PC_TLS_PORT NGX_SAME_PORT PC_ADMIN_PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[ "$BODY_BYTES" -le 4000 ] || die "BODY_BYTES must be at most 4000 (nginx's return string)"
# The upstream's body: BODY_BYTES-1 letters and a newline, the same for every target.
BODY=$(head -c $((BODY_BYTES - 1)) /dev/zero | tr '\0' x)
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
REDIS_PREFIX="bench-$$-$(date +%s):"
case $SESSION_STORE in
  memory) ;;
  redis)
    BUDGET=0.80
    command -v redis-cli >/dev/null 2>&1 || die "SESSION_STORE=redis needs redis-cli (package redis-tools) and a running Redis"
    redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 || die "no Redis answering at $REDIS_URL"
    ;;
  *) die "SESSION_STORE must be 'memory' or 'redis' (got '$SESSION_STORE')" ;;
esac
case $BEARER in 0|1) ;; *) die "BEARER must be 0 or 1 (got '$BEARER')" ;; esac
case $SAME_HEAD in 0|1) ;; *) die "SAME_HEAD must be 0 or 1 (got '$SAME_HEAD')" ;; esac

# ---------------------------------------------------------------- processes and cleanup
PIDS=()
cleanup() {
  set +e
  trap - EXIT INT TERM
  local pid i
  if [ "$SESSION_STORE" = redis ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1
  fi
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for i in $(seq 50); do          # at most 5 s for a graceful stop
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      pkill -KILL -P "$pid" 2>/dev/null   # children of this one process only (nginx workers)
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- system packages
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
NGINX=$(command -v nginx || true); [ -n "$NGINX" ] || NGINX=/usr/sbin/nginx
[ -x "$NGINX" ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -x "$NGINX" ] || die "nginx not found after installing nginx-light"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust 1.85 or newer"

# CPU pinning (taskset lists such as "0" or "0,1"); empty: the scheduler places everything.
CPUS_WRK=${CPUS_WRK:-}
CPUS_PROXY=${CPUS_PROXY:-}
CPUS_UPSTREAM=${CPUS_UPSTREAM:-}
PIN_WRK=(); PIN_PROXY=(); PIN_UPSTREAM=()
[ -n "$CPUS_WRK" ] && PIN_WRK=(taskset -c "$CPUS_WRK")
[ -n "$CPUS_PROXY" ] && PIN_PROXY=(taskset -c "$CPUS_PROXY")
[ -n "$CPUS_UPSTREAM" ] && PIN_UPSTREAM=(taskset -c "$CPUS_UPSTREAM")

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
TLS_PORTS=()
[ "$UPSTREAM_TLS" != off ] && TLS_PORTS=("$UP_TLS_PORT" "$NGX_TLS_PORT" "$PC_TLS_PORT")
for p in "$UP_PORT" "$NGX_PORT" "$PC_PORT" "$PC_ADMIN_PORT" "${TLS_PORTS[@]}"; do
  port_busy "$p" && die "port $p on 127.0.0.1 is already in use (set UP_PORT/NGX_PORT/PC_PORT)"
done
[ "$UP_PORT" != "$NGX_PORT" ] && [ "$UP_PORT" != "$PC_PORT" ] && [ "$NGX_PORT" != "$PC_PORT" ] ||
  die "UP_PORT, NGX_PORT and PC_PORT must differ"

# ---------------------------------------------------------------- build
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  [ -x "$BIN" ] || die "SKIP_BUILD=1 but $BIN does not exist"
else
  log "cargo build --release"
  cargo build --release
fi

rm -rf "$OUT"
mkdir -p "$OUT"

# wait_port PORT PID LOGFILE: up to 15 s for PORT to accept, failing early if PID exits.
wait_port() {
  local port=$1 pid=$2 logf=$3 i
  for i in $(seq 150); do
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

# ---------------------------------------------------------------- nginx: upstream and proxy
# nginx_conf NAME SERVER_BLOCK [HTTP_EXTRA]: writes $OUT/NAME/nginx.conf with its own prefix.
nginx_conf() {
  local name=$1 server=$2 extra=${3:-} dir=$OUT/$1
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
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
$extra
    server {
$server
    }
}
EOF
  "$NGINX" -t -q -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" ||
    die "nginx rejected $dir/nginx.conf"
}

start_nginx() {
  local name=$1 port=$2 dir=$OUT/$1 pin=()
  if [ "$name" = upstream ]; then pin=("${PIN_UPSTREAM[@]}"); else pin=("${PIN_PROXY[@]}"); fi
  "${pin[@]}" "$NGINX" -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  PIDS+=($!)
  eval "${name//-/_}_PID=$!"
  wait_port "$port" "$!" "$dir/logs/error.log"
}

# With UPSTREAM_TLS the same upstream nginx also serves TLS (a test CA made by openssl; the
# proxies trust only that CA and verify the name 127.0.0.1).
UP_TLS_SERVER=""
NGX_TLS_SERVER=""
if [ "$UPSTREAM_TLS" != off ]; then
  command -v openssl >/dev/null 2>&1 || die "UPSTREAM_TLS needs the openssl command"
  PKI=$OUT/upstream-pki
  mkdir -p "$PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-upstream-ca \
    -keyout "$PKI/ca.key" -out "$PKI/ca.pem" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 || die "openssl could not make the test CA"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$PKI/upstream.key" -out "$PKI/upstream.csr" >/dev/null 2>&1 || die "openssl could not make a key"
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$PKI/ext.cnf"
  openssl x509 -req -in "$PKI/upstream.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
    -extfile "$PKI/ext.cnf" -out "$PKI/upstream.pem" >/dev/null 2>&1 || die "openssl could not sign the upstream certificate"
  h2=""; [ "$UPSTREAM_TLS" = h2 ] && h2=" http2"
  UP_TLS_SERVER="    }
    server {
        listen 127.0.0.1:$UP_TLS_PORT ssl$h2;
        ssl_certificate $PKI/upstream.pem;
        ssl_certificate_key $PKI/upstream.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 10000000;
        location / { return 200 \"$BODY\\n\"; }"
  NGX_TLS_SERVER="    }
    server {
        listen 127.0.0.1:$NGX_TLS_PORT;
        location / {
            proxy_pass https://upstream_tls_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $PKI/ca.pem;
            proxy_ssl_name 127.0.0.1;
            proxy_ssl_session_reuse on;
        }"
fi

nginx_conf upstream "        listen 127.0.0.1:$UP_PORT;
        location / { return 200 \"$BODY\\n\"; }
$UP_TLS_SERVER"
start_nginx upstream "$UP_PORT"

# The nginx proxies' keep-alive pool to the plain upstream (the SAME_HEAD one uses it too).
UPSTREAM_POOL="    upstream upstream_pool {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }"
nginx_conf nginx-proxy "        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://upstream_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
$NGX_TLS_SERVER" "$UPSTREAM_POOL
    upstream upstream_tls_pool {
        server 127.0.0.1:$UP_TLS_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }"
start_nginx nginx-proxy "$NGX_PORT"

body=$(curl -s --max-time 5 "http://127.0.0.1:$UP_PORT/app") || die "upstream nginx does not answer"
[ "$body" = "$BODY" ] || die "upstream nginx did not answer the ${BODY_BYTES}-byte body"
body=$(curl -s --max-time 5 "http://127.0.0.1:$NGX_PORT/app") || die "nginx proxy does not answer"
[ "$body" = "$BODY" ] || die "nginx proxy did not answer the upstream's body"
if [ "$UPSTREAM_TLS" != off ]; then
  body=$(curl -s --max-time 5 --cacert "$PKI/ca.pem" "https://127.0.0.1:$UP_TLS_PORT/app") || die "upstream nginx does not answer over TLS"
  [ "$body" = "$BODY" ] || die "upstream nginx did not answer its body over TLS"
  body=$(curl -s --max-time 5 "http://127.0.0.1:$NGX_TLS_PORT/app") || die "nginx TLS proxy does not answer"
  [ "$body" = "$BODY" ] || die "nginx TLS proxy did not answer the upstream's body"
fi

# ---------------------------------------------------------------- portcullis
# pc_config FILE PORT UPSTREAM_LINES: the portcullis config (both instances share the user
# database and the assertion key).
pc_config() {
cat >"$1" <<EOF
[server]
listen = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$PC_PORT"
default_login = "native"
workers = 1
access_log = false
signing_key = "assertion.p8"
$( [ "$SAME_HEAD" = 1 ] && echo 'trusted_proxies = ["127.0.0.1/32"]  # forward-auth needs it; wrk sends no X-Forwarded-For' )

[upstream]
$3
$( [ "$SAME_HEAD" = 1 ] && printf '\n[forward_auth]\nenabled = true\n' )

[session]
idle_timeout = "30m"
max_lifetime = "12h"
$(if [ "$SESSION_STORE" = redis ]; then printf 'store = "redis"\nredis_url = "%s"\nredis_prefix = "%s"\n' "$REDIS_URL" "$REDIS_PREFIX"; fi)

[storage]
url = "sqlite://portcullis.db"

[native]

[roles.end_user]
groups = ["end-users"]
require_mfa = false

[[routes]]
prefix = "/"
allow_roles = ["end_user"]
$( [ "$BEARER" = 1 ] && echo 'bearer = true' )
EOF
}
CONFIG=$OUT/portcullis.toml
pc_config "$CONFIG" "$PC_PORT" "url = \"http://127.0.0.1:$UP_PORT\""
if [ "$BEARER" = 1 ]; then
  # A service token made the way an operator makes one; only its hash goes into the config.
  tokens=$("$BIN" tokens new bench-client --role end_user) || die "step 'tokens new' failed"
  TOKEN=$(printf '%s\n' "$tokens" | head -n 1 | awk '{ print $NF }')
  [ -n "$TOKEN" ] || die "no token in the output of 'tokens new'"
  printf '\n%s\n' "$(printf '%s\n' "$tokens" | sed -n '/^\[\[service_tokens\]\]$/,$p')" >>"$CONFIG"
fi
# An admin listener with a metrics-only token: the run reads how many assertions were signed.
admin=$("$BIN" admin-token bench) || die "step 'admin-token' failed"
ADMIN_TOKEN=$(printf '%s\n' "$admin" | head -n 1 | awk '{ print $NF }')
printf '\n[admin]\nlisten = "127.0.0.1:%s"\n%s\n' "$PC_ADMIN_PORT" \
  "$(printf '%s\n' "$admin" | grep '^tokens = ' | sed 's/ }]$/, scopes = ["metrics"] }]/')" >>"$CONFIG"
check=$("$BIN" check --config "$CONFIG" 2>&1) || { echo "$check" >&2; die "portcullis check rejected $CONFIG"; }
[ "$(printf '%s\n' "$check" | tail -n 1)" = ok ] || { echo "$check" >&2; die "portcullis check did not print 'ok'"; }

log "creating native user 'bench' (role end_user)"
if ! out=$(printf '%s\n' "$PASSWORD" |
  timeout 60 "$BIN" users add bench --role end_user --password-stdin --config "$CONFIG" 2>&1); then
  echo "$out" >&2
  die "step 'users add' failed: $BIN users add bench --role end_user --password-stdin --config $CONFIG"
fi

"${PIN_PROXY[@]}" "$BIN" run --config "$CONFIG" >"$OUT/portcullis.log" 2>&1 &
PIDS+=($!)
portcullis_PID=$!
wait_port "$PC_PORT" "$portcullis_PID" "$OUT/portcullis.log"
portcullis_tls_PID=""
if [ "$UPSTREAM_TLS" != off ]; then
  CONFIG_TLS=$OUT/portcullis-tls.toml
  pc_config "$CONFIG_TLS" "$PC_TLS_PORT" "url = \"https://127.0.0.1:$UP_TLS_PORT\"
tls = { ca = \"$PKI/ca.pem\" }"
  check=$("$BIN" check --config "$CONFIG_TLS" 2>&1) || { echo "$check" >&2; die "portcullis check rejected $CONFIG_TLS"; }
  "${PIN_PROXY[@]}" "$BIN" run --config "$CONFIG_TLS" >"$OUT/portcullis-tls.log" 2>&1 &
  PIDS+=($!)
  portcullis_tls_PID=$!
  wait_port "$PC_TLS_PORT" "$portcullis_tls_PID" "$OUT/portcullis-tls.log"
fi

# ---------------------------------------------------------------- native login
# login PORT: signs 'bench' in on the portcullis at PORT; prints the session cookie header.
login() {
PC=http://127.0.0.1:$1
JAR=$OUT/cookies-$1.txt
form=$(curl -s --max-time 10 -c "$JAR" -b "$JAR" "$PC/normal") || die "step 'GET /normal' failed (curl error)"
csrf=$(printf '%s' "$form" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n 1)
if [ -z "$csrf" ]; then
  printf '%s\n' "$form" | head -n 40 >&2
  die "step 'GET /normal' failed: no csrf_token in the login form (body above)"
fi
status=$(curl -s --max-time 30 -c "$JAR" -b "$JAR" -o "$OUT/login-response.html" -w '%{http_code}' \
  --data-urlencode username=bench --data-urlencode "password=$PASSWORD" \
  --data-urlencode "csrf_token=$csrf" --data-urlencode rd=/ "$PC/normal") ||
  die "step 'POST /normal' failed (curl error)"
if [ "$status" != 302 ]; then
  head -n 40 "$OUT/login-response.html" >&2 || true
  die "step 'POST /normal' answered $status instead of 302 (body above)"
fi
# Netscape jar: 6th column name, 7th value; HttpOnly cookies start with '#HttpOnly_'.
session=$(awk -F'\t' '$6 == "portcullis" { v = $7 } END { print v }' "$JAR")
[ -n "$session" ] || { cat "$JAR" >&2; die "no 'portcullis' session cookie after login (jar above)"; }
local cookie="Cookie: portcullis=$session"

status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "$cookie" "$PC/app")
[ "$status" = 200 ] || die "GET /app with the session cookie answered $status instead of 200 (port $1)"
status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "$PC/app")
[ "$status" = 401 ] || die "GET /app without a session answered $status instead of 401 (port $1)"
log "login ok on port $1: authenticated GET /app -> 200, anonymous -> 401"
printf '%s' "$cookie"
}
COOKIE=$(login "$PC_PORT")
COOKIE_TLS=""
if [ "$UPSTREAM_TLS" != off ]; then COOKIE_TLS=$(login "$PC_TLS_PORT"); fi
if [ "$BEARER" = 1 ]; then
  status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PC_PORT/app")
  [ "$status" = 200 ] || die "GET /app with the service token answered $status instead of 200"
  status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "http://127.0.0.1:$PC_PORT/app")
  [ "$status" = 401 ] || die "GET /app with a wrong token answered $status instead of 401"
  log "bearer ok: service token -> 200, wrong token -> 401"
fi

# With SAME_HEAD: a second nginx proxy that adds what portcullis adds for this session, as
# static values (the assertion's expiry does not matter: the upstream does not read it).
nginx_same_PID=""
if [ "$SAME_HEAD" = 1 ]; then
  port_busy "$NGX_SAME_PORT" && die "port $NGX_SAME_PORT on 127.0.0.1 is already in use (set NGX_SAME_PORT)"
  ident=$(curl -s --max-time 10 -D - -o /dev/null -H "$COOKIE" -H "X-Original-URL: http://127.0.0.1:$PC_PORT/app" -H "X-Original-Method: GET" "http://127.0.0.1:$PC_PORT/_portcullis/auth/nginx" | tr -d '\r') ||
    die "forward-auth answer for SAME_HEAD failed"
  printf '%s\n' "$ident" | head -n 1 | grep -q ' 200' || { printf '%s\n' "$ident" >&2; die "forward-auth did not answer 200 for the bench session"; }
  sets=""
  while IFS= read -r line; do
    name=${line%%:*}; value=${line#*: }
    case ${name,,} in
      x-forwarded-user|x-forwarded-email|x-forwarded-groups|x-auth-roles|x-auth-method|x-auth-mfa|x-auth-session|x-portcullis-assertion)
        # Written into nginx's config inside quotes: refuse what nginx would read as syntax.
        case $value in *[\"\$\\\;{}]*) die "forward-auth header $name holds a character nginx's config cannot take as is" ;; esac
        [ -n "$value" ] && sets+="            proxy_set_header ${name,,} \"$value\";
" ;;
    esac
  done <<<"$ident"
  printf '%s' "$sets" | grep -q x-portcullis-assertion || die "no assertion in the forward-auth answer"
  nginx_conf nginx-same "        listen 127.0.0.1:$NGX_SAME_PORT;
        location / {
            proxy_pass http://upstream_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header x-forwarded-for \$remote_addr;
            proxy_set_header x-forwarded-proto \$scheme;
            proxy_set_header x-forwarded-host \$http_host;
$sets        }" "$UPSTREAM_POOL"
  start_nginx nginx-same "$NGX_SAME_PORT"
  body=$(curl -s --max-time 5 "http://127.0.0.1:$NGX_SAME_PORT/app") || die "nginx (same head) does not answer"
  [ "$body" = "$BODY" ] || die "nginx (same head) did not answer the upstream's body"
fi

# ---------------------------------------------------------------- measuring
# signed: portcullis_assertions_signed_total of the portcullis on PC_PORT.
signed() {
  curl -s --max-time 5 -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$PC_ADMIN_PORT/metrics" |
    awk '$1 == "portcullis_assertions_signed_total" { print $2 }'
}
# cpu_ticks PID: utime+stime of the process (all threads) and its direct children, in ticks.
cpu_ticks() {
  local pid=$1 total=0 p stat f
  for p in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    read -r -a f <<<"${stat##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
TICKS=$(getconf CLK_TCK)
# own_ticks: CPU of everything this script started: the three servers, plus (through this
# shell's cutime/cstime) the reaped children, i.e. wrk.
own_ticks() {
  local stat f
  stat=$(cat /proc/$$/stat); read -r -a f <<<"${stat##*) }"
  local tls=0
  [ -n "$portcullis_tls_PID" ] && tls=$(cpu_ticks "$portcullis_tls_PID")
  [ -n "$nginx_same_PID" ] && tls=$((tls + $(cpu_ticks "$nginx_same_PID")))
  echo $(( f[13] + f[14] + $(cpu_ticks "$upstream_PID") + $(cpu_ticks "$nginx_proxy_PID") + $(cpu_ticks "$portcullis_PID") + tls ))
}
# busy_ticks: user + nice + system + steal of the whole machine (irq/softirq left out: the
# kernel does not charge them to processes, so they cannot be split between us and others).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
NCPU=$(nproc)

# to_ms VALUE: wrk latency ("850.00us", "1.23ms", "1.02s", "1.50m") in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
    if (f < 0) { print "nan"; exit }
    printf "%.3f", n * f }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

TARGETS=(direct nginx portcullis)
# portcullis-hyper: the plain upstream through the general (hyper) path instead of the fast
# lane, which hands a request with `Content-Length` to hyper: the path an https upstream takes.
[ "$UPSTREAM_TLS" != off ] && TARGETS+=(portcullis-hyper nginx-tls portcullis-tls)
[ "$BEARER" = 1 ] && TARGETS+=(bearer)
[ "$SAME_HEAD" = 1 ] && TARGETS+=(nginx-same)
declare -A PORT=([direct]=$UP_PORT [nginx]=$NGX_PORT [portcullis]=$PC_PORT [portcullis-hyper]=$PC_PORT [nginx-tls]=$NGX_TLS_PORT [portcullis-tls]=$PC_TLS_PORT [bearer]=$PC_PORT [nginx-same]=$NGX_SAME_PORT)
declare -A PROXY_PID=([direct]="" [nginx]="" [portcullis]="" [portcullis-hyper]="" [nginx-tls]="" [portcullis-tls]="" [bearer]="" [nginx-same]="")
declare -A LABEL=([direct]="direct upstream (no proxy)" [nginx]="nginx proxy" [portcullis]="portcullis (authenticated)"
  [portcullis-hyper]="portcullis (authenticated), general path, plain upstream"
  [nginx-tls]="nginx proxy, https upstream" [portcullis-tls]="portcullis (authenticated), https upstream ($UPSTREAM_TLS)"
  [bearer]="portcullis (service token)" [nginx-same]="nginx proxy adding portcullis's identity headers and assertion (static)")
declare -A RPS P50 P99 PCPU UCPU ERRS OTHER
for t in "${TARGETS[@]}"; do ERRS[$t]=0; done
PROXY_PID[nginx]=$nginx_proxy_PID
PROXY_PID[portcullis]=$portcullis_PID
PROXY_PID[portcullis-hyper]=$portcullis_PID
PROXY_PID[nginx-tls]=$nginx_proxy_PID
PROXY_PID[portcullis-tls]=$portcullis_tls_PID
PROXY_PID[bearer]=$portcullis_PID
PROXY_PID[nginx-same]=$nginx_same_PID

# wrk_run TARGET SECONDS OUTFILE
# wrk runs in the background and the script `wait`s for it: wrk catches SIGINT and exits 0,
# so as a foreground child it would swallow Ctrl-C; `wait` lets the INT trap run at once.
wrk_run() {
  local t=$1 secs=$2 outf=$3 hdr=() pid rc=0
  [ "$t" = portcullis ] && hdr=(-H "$COOKIE")
  [ "$t" = portcullis-hyper ] && hdr=(-H "$COOKIE" -H "Content-Length: 0")
  [ "$t" = portcullis-tls ] && hdr=(-H "$COOKIE_TLS")
  [ "$t" = bearer ] && hdr=(-H "Authorization: Bearer $TOKEN")
  timeout -k 5 $((secs + 30)) "${PIN_WRK[@]}" \
    wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency "${hdr[@]}" "http://127.0.0.1:${PORT[$t]}/app" >"$outf" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  unset 'PIDS[-1]'
  [ $rc = 0 ] || { cat "$outf" >&2; die "wrk against $t failed (exit $rc)"; }
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SIGNED0=$(signed); [ -n "$SIGNED0" ] || die "no portcullis_assertions_signed_total at the admin listener (port $PC_ADMIN_PORT)"
PC_REQS=0
log "warm-up: ${WARMUP}s per target"
for t in "${TARGETS[@]}"; do wrk_run "$t" "$WARMUP" "$OUT/wrk-warmup-$t.txt"; done

RUN_T0=$(date +%s)
for r in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    f=$OUT/wrk-round$r-$t.txt
    log "round $r/$ROUNDS: $t (${DURATION}s)"
    pc0=0; [ -n "${PROXY_PID[$t]}" ] && pc0=$(cpu_ticks "${PROXY_PID[$t]}")
    uc0=$(cpu_ticks "$upstream_PID")
    own0=$(own_ticks); busy0=$(busy_ticks); t0=$(date +%s%N)
    wrk_run "$t" "$DURATION" "$f"
    own1=$(own_ticks); busy1=$(busy_ticks); t1=$(date +%s%N)
    pc1=0; [ -n "${PROXY_PID[$t]}" ] && pc1=$(cpu_ticks "${PROXY_PID[$t]}")
    uc1=$(cpu_ticks "$upstream_PID")
    OTHER[$t,$r]=$(awk -v b=$((busy1 - busy0)) -v o=$((own1 - own0)) -v hz="$TICKS" -v n="$NCPU" -v ns=$((t1 - t0)) \
      'BEGIN { x = (b - o) / hz / (n * ns / 1e9) * 100; printf "%.0f", (x < 0 ? 0 : x) }')
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
    reqs=$(awk '/requests in/ { print $1 }' "$f")
    p50=$(awk '/Latency Distribution/ { d = 1 } d && $1 == "50%" { print $2; exit }' "$f")
    p99=$(awk '/Latency Distribution/ { d = 1 } d && $1 == "99%" { print $2; exit }' "$f")
    [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] && [ -n "$reqs" ] || { cat "$f" >&2; die "cannot parse wrk output $f"; }
    RPS[$t,$r]=$rps
    P50[$t,$r]=$(to_ms "$p50")
    P99[$t,$r]=$(to_ms "$p99")
    UCPU[$t,$r]=$(awk -v d=$((uc1 - uc0)) -v n="$reqs" -v hz="$TICKS" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    PCPU[$t,$r]=$(awk -v d=$((pc1 - pc0)) -v n="$reqs" -v hz="$TICKS" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$f")
    ERRS[$t]=$((ERRS[$t] + bad))
    [ "$t" = portcullis ] && PC_REQS=$((PC_REQS + reqs))
  done
done
SIGNED1=$(signed); [ -n "$SIGNED1" ] || die "no portcullis_assertions_signed_total after the rounds"
RUN_SECONDS=$(( $(date +%s) - ${RUN_T0:-$(date +%s)} ))

# ---------------------------------------------------------------- report
declare -A MED_RPS MED_P50 MED_P99 MAX_OTHER ADDED_P50
row_vals() { local t=$1 r out=(); local -n arr=$2; for r in $(seq "$ROUNDS"); do out+=("${arr[$t,$r]}"); done; echo "${out[@]}"; }
max_other=0
for t in "${TARGETS[@]}"; do
  MED_RPS[$t]=$(median $(row_vals "$t" RPS))
  MED_P50[$t]=$(median $(row_vals "$t" P50))
  MED_P99[$t]=$(median $(row_vals "$t" P99))
  # Added p50: the median over rounds of this target's p50 minus the direct upstream's in the
  # same round (with CONNECTIONS=1, the proxy's own latency).
  added=()
  for r in $(seq "$ROUNDS"); do
    added+=("$(awk -v a="${P50[$t,$r]}" -v b="${P50[direct,$r]}" 'BEGIN { printf "%.0f", (a - b) * 1000 }')")
  done
  ADDED_P50[$t]=$(median "${added[@]}")
  MAX_OTHER[$t]=$(printf '%s\n' $(row_vals "$t" OTHER) | sort -n | tail -n 1)
  [ "${MAX_OTHER[$t]}" -gt "$max_other" ] && max_other=${MAX_OTHER[$t]}
done
ratio=$(awk -v a="${MED_RPS[portcullis]}" -v b="${MED_RPS[nginx]}" 'BEGIN { printf "%.3f", a / b }')
round_ratios=()
for r in $(seq "$ROUNDS"); do
  round_ratios+=("$(awk -v a="${RPS[portcullis,$r]}" -v b="${RPS[nginx,$r]}" 'BEGIN { printf "%.2f", a / b }')")
done
round_median=$(median "${round_ratios[@]}")
verdict=$(awk -v r="$ratio" -v b="$BUDGET" 'BEGIN { print (r >= b) ? "PASS" : "BELOW" }')
invalid=0
for t in "${TARGETS[@]}"; do [ "${ERRS[$t]}" -eq 0 ] || invalid=1; done
[ $invalid = 1 ] && verdict="INVALID (non-2xx responses or socket errors, see the errors column)"

pinning="none (the scheduler places wrk, the proxy and the upstream)"
[ -n "$CPUS_WRK$CPUS_PROXY$CPUS_UPSTREAM" ] &&
  pinning="wrk on CPU ${CPUS_WRK:-any}, proxy on CPU ${CPUS_PROXY:-any}, upstream on CPU ${CPUS_UPSTREAM:-any}"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (with uncommitted changes)"
{
  echo "## portcullis vs nginx: authenticated proxy path"
  echo
  echo "- machine: $NCPU CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), load average at start: $LOAD_START"
  echo "- load: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` on \`GET /app\` (one wrk thread, so the load generator takes about one core), $ROUNDS interleaved rounds (${TARGETS[*]}), ${WARMUP}s warm-up per target; CPU pinning: $pinning"
  echo "- upstream: nginx \`return 200\` with a ${BODY_BYTES}-byte body; both proxies: 1 worker, no access log, keep-alive pool to the upstream; portcullis: $( [ "$SESSION_STORE" = redis ] && echo "Redis session store ($REDIS_URL)" || echo "in-memory session store"), one native-login session (role end_user)"
  echo "- versions: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }'), portcullis $commit, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  hdr="| target |"; sep="|---|"
  for r in $(seq "$ROUNDS"); do hdr+=" round $r req/s |"; sep+="---:|"; done
  echo "$hdr median req/s | p50 median (ms) | added p50 (µs) | p99 median (ms) | proxy CPU µs/req | upstream CPU µs/req | other CPU % (max) | errors |"
  echo "$sep---:|---:|---:|---:|---:|---:|---:|---:|"
  for t in "${TARGETS[@]}"; do
    line="| ${LABEL[$t]} |"
    for r in $(seq "$ROUNDS"); do line+=" $(printf '%.0f' "${RPS[$t,$r]}") |"; done
    pcpu="—"; [ "$t" != direct ] && pcpu=$(printf '%.1f' "$(median $(row_vals "$t" PCPU))")
    ucpu=$(printf '%.1f' "$(median $(row_vals "$t" UCPU))")
    added="—"; [ "$t" != direct ] && added="+${ADDED_P50[$t]}"
    line+=" $(printf '%.0f' "${MED_RPS[$t]}") | $(printf '%.3f' "${MED_P50[$t]}") | $added | $(printf '%.2f' "${MED_P99[$t]}") | $pcpu | $ucpu | ${MAX_OTHER[$t]} | ${ERRS[$t]} |"
    echo "$line"
  done
  echo
  echo "**portcullis / nginx (median req/s): $ratio** — budget ≥ $BUDGET (DESIGN.md §7): **$verdict**"
  echo
  echo "- per-round ratios: ${round_ratios[*]} (median $round_median)"
  echo "- added p50 (median over rounds of p50 minus the direct upstream's p50 in the same round): nginx +${ADDED_P50[nginx]} µs, portcullis +${ADDED_P50[portcullis]} µs"
  if [ "$UPSTREAM_TLS" != off ]; then
    tls_ratio=$(awk -v a="${MED_RPS[portcullis-tls]}" -v b="${MED_RPS[portcullis]}" 'BEGIN { printf "%.3f", a / b }')
    ngx_tls_ratio=$(awk -v a="${MED_RPS[nginx-tls]}" -v b="${MED_RPS[nginx]}" 'BEGIN { printf "%.3f", a / b }')
    tls_vs_ngx=$(awk -v a="${MED_RPS[portcullis-tls]}" -v b="${MED_RPS[nginx-tls]}" 'BEGIN { printf "%.3f", a / b }')
    hyper_ratio=$(awk -v a="${MED_RPS[portcullis-hyper]}" -v b="${MED_RPS[portcullis]}" 'BEGIN { printf "%.3f", a / b }')
    tls_hyper=$(awk -v a="${MED_RPS[portcullis-tls]}" -v b="${MED_RPS[portcullis-hyper]}" 'BEGIN { printf "%.3f", a / b }')
    echo "- portcullis general path / fast lane, plain upstream: $hyper_ratio; https upstream / general path plain: $tls_hyper (the https upstream always takes the general path)"
    echo "- https upstream ($UPSTREAM_TLS): portcullis https / plain **$tls_ratio**; nginx https / plain $ngx_tls_ratio; portcullis / nginx, both to the https upstream: $tls_vs_ngx (no budget: DESIGN.md §7 is about the plain path)"
  fi
  if [ "$BEARER" = 1 ]; then
    bratio=$(awk -v a="${MED_RPS[bearer]}" -v b="${MED_RPS[portcullis]}" 'BEGIN { printf "%.3f", a / b }')
    echo "- service token (bearer) / session cookie (median req/s): **$bratio**; the bearer path is the general (hyper) path, the cookie one the fast lane"
  fi
  if [ "$SAME_HEAD" = 1 ]; then
    same_ratio=$(awk -v a="${MED_RPS[portcullis]}" -v b="${MED_RPS[nginx-same]}" 'BEGIN { printf "%.3f", a / b }')
    same_rounds=()
    for r in $(seq "$ROUNDS"); do
      same_rounds+=("$(awk -v a="${RPS[portcullis,$r]}" -v b="${RPS[nginx-same,$r]}" 'BEGIN { printf "%.2f", a / b }')")
    done
    echo "- same request head to the upstream: portcullis / nginx adding the same headers **$same_ratio** (per round ${same_rounds[*]}, median $(median "${same_rounds[@]}")); added p50 nginx-same +${ADDED_P50[nginx-same]} µs"
  fi
  echo "- assertions signed by portcullis during the rounds: $((SIGNED1 - SIGNED0)) for $PC_REQS authenticated requests over ${RUN_SECONDS}s (one session: re-signed every 30 s, \`portcullis_assertions_signed_total\`)"
  echo "- p99 is measured at saturation (wrk has no fixed-rate mode), not at half of peak load."
  if [ "$max_other" -gt 10 ]; then
    echo "- **warning:** other processes used up to ${max_other}% of the machine's CPU during a run: these numbers are disturbed; run again on a quiet machine."
  fi
} >"$OUT/results.md.tmp"
mv "$OUT/results.md.tmp" "$OUT/results.md"
echo
cat "$OUT/results.md"
echo
log "raw wrk outputs, configs and logs are in bench/out/; this table is bench/out/results.md"
[ $invalid = 0 ] || exit 1
