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
# Installs the Debian packages it needs first (scripts/packages.sh, the list CI
# uses; on other systems it lists them).
#
# Usage: sudo scripts/demo.sh [--check]  (REQUESTS=N, default 100, at most 10000;
#        as root, without sudo: scripts/demo.sh)
# --check: exit 1 unless every request was answered, both access logs hold exactly
# REQUESTS requests and the loss report says 0 (scripts/test.sh runs it so).
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

check=false
case ${1:-} in
    --check) check=true ;;
    "") ;;
    *) die "unknown argument '$1' (usage: scripts/demo.sh [--check])" ;;
esac

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, raw sockets): run sudo scripts/demo.sh"
if ! [[ $REQUESTS =~ ^[0-9]+$ ]] || ((REQUESTS < 1 || REQUESTS > MAX_REQUESTS)); then
    die "REQUESTS must be 1..$MAX_REQUESTS, not '$REQUESTS'"
fi
# shellcheck source=scripts/packages.sh
. scripts/packages.sh
require_cargo
install_packages
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

online=$(lines "$work/nginx-online/access.log")
target=$(lines "$work/nginx-target/access.log")
echo "client: $ok of $REQUESTS requests answered"
echo "online access log: $online requests"
echo "target access log: $target requests"
echo "the loss, from both access logs (tcpcopy stats logs, whole run):"
chart=$work/loss.svg
report=0
"$tcpcopy" stats logs --window 10s --edges --max-loss 0 --svg "$chart" \
    --online "$work/nginx-online/access.combined.log" \
    --target "$work/nginx-target/access.combined.log" || report=$?
echo "the chart of it: $chart"
if $check && ! ((ok == REQUESTS && online == REQUESTS && target == REQUESTS && report == 0)); then
    die "check failed: $ok answered, $online online, $target at the target of $REQUESTS; stats logs exited $report"
fi
