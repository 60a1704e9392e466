#!/usr/bin/env bash
# demo.sh: tcpcopy end to end in the network-namespace lab.
#
# Builds tcpcopy, brings up the lab (scripts/lab.sh), runs nginx on the online
# host and on the target, `tcpcopy intercept` on the assistant and
# `tcpcopy copy` on the online host, sends REQUESTS short HTTP requests from
# the client to the online host, then prints how many requests each nginx
# logged. Tears everything down on exit, also after an error.
#
# Usage: sudo scripts/demo.sh            (REQUESTS=N, default 100, at most 10000)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PREFIX=demo
readonly REQUESTS=${REQUESTS:-100}
readonly MAX_REQUESTS=10000
readonly INTERCEPT_PORT=36524
readonly LAB=scripts/lab.sh

die() {
    echo "demo.sh: $*" >&2
    exit 2
}

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, raw sockets): run sudo scripts/demo.sh"
if ! [[ $REQUESTS =~ ^[0-9]+$ ]] || ((REQUESTS < 1 || REQUESTS > MAX_REQUESTS)); then
    die "REQUESTS must be 1..$MAX_REQUESTS, not '$REQUESTS'"
fi
$LAB check

cargo build --release --bin tcpcopy
tcpcopy=$(realpath "${CARGO_TARGET_DIR:-target}/release/tcpcopy")

work=$(mktemp -d /tmp/tcpcopy-demo.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    $LAB down --prefix "$PREFIX"
    echo "logs kept in $work"
}
trap cleanup EXIT

# Starts `lab.sh exec HOST CMD...` in the background, output to $work/NAME.log.
# `lab.sh exec` execs `ip netns exec`, which execs CMD: $! is CMD's own pid.
start() {
    local name=$1 host=$2
    shift 2
    $LAB exec --prefix "$PREFIX" "$host" "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
}

# Waits up to 5 s for a TCP listener on PORT inside HOST.
wait_listening() {
    local host=$1 port=$2 tries
    for ((tries = 0; tries < 50; tries++)); do
        if $LAB exec --prefix "$PREFIX" "$host" ss -Hltn "sport = :$port" | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    die "nothing listens on port $port in $host (logs: $work)"
}

$LAB up --prefix "$PREFIX"

$LAB nginx --prefix "$PREFIX" online "$work/nginx-online" >"$work/nginx-online.log" 2>&1 &
pids+=("$!")
$LAB nginx --prefix "$PREFIX" target "$work/nginx-target" >"$work/nginx-target.log" 2>&1 &
pids+=("$!")
wait_listening online 80
wait_listening target 80

start intercept assistant "$tcpcopy" intercept -i eth0 -F 'tcp and src port 80'
wait_listening assistant "$INTERCEPT_PORT"
start copy online "$tcpcopy" copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40
sleep 1
kill -0 "${pids[-1]}" 2>/dev/null || die "tcpcopy copy exited: $(cat "$work/copy.log")"

echo "sending $REQUESTS requests from client to online (198.51.100.20:80)"
ok=$($LAB exec --prefix "$PREFIX" client curl -s -o /dev/null --max-time 2 -H 'Connection: close' \
    -w '%{http_code}\n' "http://198.51.100.20/?n=[1-$REQUESTS]" | grep -c '^200$' || true)
# Give the last copied sessions time to finish at the target.
sleep 2

count() {
    if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}
echo "client: $ok of $REQUESTS requests answered"
echo "online access log: $(count "$work/nginx-online/access.log") requests"
echo "target access log: $(count "$work/nginx-target/access.log") requests"
