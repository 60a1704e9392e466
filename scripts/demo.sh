#!/usr/bin/env bash
# demo.sh: tcpcopy end to end in the network-namespace lab.
#
# Builds tcpcopy, brings up the lab (scripts/lab.sh), runs nginx on the online
# host and on the target, `tcpcopy intercept` on the assistant and
# `tcpcopy copy` on the online host, sends REQUESTS short HTTP requests from
# the client to the online host, then prints how many requests each nginx
# logged and the loss report of `tcpcopy stats logs` on both access logs.
# Tears everything down on exit, also after an error.
#
# Usage: sudo scripts/demo.sh            (REQUESTS=N, default 100, at most 10000)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PREFIX=demo
readonly REQUESTS=${REQUESTS:-100}
readonly MAX_REQUESTS=10000
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
prefix=$PREFIX
# shellcheck source=scripts/replication.sh
. scripts/replication.sh
trap replication_cleanup EXIT

$LAB up --prefix "$PREFIX"
start_replication 5s
sleep 1
kill -0 "$copy_pid" 2>/dev/null || die "tcpcopy copy exited: $(cat "$work/copy.log")"

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
echo "the loss, from both access logs (tcpcopy stats logs, whole run):"
"$tcpcopy" stats logs --window 10s --edges \
    --online "$work/nginx-online/access.combined.log" \
    --target "$work/nginx-target/access.combined.log" || true
