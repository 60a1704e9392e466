# replication.sh: sourced by demo.sh and load.sh, not run. Replays the online
# host's port 80 to the target inside a lab that is already up (assistant
# mode: nginx on both, an intercept on the assistant, a copy on the online
# host), and stops everything it started on exit.
#
# The copy/intercept pair is ours (`tcpcopy copy` / `tcpcopy intercept`) or,
# for side-by-side measurements, another pair given as a folder holding
# `tcpcopy` and `intercept` binaries (e.g. TCPCopy 1.3 + intercept 1.0, built
# elsewhere: nothing here builds them). pair_commands below is the one place
# where the command lines of both pairs are written.
#
# The caller sets LAB (path of lab.sh), prefix (the lab's prefix), work (the
# log directory) and tcpcopy (our binary), defines die(), and installs
# `trap replication_cleanup EXIT` before bringing the lab up.
# shellcheck shell=bash
# The caller's variables are used here, and intercept_pid/copy_pid are set for it:
# shellcheck disable=SC2154,SC2034

readonly INTERCEPT_PORT=36524
readonly REPL_ONLINE_ADDR=198.51.100.20
readonly REPL_TARGET_ADDR=198.51.100.30
readonly REPL_ASSISTANT_ADDR=198.51.100.40
# What the intercept captures on the assistant: the target's replies.
readonly REPLY_FILTER='tcp and src port 80'
# What our copy captures on the online host (src/capture/filter.rs builds the
# same expression from -x; direction In).
readonly REQUEST_FILTER="(tcp dst port 80 and (dst host $REPL_ONLINE_ADDR))"
pids=()

# SIGINT to everything started (copy and intercept log their totals), wait for
# it, then tear the lab down.
replication_cleanup() {
    local i
    # Last started first, each waited for: copy stops before the intercept it reports to
    # (else its links see the intercept go while it still runs) and both before the servers.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -INT "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    $LAB down --prefix "$prefix"
    echo "logs kept in $work"
}

# pair_commands KIND LOGDIR [COPY_ARG...]: sets intercept_cmd and copy_cmd, the
# command lines of the pair KIND, with the extra COPY_ARGs at the end of copy's,
# and pair_output, the suffix of the files their stdout and stderr go to.
# Both pairs play the same roles with the same addresses: intercept on the
# assistant captures the target's replies on eth0; copy on the online host
# replays port 80 to the target's port 80, rewrites clients into
# 203.0.113.0/24 (which the target routes via the assistant) and reports to
# the intercept at the assistant (port 36524).
#   ours   tcpcopy intercept|copy (the binary $tcpcopy); they log to stdout
#          ($LOGDIR/NAME.log) and log a "totals" line on SIGINT.
#   other  $other_dir/intercept and $other_dir/tcpcopy with TCPCopy 1.x's
#          flags: -c a.b.c.x is the whole /24 (.1-.254); -s IP uses port
#          36524; tcpcopy captures with a raw socket on every interface (no -i
#          in its default build). -l: log file (its default is a relative
#          logs/ path); both stay in the foreground without -d, so the pid
#          started is the process measured. They log no "totals" line.
pair_commands() {
    local kind=$1 logdir=$2
    shift 2
    case $kind in
        ours)
            intercept_cmd=("$tcpcopy" intercept -i eth0 -F "$REPLY_FILTER"
                --stats-interval "${stats_interval:-1s}")
            copy_cmd=("$tcpcopy" copy -i eth0 -x "80-$REPL_TARGET_ADDR:80" -c 203.0.113.0/24
                -s "$REPL_ASSISTANT_ADDR" --stats-interval "${stats_interval:-1s}" "$@")
            pair_output=log
            ;;
        other)
            intercept_cmd=("$other_dir/intercept" -i eth0 -F "$REPLY_FILTER" -l "$logdir/intercept.log")
            copy_cmd=("$other_dir/tcpcopy" -x "80-$REPL_TARGET_ADDR:80" -c 203.0.113.x
                -s "$REPL_ASSISTANT_ADDR" -l "$logdir/copy.log" "$@")
            pair_output=out
            ;;
        *) die "unknown copy/intercept pair '$kind'" ;;
    esac
}

# pair_totals KIND ROLE LOGDIR: the counters ROLE (copy|intercept) of the pair
# KIND logged at exit, on one line.
pair_totals() {
    local kind=$1 role=$2 log=$3/$2.log
    if [[ $kind == ours ]]; then
        grep -o "$role totals: .*" "$log" 2>/dev/null || echo 'no totals line'
    elif [[ $role == copy ]]; then
        # TCPCopy 1.x logs its statistics in several lines; the last of each.
        local key line out=''
        for key in 'conns:' 'send:' 'syn cnt:' 'retransmit:' 'total captured packets:'; do
            line=$(grep -o "$key.*" "$log" 2>/dev/null | tail -n1) && out+="${line}; "
        done
        echo "${out:-no statistics lines}"
    else
        echo 'no totals line (not logged by this intercept)'
    fi
}

# Lines in FILE, 0 while it does not exist (an access log before its first request).
lines() {
    if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}

# warm_up TARGET_LOG LOGDIR: one request from the client to the online host until the target's
# log TARGET_LOG grows, proving the replay path works before a load; fails (naming LOGDIR)
# when copy exits or nothing arrives within 5 s.
warm_up() {
    local target_log=$1 logdir=$2 tries before
    before=$(lines "$target_log")
    for ((tries = 0; tries < 50; tries++)); do
        alive "$copy_pid" || die "copy (pid $copy_pid) exited before the load (daemonized? it must stay in the foreground): $(tail -qn3 "$logdir"/copy.*)"
        if ((tries % 10 == 0)); then
            $LAB exec --prefix "$prefix" client curl -s -o /dev/null --max-time 1 "http://$REPL_ONLINE_ADDR/warmup" || true
        fi
        (($(lines "$target_log") > before)) && return 0
        sleep 0.1
    done
    die "the warm-up request never reached the target (logs: $logdir)"
}

# Starts `lab.sh exec HOST CMD...` in the background, stdout and stderr to
# FILE. `lab.sh exec` execs `ip netns exec`, which execs CMD: $! becomes CMD's
# own pid (wait_exec checks that).
start() {
    local file=$1 host=$2
    shift 2
    $LAB exec --prefix "$prefix" "$host" "$@" >"$file" 2>&1 &
    pids+=("$!")
}

# alive PID: PID runs (a zombie, e.g. the parent of a daemonized process, does not).
alive() {
    readlink "/proc/$1/exe" >/dev/null 2>&1
}

# wait_exec PID BINARY LOG: waits up to 5 s until PID runs BINARY itself (not
# a shell, `ip` or a wrapper), so /proc/PID is the measured process. A
# daemonizing binary exits here; a wrapper script never becomes BINARY.
wait_exec() {
    local pid=$1 want exe tries
    want=$(realpath "$2")
    for ((tries = 0; tries < 50; tries++)); do
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) ||
            die "$2 (pid $pid) exited at start (daemonized? it must stay in the foreground): $(tail -n5 "$3" 2>/dev/null)"
        [[ $exe == "$want" ]] && return 0
        sleep 0.1
    done
    die "pid $pid runs $exe, not $want: a wrapper script? point at the real binary (logs: $3)"
}

# Waits up to 5 s for a TCP listener on PORT inside HOST.
wait_listening() {
    local host=$1 port=$2 tries
    for ((tries = 0; tries < 50; tries++)); do
        if $LAB exec --prefix "$prefix" "$host" ss -Hltn "sport = :$port" | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    die "nothing listens on port $port in $host (logs: $work)"
}

# nginx on online and target; logs to $work/nginx-{online,target}/access.log.
start_servers() {
    local host
    for host in online target; do
        $LAB nginx --prefix "$prefix" "$host" "$work/nginx-$host" >"$work/nginx-$host.log" 2>&1 &
        pids+=("$!")
    done
    wait_listening online 80
    wait_listening target 80
}

# start_pair LOGDIR: intercept on the assistant, then copy on the online host,
# with intercept_cmd and copy_cmd (see pair_commands); their output goes to
# LOGDIR/{intercept,copy}.$pair_output. Sets intercept_pid and copy_pid.
start_pair() {
    local logdir=$1
    start "$logdir/intercept.$pair_output" assistant "${intercept_cmd[@]}"
    intercept_pid=${pids[-1]}
    wait_exec "$intercept_pid" "${intercept_cmd[0]}" "$logdir/intercept.$pair_output"
    wait_listening assistant "$INTERCEPT_PORT"
    start "$logdir/copy.$pair_output" online "${copy_cmd[@]}"
    copy_pid=${pids[-1]}
    wait_exec "$copy_pid" "${copy_cmd[0]}" "$logdir/copy.$pair_output"
}

# stop_pids PID...: SIGINT, wait, and forget them (the EXIT trap will not
# signal those pids again).
stop_pids() {
    local pid kept=() stopped=" $* "
    kill -INT "$@" 2>/dev/null || true
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        [[ $stopped == *" $pid "* ]] || kept+=("$pid")
    done
    pids=("${kept[@]}")
}

# start_replication STATS_INTERVAL [COPY_ARG...]: nginx on online and target,
# our intercept, then our copy with the extra COPY_ARGs. Sets intercept_pid and
# copy_pid; logs in $work (copy.log, intercept.log).
start_replication() {
    stats_interval=$1
    shift
    start_servers
    pair_commands ours "$work" "$@"
    start_pair "$work"
}
