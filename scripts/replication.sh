# replication.sh: sourced by demo.sh and load.sh, not run. Replays the online
# host's port 80 to the target inside a lab that is already up (assistant
# mode: nginx on both, `tcpcopy intercept` on the assistant, `tcpcopy copy`
# on the online host), and stops everything it started on exit.
#
# The caller sets LAB (path of lab.sh), prefix (the lab's prefix), work (the
# log directory) and tcpcopy (the binary), defines die(), and installs
# `trap replication_cleanup EXIT` before bringing the lab up.
# shellcheck shell=bash
# The caller's variables are used here, and intercept_pid/copy_pid are set for it:
# shellcheck disable=SC2154,SC2034

readonly INTERCEPT_PORT=36524
pids=()

# SIGINT to everything started (copy and intercept log their totals), wait for
# it, then tear the lab down.
replication_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    $LAB down --prefix "$prefix"
    echo "logs kept in $work"
}

# Starts `lab.sh exec HOST CMD...` in the background, output to $work/NAME.log.
# `lab.sh exec` execs `ip netns exec`, which execs CMD: $! is CMD's own pid.
start() {
    local name=$1 host=$2
    shift 2
    $LAB exec --prefix "$prefix" "$host" "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
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

# start_replication STATS_INTERVAL [COPY_ARG...]: nginx on online and target,
# intercept, then copy with the extra COPY_ARGs. Sets intercept_pid and
# copy_pid; nginx logs to $work/nginx-{online,target}/access.log.
start_replication() {
    local interval=$1
    shift
    local host
    for host in online target; do
        $LAB nginx --prefix "$prefix" "$host" "$work/nginx-$host" >"$work/nginx-$host.log" 2>&1 &
        pids+=("$!")
    done
    wait_listening online 80
    wait_listening target 80
    start intercept assistant "$tcpcopy" intercept -i eth0 -F 'tcp and src port 80' \
        --stats-interval "$interval"
    intercept_pid=${pids[-1]}
    wait_listening assistant "$INTERCEPT_PORT"
    start copy online "$tcpcopy" copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 \
        -s 198.51.100.40 --stats-interval "$interval" "$@"
    copy_pid=${pids[-1]}
}
