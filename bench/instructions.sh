#!/usr/bin/env bash
# Instructions per authenticated proxied request, counted by valgrind's callgrind: repeatable
# for the same binary and input whatever else the machine is doing, so a before/after
# comparison needs no quiet machine (bench/run.sh measures seconds and needs one).
#
# Usage: bench/instructions.sh [BIN ...]   (default: target/release/portcullis, built if missing)
#   N=1000  requests in the long run (the short run sends 100; the difference is divided by N-100,
#           so start-up, login and the first connection cancel out)
#   UP_PORT=18090 PC_PORT=18092 NGX_PORT=18091   loopback ports
#   SESSION_STORE=redis  portcullis keeps sessions in the Redis at REDIS_URL (default
#           redis://127.0.0.1:6379/0, own key prefix, removed at the end); nginx is unchanged
# Each BIN (and nginx as a plain reverse proxy, with `SKIP_NGINX=1` to skip it) is started under
# callgrind twice, each time behind a fresh nginx upstream that runs under callgrind too (what
# the proxy's requests cost the server behind it: a bigger request head, more header fields);
# one keep-alive connection sends bodiless GETs with a valid session cookie (the fast lane).
# Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-1000}
SHORT=100
UP_PORT=${UP_PORT:-18090}
NGX_PORT=${NGX_PORT:-18091}
PC_PORT=${PC_PORT:-18092}
PASSWORD=bench-password-123
SESSION_STORE=${SESSION_STORE:-memory}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
REDIS_PREFIX="instr-$$-$(date +%s):"
OUT=$ROOT/bench/out/instructions
die() { echo "instructions: $*" >&2; exit 1; }
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -gt "$SHORT" ] || die "N must be an integer above $SHORT"
for t in valgrind curl; do command -v $t >/dev/null || die "$t is needed (apt-get install $t)"; done
case $SESSION_STORE in
  memory) ;;
  redis) command -v redis-cli >/dev/null && redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 ||
    die "SESSION_STORE=redis needs redis-cli and a Redis answering at $REDIS_URL" ;;
  *) die "SESSION_STORE must be 'memory' or 'redis' (got '$SESSION_STORE')" ;;
esac
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX_BIN" ] || die "nginx is needed (apt-get install nginx-light)"
BINS=("$@")
if [ ${#BINS[@]} = 0 ]; then
  [ -x target/release/portcullis ] || cargo build --release --locked
  BINS=("$ROOT/target/release/portcullis")
fi

PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ "$SESSION_STORE" = redis ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1
  fi
}
trap cleanup EXIT
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 600); do port_busy "$1" && return 0; kill -0 "$2" 2>/dev/null || return 1; sleep 0.1; done
  return 1
}
rm -rf "$OUT"; mkdir -p "$OUT"

nginx_conf() { # DIR LISTEN LOCATION [HTTP_EXTRA]
  mkdir -p "$1/logs" "$1/tmp"
  cat >"$1/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    ${4:-}
    server { listen 127.0.0.1:$2; location / { $3 } }
}
EOF
}
nginx_conf "$OUT/upstream" "$UP_PORT" 'return 200 "ok\n";'

# requests COUNT URL [HEADER]: COUNT GETs on one keep-alive connection.
requests() {
  local args=() i
  for i in $(seq "$1"); do args+=("$2"); done
  curl -s -o /dev/null ${3:+-H "$3"} "${args[@]}"
}

# stop PID: TERM until it exits (a process under valgrind has been seen to miss the first one),
# never KILL: callgrind writes its counts at exit.
stop() {
  local i
  for i in $(seq 60); do
    kill -TERM "$1" 2>/dev/null || break
    for _ in 1 2 3 4 5; do kill -0 "$1" 2>/dev/null || break 2; sleep 0.2; done
  done
  wait "$1" 2>/dev/null || true
}

# ir OUTFILE: total instructions in a callgrind output file.
ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# measure NAME COUNT START-COMMAND...: instructions of a server that served COUNT requests,
# and of the upstream behind it ("SERVER UPSTREAM").
measure() {
  local name=${1//[^A-Za-z0-9.-]/_} count=$2; shift 2
  local f=$OUT/$name.$count.callgrind u=$OUT/$name.$count.upstream.callgrind
  valgrind --tool=callgrind --callgrind-out-file="$u" \
    "$NGINX_BIN" -p "$OUT/upstream/" -c "$OUT/upstream/nginx.conf" >"$OUT/$name.$count.upstream.log" 2>&1 &
  local upid=$!
  PIDS+=($upid)
  wait_port "$UP_PORT" $upid || die "upstream nginx did not start under valgrind"
  valgrind --tool=callgrind --callgrind-out-file="$f" "$@" >"$OUT/$name.$count.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  wait_port "$PORT" $pid || { tail -20 "$OUT/$name.$count.log" >&2; die "$name did not start under valgrind"; }
  prepare
  requests "$count" "$URL" "$HEADER" >/dev/null
  stop $pid; stop $upid
  echo "$(ir "$f") $(ir "$u")"
}

row() { # NAME START-COMMAND...
  local name=$1; shift
  local a b
  a=$(measure "$name" "$SHORT" "$@") && [[ $a =~ ^[0-9]+\ [0-9]+$ ]] || die "no count for $name ($SHORT requests)"
  b=$(measure "$name" "$N" "$@") && [[ $b =~ ^[0-9]+\ [0-9]+$ ]] || die "no count for $name ($N requests)"
  echo "| $name | $(( (${b% *} - ${a% *}) / (N - SHORT) )) | $(( (${b#* } - ${a#* }) / (N - SHORT) )) |"
}

echo "| server | instructions per request | its upstream's instructions per request |"
echo "|---|---|---|"
if [ "${SKIP_NGINX:-0}" != 1 ]; then
  nginx_conf "$OUT/nginx" "$NGX_PORT" 'proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";' \
    "upstream up { server 127.0.0.1:$UP_PORT; keepalive 16; }"
  PORT=$NGX_PORT URL=http://127.0.0.1:$NGX_PORT/app HEADER=
  prepare() { :; }
  row "nginx (plain reverse proxy)" "$NGINX_BIN" -p "$OUT/nginx/" -c "$OUT/nginx/nginx.conf"
fi

i=0
for bin in "${BINS[@]}"; do
  i=$((i + 1))
  dir=$OUT/pc$i; mkdir -p "$dir"
  cat >"$dir/portcullis.toml" <<EOF
[server]
listen = "127.0.0.1:$PC_PORT"
public_url = "http://127.0.0.1:$PC_PORT"
default_login = "native"
workers = 1
access_log = false
signing_key = "assertion.p8"

[upstream]
url = "http://127.0.0.1:$UP_PORT"

$(if [ "$SESSION_STORE" = redis ]; then printf '[session]\nstore = "redis"\nredis_url = "%s"\nredis_prefix = "%s"\n' "$REDIS_URL" "$REDIS_PREFIX$i:"; fi)

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
  (cd "$dir" && printf '%s\n' "$PASSWORD" | "$bin" users add bench --role end_user \
    --password-stdin --config "$dir/portcullis.toml" >/dev/null 2>&1) || die "users add failed for $bin"
  PORT=$PC_PORT URL=http://127.0.0.1:$PC_PORT/app
  # Each start logs in afresh and sets HEADER for the requests.
  prepare() {
    local jar=$dir/jar form csrf
    rm -f "$jar"
    form=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:$PC_PORT/normal")
    csrf=$(printf '%s' "$form" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n 1)
    curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode username=bench \
      --data-urlencode "password=$PASSWORD" --data-urlencode "csrf_token=$csrf" \
      --data-urlencode rd=/ "http://127.0.0.1:$PC_PORT/normal"
    HEADER="Cookie: portcullis=$(awk -F'\t' '$6 == "portcullis" { v = $7 } END { print v }' "$jar")"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$HEADER" "$URL")" = 200 ] ||
      die "login through $bin did not give a working session"
  }
  (cd "$dir" && row "portcullis $(basename "$(dirname "$bin")")/$(basename "$bin")" "$bin" run --config "$dir/portcullis.toml")
done
