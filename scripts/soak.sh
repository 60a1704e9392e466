#!/usr/bin/env bash
# soak.sh: a long replay in the network-namespace lab, judged as a hot backup is.
#
# Brings up a lab (scripts/lab.sh) under its own prefix, nginx on the online
# host and on the target, `tcpcopy intercept` on the assistant and `tcpcopy
# copy` on the online host (assistant mode, scripts/replication.sh), then sends
# N short HTTP requests at RATE/s from the client (examples/http_load, in
# segments of at most a minute). Passes (exit 0) when:
#   - every request succeeded for the client and the online nginx logged it;
#   - loss, 1 - target/online from the access logs once the target's log has
#     stopped growing, is at most 1/100,000;
#   - copy's own counters say exactly what the logs say: requests_not_sent is
#     the requests the target is missing and kernel_dropped is 0;
#   - copy's and intercept's RSS at the end are within 10 % of their RSS at the
#     reference point: after the first 10 % of the requests, or after
#     REFERENCE_SECS if that is later (copy's table holds closed sessions for
#     6 s of TIME-WAIT, so it is full only after that).
# Exit 1 when a criterion fails, 2 on a usage or set-up error. Bounded: N and
# RATE are capped; traffic stays inside the lab's namespaces. Stops only the
# processes it started, by pid, and removes the lab on exit.
#
# Usage: sudo scripts/soak.sh [OPTIONS]
#   --requests N   requests in all (1000..2000000, more than R x 15) [1000000]
#   --rate R       requests/s (100..10000)                           [3000]
#   --json FILE    append the result as one JSON line to FILE
#   --prefix P     lab prefix                                        [soak]
#   --logs DIR     keep logs in DIR (default: a new /tmp dir)
set -euo pipefail
readonly CALLER_DIR=$PWD
cd "$(dirname "$0")/.."

readonly LAB=scripts/lab.sh
readonly SEGMENT_SECS=60
readonly REFERENCE_SECS=15
# The target's log is drained once it has not grown for this long (tenths of a
# second), or at the latest this long after the load.
readonly STABLE_TENTHS=30
readonly MAX_DRAIN_SECS=60

die() {
    echo "soak.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

requests=1000000 rate=3000 json='' prefix=soak work=''
while (($# > 0)); do
    (($# >= 2)) || usage
    case $1 in
        --requests) requests=$2 ;;
        --rate) rate=$2 ;;
        --json) json=$2 ;;
        --prefix) prefix=$2 ;;
        --logs) work=$2 ;;
        *) usage ;;
    esac
    shift 2
done
is_count() { [[ $1 =~ ^[0-9]+$ ]]; }
from_caller() { if [[ -z $1 || $1 == /* ]]; then echo "$1"; else echo "$CALLER_DIR/$1"; fi; }
json=$(from_caller "$json") work=$(from_caller "$work")
is_count "$requests" && ((requests >= 1000 && requests <= 2000000)) ||
    die "--requests must be 1000..2000000, not '$requests'"
is_count "$rate" && ((rate >= 100 && rate <= 10000)) || die "--rate must be 100..10000, not '$rate'"
((requests > rate * REFERENCE_SECS)) ||
    die "--requests $requests at --rate $rate ends before the RSS reference point ($REFERENCE_SECS s): send more than $((rate * REFERENCE_SECS))"
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, raw sockets): run sudo scripts/soak.sh"
$LAB check

cargo build --release --bin tcpcopy --example http_load
target_dir=$(realpath "${CARGO_TARGET_DIR:-target}")
readonly tcpcopy=$target_dir/release/tcpcopy http_load=$target_dir/release/examples/http_load

work=${work:-$(mktemp -d /tmp/tcpcopy-soak.XXXXXX)}
mkdir -p "$work"
work=$(realpath "$work")
# shellcheck source=scripts/replication.sh
. scripts/replication.sh
trap replication_cleanup EXIT

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# The value of COUNTER in the last "totals" line of LOG.
total() { grep -o "totals: .*" "$2" | tail -n1 | grep -o "$1 [0-9]*" | awk '{ print $2 }'; }

online_log=$work/nginx-online/access.log
target_log=$work/nginx-target/access.log

$LAB up --prefix "$prefix" --offloads off
$LAB exec --prefix "$prefix" client sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
start_replication 10s

warm_up "$target_log" "$work"
online_before=$(lines "$online_log") target_before=$(lines "$target_log")

# send N: N requests at the rate, at most SEGMENT_SECS; adds to sent/failed.
sent=0 failed=0
send() {
    local out=$work/client-$((sent + $1)).json
    $LAB exec --prefix "$prefix" client "$http_load" "$REPL_ONLINE_ADDR:80" --rate "$rate" \
        --duration "$((SEGMENT_SECS + 5))s" --requests "$1" --mode short --connections 50 >"$out"
    sent=$((sent + $(grep -o '"sent":[0-9]*' "$out" | cut -d: -f2)))
    failed=$((failed + $(grep -o '"failed":[0-9]*' "$out" | cut -d: -f2)))
}

echo "soak: $requests short requests at $rate/s (about $((requests / rate)) s); logs in $work"
started=$SECONDS
first=$((requests / 10 > rate * REFERENCE_SECS ? requests / 10 : rate * REFERENCE_SECS))
send "$first"
copy_rss_ref=$(rss_kb "$copy_pid") intercept_rss_ref=$(rss_kb "$intercept_pid")
echo "reference after $sent requests ($((SECONDS - started)) s): copy RSS $copy_rss_ref KiB, intercept RSS $intercept_rss_ref KiB"
while ((sent < requests)); do
    left=$((requests - sent)) segment=$((rate * SEGMENT_SECS))
    send $((left < segment ? left : segment))
    echo "  $sent requests sent, $failed failed, $((SECONDS - started)) s"
done

last=-1 stable=0 drain_start=$SECONDS
while ((stable < STABLE_TENTHS && SECONDS - drain_start < MAX_DRAIN_SECS)); do
    now=$(lines "$target_log")
    if ((now == last)); then stable=$((stable + 1)); else stable=0 last=$now; fi
    sleep 0.1
done
copy_rss_end=$(rss_kb "$copy_pid") intercept_rss_end=$(rss_kb "$intercept_pid")
online=$(($(lines "$online_log") - online_before))
target=$(($(lines "$target_log") - target_before))
stop_pids "$copy_pid" "$intercept_pid"
not_sent=$(total requests_not_sent "$work/copy.log")
dropped=$(total kernel_dropped "$work/copy.log")

verdicts=()
check() { # NAME CONDITION-TEXT RESULT(0|1)
    if (($3 == 0)); then verdicts+=("pass  $1: $2"); else verdicts+=("FAIL  $1: $2"); fi
}
check client "$sent sent, $failed failed, online logged $online" $((failed != 0 || online != sent))
loss=$(awk -v o="$online" -v t="$target" 'BEGIN { printf "%.7f", (o - t) / o }')
check loss "1 - $target/$online = $loss (at most 0.00001)" \
    "$(awk -v l="$loss" 'BEGIN { print (l > 0.00001) }')"
check counters "requests_not_sent ${not_sent:-?} for $((online - target)) missing, kernel_dropped ${dropped:-?}" \
    $((${not_sent:--1} != online - target || ${dropped:--1} != 0))
for role in copy intercept; do
    ref_var=${role}_rss_ref end_var=${role}_rss_end
    check "$role RSS" "${!ref_var} KiB at the reference, ${!end_var} KiB at the end (at most +10 %)" \
        $((${!end_var} * 10 > ${!ref_var} * 11))
done
printf '%s\n' "${verdicts[@]}"
failures=$(printf '%s\n' "${verdicts[@]}" | grep -c '^FAIL' || true)
[[ -z $json ]] || printf '{"requests":%s,"rate":%s,"seconds":%s,"online":%s,"target":%s,"loss":%s,"requests_not_sent":%s,"kernel_dropped":%s,"copy_rss_kib":[%s,%s],"intercept_rss_kib":[%s,%s],"passed":%s}\n' \
    "$requests" "$rate" "$((SECONDS - started))" "$online" "$target" "$loss" "${not_sent:-null}" \
    "${dropped:-null}" "$copy_rss_ref" "$copy_rss_end" "$intercept_rss_ref" "$intercept_rss_end" \
    "$([[ $failures == 0 ]] && echo true || echo false)" >>"$json"
if ((failures > 0)); then
    echo "soak: $failures criteria failed (logs: $work)"
    exit 1
fi
echo "soak: passed"
