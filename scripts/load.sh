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
# With --compare DIR it runs the same load a second time in the same lab with
# the same servers and parameters, with the copy/intercept pair in DIR instead
# of ours, and ends with a table of ratios ours/other.
#
# Usage: sudo scripts/load.sh [OPTIONS]
#   --rate N          requests/s, open loop (0: flat out)            [2700]
#   --duration SECS   how long the client sends (1..60)              [10]
#   --requests N      requests the client sends at most              [rate x duration, flat out 1000000]
#   --mode MODE       short (one connection per request) | keepalive [short]
#   --connections N   client threads/connections                     [50]
#   --workers N       copy's --workers (ours only)                   [copy's default]
#   --offloads on|off lab veth offloads                              [off]
#   --copy-args ARGS  extra arguments for our `tcpcopy copy`, e.g. '-W' [none]
#   --compare DIR     also run the load with DIR/tcpcopy and DIR/intercept,
#                     another copy/intercept pair with TCPCopy 1.x's flags
#                     (e.g. TCPCopy 1.3 + intercept 1.0 built with pcap capture:
#                     --compare /opt/tcpcopy-1x). This script builds nothing
#                     from outside: DIR must already hold both binaries (ELF
#                     files or symlinks to them, not wrapper scripts); they
#                     run in the foreground with the flags in pair_commands
#                     (scripts/replication.sh).
#   --compare-args ARGS  extra arguments for DIR/tcpcopy, e.g. '-W'   [none]
#   --other-first     run DIR's pair before ours (to see what the order costs)
#   --floor           also run the load with no copy at all, only
#                     `tcpdump -Q in --immediate-mode` with copy's filter on
#                     the online host: the CPU that capture alone costs
#   --json FILE       append one JSON line per run to FILE (always written
#                     to LOGDIR/summary.jsonl too)
#   --prefix P        lab prefix                                     [perf]
#   --logs DIR        keep logs in DIR (default: a new /tmp dir); each run
#                     in DIR/ours, DIR/other, DIR/floor
#   --perf            also record copy with `perf record -g` during the load
#                     (report: perf report -i DIR/ours/copy.perf.data)
# Environment: TCPCOPY=PATH runs that tcpcopy binary instead of the one built
# here (to compare two builds with the same command).
set -euo pipefail
# Paths given on the command line are relative to where the script was called from.
readonly CALLER_DIR=$PWD
cd "$(dirname "$0")/.."

readonly LAB=scripts/lab.sh
readonly MAX_DURATION=60
# The C tool's measurement point: replayed requests this long after the load stops.
readonly SETTLE_SECS=3
# The target's log is "drained" once it has not grown for this long (tenths of a second) ...
readonly STABLE_TENTHS=30
# ... or at the latest this long after the load stops.
readonly MAX_DRAIN_SECS=60
# Before a second run, wait at most this long for the target's replayed
# connections of the first run to be gone (TIME-WAIT aside).
readonly QUIET_TENTHS=100

die() {
    echo "load.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

rate=2700 duration=10 requests='' mode=short connections=50 workers='' offloads=off prefix=perf work=''
record_perf='' copy_args=() other_dir='' compare_args=() floor='' json='' other_first=''
while (($# > 0)); do
    case $1 in
        --perf | --floor | --other-first)
            case $1 in
                --perf) record_perf=yes ;;
                --floor) floor=yes ;;
                *) other_first=yes ;;
            esac
            shift
            continue
            ;;
    esac
    (($# >= 2)) || usage
    case $1 in
        --rate) rate=$2 ;;
        --duration) duration=$2 ;;
        --requests) requests=$2 ;;
        --mode) mode=$2 ;;
        --connections) connections=$2 ;;
        --workers) workers=$2 ;;
        --copy-args) read -ra copy_args <<<"$2" ;;
        --compare) other_dir=$2 ;;
        --compare-args) read -ra compare_args <<<"$2" ;;
        --json) json=$2 ;;
        --offloads) offloads=$2 ;;
        --prefix) prefix=$2 ;;
        --logs) work=$2 ;;
        *) usage ;;
    esac
    shift 2
done
is_count() { [[ $1 =~ ^[0-9]+$ ]]; }
from_caller() { if [[ -z $1 || $1 == /* ]]; then echo "$1"; else echo "$CALLER_DIR/$1"; fi; }
other_dir=$(from_caller "$other_dir") json=$(from_caller "$json") work=$(from_caller "$work")
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
((${#compare_args[@]} == 0)) || [[ -n $other_dir ]] || die "--compare-args needs --compare DIR"
[[ -z $other_first || -n $other_dir ]] || die "--other-first needs --compare DIR"
if [[ -n $other_dir ]]; then
    [[ -d $other_dir ]] || die "--compare $other_dir: no such directory"
    other_dir=$(realpath "$other_dir")
    for bin in tcpcopy intercept; do
        [[ -f $other_dir/$bin && -x $other_dir/$bin ]] ||
            die "--compare $other_dir: no executable $other_dir/$bin (DIR must hold the other pair's tcpcopy and intercept binaries; this script builds nothing from outside)"
        # CPU and VmHWM are read from the pid started: a wrapper script would be measured instead.
        [[ $(head -c4 "$other_dir/$bin" | od -An -c | tr -d ' ') == '177ELF' ]] ||
            die "--compare $other_dir: $bin is not an ELF binary (a wrapper script?): point DIR at the real binaries"
    done
fi
if [[ -n $json ]]; then
    touch "$json" 2>/dev/null || die "--json $json: cannot write there"
    json=$(realpath "$json")
fi
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, raw sockets): run sudo scripts/load.sh"
$LAB check
if [[ -n $floor ]]; then
    tcpdump=$(command -v tcpdump) || die "--floor needs tcpdump (apt-get install tcpdump)"
    tcpdump=$(realpath "$tcpdump")
fi

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

# Peak RSS of the process PID (VmHWM, KiB).
vm_hwm_kb() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# The load average and the busiest processes right now: what else competes for the CPUs.
conditions() {
    local busiest
    busiest=$(top -bn1 -o %CPU -w 200 | awk 'NR > 7 && NR <= 12 { printf "%s %s%%, ", $12, $9 }')
    echo "$(uptime | sed 's/.*load average/load average/'); busiest: ${busiest%, }"
}

per_thousand() { awk -v ms="$1" -v n="$2" 'BEGIN { printf (n > 0 ? "%.1f" : "n/a"), ms * 1000 / n }'; }
percent() { awk -v part="$1" -v whole="$2" 'BEGIN { printf (whole > 0 ? "%.2f" : "n/a"), 100 * part / whole }'; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
# A JSON value: a number as is, anything else (n/a) as null.
json_num() { if [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then echo "$1"; else echo null; fi; }

online_log=$work/nginx-online/access.log
target_log=$work/nginx-target/access.log

# Waits until the target holds no replayed connection (other than TIME-WAIT)
# from an earlier run, so the next run starts from the same state.
wait_target_quiet() {
    local tenths left
    for ((tenths = 0; tenths < QUIET_TENTHS; tenths++)); do
        left=$($LAB exec --prefix "$prefix" target ss -Htn state connected exclude time-wait \
            dst 203.0.113.0/24 | wc -l)
        ((left == 0)) && return 0
        sleep 0.1
    done
    echo "note: $left replayed connections still open on the target from the previous run"
}

declare -A result=()

# run KIND: the load once, with the pair KIND (ours | other) or, for KIND
# floor, with only tcpdump capturing on the online host. Prints its report and
# stores its numbers in result[KIND.*].
run() {
    local kind=$1
    run_dir=$work/$kind
    mkdir -p "$run_dir"
    echo
    echo "=== $kind ==="
    local measured=() tries
    case $kind in
        ours) pair_commands ours "$run_dir" ${workers:+--workers "$workers"} "${copy_args[@]}" ;;
        other) pair_commands other "$run_dir" "${compare_args[@]}" ;;
        floor)
            # The capture our copy does (same filter, direction In, immediate
            # mode, 64 MiB buffer), and nothing else: no parsing, no send.
            copy_cmd=("$tcpdump" -i eth0 -Q in --immediate-mode -n -B 65536 -w /dev/null "$REQUEST_FILTER")
            ;;
    esac
    if [[ $kind == floor ]]; then
        echo "capture: ${copy_cmd[*]}"
        start "$run_dir/tcpdump.out" online "${copy_cmd[@]}"
        copy_pid=${pids[-1]}
        wait_exec "$copy_pid" "$tcpdump" "$run_dir/tcpdump.out"
        # tcpdump reports "listening on eth0" once its capture is open.
        for ((tries = 0; tries < 50; tries++)); do
            grep -q 'listening on' "$run_dir/tcpdump.out" && break
            sleep 0.1
        done
        measured=("$copy_pid")
    else
        echo "intercept: ${intercept_cmd[*]}"
        echo "copy:      ${copy_cmd[*]}"
        start_pair "$run_dir"
        warm_up "$target_log" "$run_dir"
        measured=("$copy_pid" "$intercept_pid")
    fi
    echo "conditions before: $(conditions)"
    local online_before target_before
    online_before=$(lines "$online_log")
    target_before=$(lines "$target_log")

    local copy_user_before copy_sys_before intercept_user_before=0 intercept_sys_before=0
    read -r copy_user_before copy_sys_before < <(cpu_ticks "/proc/$copy_pid")
    [[ $kind == floor ]] || read -r intercept_user_before intercept_sys_before < <(cpu_ticks "/proc/$intercept_pid")
    thread_ticks "$copy_pid" >"$run_dir/copy-threads-before.txt"

    local perf_pid=''
    if [[ -n $record_perf && $kind != floor ]]; then
        perf record -q -g -p "$copy_pid" -o "$run_dir/copy.perf.data" 2>"$run_dir/perf.log" &
        perf_pid=$!
        pids+=("$perf_pid")
    fi
    echo "load: $mode, rate $rate/s (0 = flat out), ${duration}s, at most $requests requests, $connections connections, offloads $offloads${workers:+, copy workers $workers}"
    $LAB exec --prefix "$prefix" client "$http_load" "$REPL_ONLINE_ADDR:80" --rate "$rate" \
        --duration "${duration}s" --requests "$requests" --mode "$mode" \
        --connections "$connections" >"$run_dir/client.json"
    local load_end=$SECONDS

    local online_settle=0 target_settle=0 drained_after=0
    if [[ $kind != floor ]]; then
        sleep "$SETTLE_SECS"
        online_settle=$(($(lines "$online_log") - online_before))
        target_settle=$(($(lines "$target_log") - target_before))
        # Drained: the target's log has not grown for STABLE_TENTHS, or MAX_DRAIN_SECS passed.
        local last=-1 stable=0 now
        while ((stable < STABLE_TENTHS && SECONDS - load_end < MAX_DRAIN_SECS)); do
            now=$(lines "$target_log")
            if ((now == last)); then stable=$((stable + 1)); else stable=0 last=$now; fi
            sleep 0.1
        done
        drained_after=$((SECONDS - load_end))
    fi
    local online_total target_total
    online_total=$(($(lines "$online_log") - online_before))
    target_total=$(($(lines "$target_log") - target_before))

    local pid
    for pid in "${measured[@]}"; do
        alive "$pid" || die "pid $pid ($kind) exited during the load (logs: $run_dir)"
    done
    local clk_tck copy_user copy_sys intercept_user=0 intercept_sys=0
    clk_tck=$(getconf CLK_TCK)
    read -r copy_user copy_sys < <(cpu_ticks "/proc/$copy_pid")
    [[ $kind == floor ]] || read -r intercept_user intercept_sys < <(cpu_ticks "/proc/$intercept_pid")
    local copy_user_ms=$(((copy_user - copy_user_before) * 1000 / clk_tck))
    local copy_sys_ms=$(((copy_sys - copy_sys_before) * 1000 / clk_tck))
    local intercept_user_ms=$(((intercept_user - intercept_user_before) * 1000 / clk_tck))
    local intercept_sys_ms=$(((intercept_sys - intercept_sys_before) * 1000 / clk_tck))
    local copy_ms=$((copy_user_ms + copy_sys_ms))
    local intercept_ms=$((intercept_user_ms + intercept_sys_ms))
    thread_ticks "$copy_pid" >"$run_dir/copy-threads-after.txt"
    if [[ -n $perf_pid ]]; then
        stop_pids "$perf_pid"
    fi
    local copy_hwm intercept_hwm=0
    copy_hwm=$(vm_hwm_kb "$copy_pid")
    [[ $kind == floor ]] || intercept_hwm=$(vm_hwm_kb "$intercept_pid")
    stop_pids "${measured[@]}"

    local client settle_pct loss copy_k intercept_k
    client=$(cat "$run_dir/client.json")
    settle_pct=$(percent "$target_settle" "$online_settle")
    loss=$(percent $((online_total - target_total)) "$online_total")
    copy_k=$(per_thousand "$copy_ms" "$online_total")
    intercept_k=$(per_thousand "$intercept_ms" "$online_total")
    echo "client:            $client"
    echo "online requests:   $online_total"
    if [[ $kind == floor ]]; then
        local captured
        captured=$(awk '/packets captured/ { print $1 }' "$run_dir/tcpdump.out")
        echo "tcpdump CPU:       ${copy_ms} ms (user $copy_user_ms, sys $copy_sys_ms) = $copy_k ms per 1,000 requests, VmHWM $((copy_hwm / 1024)) MiB"
        echo "tcpdump captured:  ${captured:-?} packets = $(per_thousand "${captured:-0}" "$online_total") per 1,000 requests"
        result[floor.copy_k]=$copy_k
        printf '{"run":"floor","what":"tcpdump -Q in --immediate-mode, copy filter, no send","mode":"%s","rate":%s,"duration_s":%s,"connections":%s,"offloads":"%s","client":%s,"online_requests":%s,"capture_cpu_ms":%s,"capture_ms_per_1000":%s,"captured_packets":%s}\n' \
            "$mode" "$rate" "$duration" "$connections" "$offloads" "$client" "$online_total" "$copy_ms" \
            "$(json_num "$copy_k")" "$(json_num "${captured:-}")" >>"$work/summary.jsonl"
    else
        echo "target requests:   $target_total (${SETTLE_SECS}s after the load: $target_settle = $settle_pct% of online; drained after ${drained_after}s)"
        echo "loss:              $loss% (1 - target/online)"
        echo "copy CPU:          ${copy_ms} ms (user $copy_user_ms, sys $copy_sys_ms) = $copy_k ms per 1,000 requests, VmHWM $((copy_hwm / 1024)) MiB"
        echo "intercept CPU:     ${intercept_ms} ms (user $intercept_user_ms, sys $intercept_sys_ms) = $intercept_k ms per 1,000 requests, VmHWM $((intercept_hwm / 1024)) MiB"
        echo "copy threads during the run: CPU ms (total user sys), context switches"
        join <(sort "$run_dir/copy-threads-before.txt") <(sort "$run_dir/copy-threads-after.txt") |
            awk -v tck="$clk_tck" '{ u = ($7 - $3) * 1000 / tck; s = ($8 - $4) * 1000 / tck
                printf "  %-16s %6d %6d %6d %8d\n", $2, u + s, u, s, $9 - $5 }' | sort -k2 -rn
        echo "copy:              $(pair_totals "$kind" copy "$run_dir")"
        echo "intercept:         $(pair_totals "$kind" intercept "$run_dir")"
        result[$kind.loss]=$loss
        result[$kind.settle]=$settle_pct
        result[$kind.copy_k]=$copy_k
        result[$kind.intercept_k]=$intercept_k
        result[$kind.copy_hwm]=$(mib "$copy_hwm")
        result[$kind.intercept_hwm]=$(mib "$intercept_hwm")
        result[$kind.online]=$online_total
        printf '{"run":"%s","copy":"%s","mode":"%s","rate":%s,"duration_s":%s,"connections":%s,"offloads":"%s","workers":%s,"client":%s,"online_requests":%s,"target_requests":%s,"online_at_settle":%s,"target_at_settle":%s,"target_at_settle_pct":%s,"drained_after_s":%s,"loss_pct":%s,"copy_cpu_ms":%s,"copy_user_ms":%s,"copy_sys_ms":%s,"copy_ms_per_1000":%s,"intercept_cpu_ms":%s,"intercept_user_ms":%s,"intercept_sys_ms":%s,"intercept_ms_per_1000":%s,"copy_vmhwm_kib":%s,"intercept_vmhwm_kib":%s}\n' \
            "$kind" "${copy_cmd[0]}" "$mode" "$rate" "$duration" "$connections" "$offloads" \
            "$(json_num "$workers")" "$client" "$online_total" "$target_total" "$online_settle" "$target_settle" \
            "$(json_num "$settle_pct")" "$drained_after" "$(json_num "$loss")" "$copy_ms" "$copy_user_ms" \
            "$copy_sys_ms" "$(json_num "$copy_k")" "$intercept_ms" "$intercept_user_ms" "$intercept_sys_ms" \
            "$(json_num "$intercept_k")" "$copy_hwm" "$intercept_hwm" >>"$work/summary.jsonl"
    fi
    echo "conditions after:  $(conditions)"
    [[ -z $json ]] || tail -n1 "$work/summary.jsonl" >>"$json"
}

$LAB up --prefix "$prefix" --offloads "$offloads"
# Plenty of client ports for flat-out short connections; the servers close
# first, so the client keeps no TIME-WAIT.
$LAB exec --prefix "$prefix" client sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
start_servers

runs=(ours)
if [[ -n $other_dir ]]; then
    if [[ -n $other_first ]]; then runs=(other ours); else runs+=(other); fi
fi
for kind in "${runs[@]}"; do
    # Each run starts with no replayed connection left open on the target.
    [[ $kind == "${runs[0]}" ]] || wait_target_quiet
    run "$kind"
done
[[ -z $floor ]] || run floor

# ours/other, or n/a when either is not a number or other is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "n/a"; else printf "%.2f", a / b }'
}
if [[ -n $other_dir ]]; then
    echo
    echo "=== comparison: ours ($tcpcopy) / other ($other_dir), same lab, same load, run in this order: ${runs[*]} ==="
    printf '%-36s %10s %10s %11s\n' '' ours other ours/other
    for row in 'online requests:online' 'loss %:loss' 'target at +3 s, % of online:settle' \
        'copy CPU ms per 1,000 requests:copy_k' 'intercept CPU ms per 1,000 requests:intercept_k' \
        'copy peak RSS (VmHWM) MiB:copy_hwm' 'intercept peak RSS (VmHWM) MiB:intercept_hwm'; do
        key=${row##*:}
        printf '%-36s %10s %10s %11s\n' "${row%:*}" "${result[ours.$key]}" "${result[other.$key]}" \
            "$(ratio "${result[ours.$key]}" "${result[other.$key]}")"
    done
fi
if [[ -n $floor ]]; then
    echo
    echo "=== floor: capture alone (tcpdump, copy's filter, immediate mode; no rewrite, no send) ==="
    echo "capture CPU ms per 1,000 requests: ${result[floor.copy_k]}"
    echo "copy CPU / floor: ours $(ratio "${result[ours.copy_k]}" "${result[floor.copy_k]}")${other_dir:+, other $(ratio "${result[other.copy_k]:-}" "${result[floor.copy_k]}")}"
fi
echo
echo "summary (one JSON line per run): $work/summary.jsonl${json:+, appended to $json}"
