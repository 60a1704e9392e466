#!/usr/bin/env bash
# load.sh: measure tcpcopy under HTTP load in the network-namespace lab.
#
# Brings up a lab (scripts/lab.sh) under its own prefix, runs nginx on the
# online host and on the target, `tcpcopy intercept` on the assistant and
# `tcpcopy copy` on the online host (assistant mode), then sends a bounded
# HTTP load from the client to the online host with examples/http_load.
# Reports what the client sent, what each nginx logged 3 s after the load
# stopped (the C tool's measurement point) and once the target's log stops
# growing, the loss, CPU time of copy and intercept per 1,000 requests, their
# peak RSS, copy's busiest threads and copy's counters. Tears everything down
# on exit, also after an error; stops only the processes it started, by pid.
#
# Usage: sudo scripts/load.sh [OPTIONS]
#   --rate N          requests/s, open loop (0: flat out)            [2700]
#   --duration SECS   how long the client sends (1..60)              [10]
#   --requests N      requests the client sends at most              [rate x duration, flat out 1000000]
#   --mode MODE       short (one connection per request) | keepalive [short]
#   --connections N   client threads/connections                     [50]
#   --workers N       copy's --workers                               [copy's default]
#   --offloads on|off lab veth offloads                              [off]
#   --copy-args ARGS  extra arguments for `tcpcopy copy`, e.g. '-W'  [none]
#   --prefix P        lab prefix                                     [perf]
#   --logs DIR        keep logs in DIR (default: a new /tmp dir)
#   --perf            also record copy with `perf record -g` during the load
#                     (report: perf report -i DIR/copy.perf.data)
# Environment: TCPCOPY=PATH runs that tcpcopy binary instead of the one built
# here (to compare two builds with the same command).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly LAB=scripts/lab.sh
readonly ONLINE_ADDR=198.51.100.20
readonly MAX_DURATION=60
# The C tool's measurement point: replayed requests this long after the load stops.
readonly SETTLE_SECS=3
# The target's log is "drained" once it has not grown for this long (tenths of a second) ...
readonly STABLE_TENTHS=30
# ... or at the latest this long after the load stops.
readonly MAX_DRAIN_SECS=60

die() {
    echo "load.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

rate=2700 duration=10 requests='' mode=short connections=50 workers='' offloads=off prefix=perf work=''
record_perf='' copy_args=()
while (($# > 0)); do
    if [[ $1 == --perf ]]; then
        record_perf=yes
        shift
        continue
    fi
    (($# >= 2)) || usage
    case $1 in
        --rate) rate=$2 ;;
        --duration) duration=$2 ;;
        --requests) requests=$2 ;;
        --mode) mode=$2 ;;
        --connections) connections=$2 ;;
        --workers) workers=$2 ;;
        --copy-args) read -ra copy_args <<<"$2" ;;
        --offloads) offloads=$2 ;;
        --prefix) prefix=$2 ;;
        --logs) work=$2 ;;
        *) usage ;;
    esac
    shift 2
done
is_count() { [[ $1 =~ ^[0-9]+$ ]]; }
is_count "$rate" || die "--rate must be a number, not '$rate'"
if ! is_count "$duration" || ((duration < 1 || duration > MAX_DURATION)); then
    die "--duration must be 1..$MAX_DURATION seconds, not '$duration'"
fi
[[ -z $requests ]] && requests=$(((rate > 0) ? rate * duration : 1000000))
if ! is_count "$requests" || ((requests < 1)); then
    die "--requests must be a positive number, not '$requests'"
fi
[[ $mode == short || $mode == keepalive ]] || die "--mode must be short or keepalive, not '$mode'"
is_count "$connections" || die "--connections must be a number"
[[ -z $workers ]] || is_count "$workers" || die "--workers must be a number"
[[ $offloads == on || $offloads == off ]] || die "--offloads must be on or off"
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, raw sockets): run sudo scripts/load.sh"
$LAB check

cargo build --release --bin tcpcopy --example http_load
target_dir=$(realpath "${CARGO_TARGET_DIR:-target}")
readonly tcpcopy=${TCPCOPY:-$target_dir/release/tcpcopy} http_load=$target_dir/release/examples/http_load
[[ -x $tcpcopy ]] || die "no tcpcopy binary at $tcpcopy"

work=${work:-$(mktemp -d /tmp/tcpcopy-load.XXXXXX)}
mkdir -p "$work"
work=$(realpath "$work")
# shellcheck source=scripts/replication.sh
. scripts/replication.sh
trap replication_cleanup EXIT

lines() {
    if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}

# "UTIME STIME" of a process or thread, in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name).
cpu_ticks() {
    local stat
    stat=$(cat "$1/stat" 2>/dev/null) || { echo 0 0; return; }
    stat=${stat##*) }
    awk '{ print $12, $13 }' <<<"$stat"
}

# Context switches (voluntary + involuntary) of a process or thread.
context_switches() {
    awk '/ctxt_switches:/ { n += $2 } END { print n + 0 }' "$1/status" 2>/dev/null || echo 0
}

# "TID NAME UTIME STIME SWITCHES" for every thread of PID.
thread_ticks() {
    local task
    for task in /proc/"$1"/task/*; do
        echo "${task##*/} $(cat "$task/comm" 2>/dev/null || echo '?') $(cpu_ticks "$task") $(context_switches "$task")"
    done
}

vm_hwm_kb() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# The load average and the busiest processes right now: what else competes for the CPUs.
conditions() {
    local busiest
    busiest=$(top -bn1 -o %CPU -w 200 | awk 'NR > 7 && NR <= 12 { printf "%s %s%%, ", $12, $9 }')
    echo "$(uptime | sed 's/.*load average/load average/'); busiest: ${busiest%, }"
}

echo "conditions before: $(conditions)"
$LAB up --prefix "$prefix" --offloads "$offloads"
# Plenty of client ports for flat-out short connections; the servers close
# first, so the client keeps no TIME-WAIT.
$LAB exec --prefix "$prefix" client sysctl -qw net.ipv4.ip_local_port_range="1024 65000"

start_replication 1s ${workers:+--workers "$workers"} "${copy_args[@]}"

online_log=$work/nginx-online/access.log
target_log=$work/nginx-target/access.log
# One request end to end before the load: proves the replay path works.
warmed=
for ((tries = 0; tries < 50; tries++)); do
    kill -0 "$copy_pid" 2>/dev/null || die "tcpcopy copy exited: $(cat "$work/copy.log")"
    if ((tries % 10 == 0)); then
        $LAB exec --prefix "$prefix" client curl -s -o /dev/null --max-time 1 "http://$ONLINE_ADDR/warmup" || true
    fi
    if (($(lines "$target_log") > 0)); then
        warmed=yes
        break
    fi
    sleep 0.1
done
[[ -n $warmed ]] || die "the warm-up request never reached the target (logs: $work)"
online_before=$(lines "$online_log")
target_before=$(lines "$target_log")

read -r copy_user_before copy_sys_before < <(cpu_ticks "/proc/$copy_pid")
read -r intercept_user_before intercept_sys_before < <(cpu_ticks "/proc/$intercept_pid")
thread_ticks "$copy_pid" >"$work/copy-threads-before.txt"

perf_pid=''
if [[ -n $record_perf ]]; then
    perf record -q -g -p "$copy_pid" -o "$work/copy.perf.data" 2>"$work/perf.log" &
    perf_pid=$!
    pids+=("$perf_pid")
fi
echo "load: $mode, rate $rate/s (0 = flat out), ${duration}s, at most $requests requests, $connections connections, offloads $offloads, copy workers ${workers:-default}${copy_args[*]:+, copy args ${copy_args[*]}}"
$LAB exec --prefix "$prefix" client "$http_load" "$ONLINE_ADDR:80" --rate "$rate" \
    --duration "${duration}s" --requests "$requests" --mode "$mode" \
    --connections "$connections" >"$work/client.json"
load_end=$SECONDS

sleep "$SETTLE_SECS"
online_settle=$(($(lines "$online_log") - online_before))
target_settle=$(($(lines "$target_log") - target_before))

# Drained: the target's log has not grown for STABLE_TENTHS, or MAX_DRAIN_SECS passed.
last=-1 stable=0
while ((stable < STABLE_TENTHS && SECONDS - load_end < MAX_DRAIN_SECS)); do
    now=$(lines "$target_log")
    if ((now == last)); then stable=$((stable + 1)); else stable=0 last=$now; fi
    sleep 0.1
done
drained_after=$((SECONDS - load_end))
online_total=$(($(lines "$online_log") - online_before))
target_total=$(($(lines "$target_log") - target_before))

clk_tck=$(getconf CLK_TCK)
read -r copy_user copy_sys < <(cpu_ticks "/proc/$copy_pid")
read -r intercept_user intercept_sys < <(cpu_ticks "/proc/$intercept_pid")
copy_user_ms=$(((copy_user - copy_user_before) * 1000 / clk_tck))
copy_sys_ms=$(((copy_sys - copy_sys_before) * 1000 / clk_tck))
intercept_user_ms=$(((intercept_user - intercept_user_before) * 1000 / clk_tck))
intercept_sys_ms=$(((intercept_sys - intercept_sys_before) * 1000 / clk_tck))
copy_ms=$((copy_user_ms + copy_sys_ms))
intercept_ms=$((intercept_user_ms + intercept_sys_ms))
thread_ticks "$copy_pid" >"$work/copy-threads-after.txt"
if [[ -n $perf_pid ]]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
copy_hwm=$(vm_hwm_kb "$copy_pid")
intercept_hwm=$(vm_hwm_kb "$intercept_pid")

kill -INT "$copy_pid" "$intercept_pid"
wait "$copy_pid" "$intercept_pid" || true

per_thousand() { awk -v ms="$1" -v n="$2" 'BEGIN { printf (n > 0 ? "%.1f" : "n/a"), ms * 1000 / n }'; }
percent() { awk -v part="$1" -v whole="$2" 'BEGIN { printf (whole > 0 ? "%.2f" : "n/a"), 100 * part / whole }'; }

echo "client:            $(cat "$work/client.json")"
echo "online requests:   $online_total"
echo "target requests:   $target_total (${SETTLE_SECS}s after the load: $target_settle = $(percent "$target_settle" "$online_settle")% of online; drained after ${drained_after}s)"
echo "loss:              $(percent $((online_total - target_total)) "$online_total")% (1 - target/online)"
echo "copy CPU:          ${copy_ms} ms (user $copy_user_ms, sys $copy_sys_ms) = $(per_thousand "$copy_ms" "$online_total") ms per 1,000 requests, VmHWM $((copy_hwm / 1024)) MiB"
echo "intercept CPU:     ${intercept_ms} ms (user $intercept_user_ms, sys $intercept_sys_ms) = $(per_thousand "$intercept_ms" "$online_total") ms per 1,000 requests, VmHWM $((intercept_hwm / 1024)) MiB"
echo "copy threads during the run: CPU ms (total user sys), context switches"
join <(sort "$work/copy-threads-before.txt") <(sort "$work/copy-threads-after.txt") |
    awk -v tck="$clk_tck" '{ u = ($7 - $3) * 1000 / tck; s = ($8 - $4) * 1000 / tck
        printf "  %-16s %6d %6d %6d %8d\n", $2, u + s, u, s, $9 - $5 }' | sort -k2 -rn
echo "copy:              $(grep -o 'copy totals: .*' "$work/copy.log" || echo 'no totals line')"
echo "intercept:         $(grep -o 'intercept totals: .*' "$work/intercept.log" || echo 'no totals line')"
echo "conditions after:  $(conditions)"
