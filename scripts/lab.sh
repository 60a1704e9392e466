#!/usr/bin/env bash
# lab.sh: a five-host network-namespace lab for tcpcopy, on one machine.
#
# Topology for a prefix P (default "tc"):
#
#   P-client     198.51.100.10  eth0 ─┐
#   P-online     198.51.100.20  eth0 ─┤
#   P-online2    198.51.100.21  eth0 ─┤  veth pairs, peers enslaved to
#   P-target     198.51.100.30  eth0 ─┤  bridge br0 inside namespace P-br
#   P-assistant  198.51.100.40  eth0 ─┘
#
# online2 is a second online host, for several copy processes feeding one
# target and one intercept.
#
# With --ipv6 every host also gets 2001:db8::N/64 (N as in its IPv4 address:
# the client 2001:db8::10, the target 2001:db8::30, ...), and the target routes
# 2001:db8:1::/64 (the rewritten IPv6 clients) via the assistant; without it the
# hosts have no IPv6 at all (no DAD, router or MLD chatter in the captures).
#
# Nothing is attached to the root namespace: both ends of every veth pair are
# created directly inside the lab's namespaces, so no packet can leave the
# machine. The target routes 203.0.113.0/24 (the rewritten client addresses)
# via the assistant, which keeps ip_forward=0 and so black-holes the replies
# after tcpcopy's intercept has seen them.
#
# Usage:
#   lab.sh up    [--prefix P] [--offloads on|off] [--ipv6]
#   lab.sh down  [--prefix P]
#   lab.sh exec  [--prefix P] HOST CMD...
#   lab.sh nginx [--prefix P] [--answer PATH=STATUS]... HOST DIR
#   lab.sh check
set -euo pipefail

readonly HOSTS=(client online online2 target assistant)
declare -rA HOST_ADDR=(
    [client]=198.51.100.10
    [online]=198.51.100.20
    [online2]=198.51.100.21
    [target]=198.51.100.30
    [assistant]=198.51.100.40
)
declare -rA HOST_ADDR6=(
    [client]=2001:db8::10
    [online]=2001:db8::20
    [online2]=2001:db8::21
    [target]=2001:db8::30
    [assistant]=2001:db8::40
)
readonly HOST_PREFIX_LEN=24
readonly HOST_PREFIX_LEN6=64
readonly CLIENT_NET=203.0.113.0/24
readonly CLIENT_NET6=2001:db8:1::/64
readonly BRIDGE=br0
readonly DEFAULT_PREFIX=tc
# Namespace names are "P-assistant" at most; interface names inside P-br are
# the host names (at most 9 characters, under IFNAMSIZ).
readonly PREFIX_PATTERN='^[a-z][a-z0-9]{0,11}$'
# Size of the static file nginx serves as /files/big.bin (tests/common/http.rs
# knows it too).
readonly NGINX_BIG_FILE_BYTES=1500000
# Loopback port of the server behind nginx's /upload.
readonly NGINX_UPLOAD_SINK_PORT=8080
# Seconds `down` waits for the lab's processes to exit after SIGTERM.
readonly STOP_GRACE_TENTHS=20

# command -> Debian package that provides it; `check` reports the missing ones.
declare -rA PACKAGE_OF=(
    [ip]=iproute2
    [ss]=iproute2
    [ethtool]=ethtool
    [sysctl]=procps
    [iptables]=iptables
    [tcpdump]=tcpdump
    [nginx]=nginx-light
    [memcached]=memcached
    [redis-server]=redis-server
    [curl]=curl
    [wrk]=wrk
    [pkg-config]=pkg-config
)

die() {
    echo "lab.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (needs CAP_NET_ADMIN and CAP_SYS_ADMIN for ip netns)"
}

# Exits with a clear message when a command the lab itself needs is missing.
require_commands() {
    local cmd missing=()
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) || die "missing commands: ${missing[*]} (run: lab.sh check)"
}

ns_name() {
    echo "$1-$2"
}

ns_exists() {
    ip netns list | awk '{print $1}' | grep -qxF "$1"
}

ns_sysctl() {
    local ns=$1
    shift
    ip netns exec "$ns" sysctl -qw "$@" >/dev/null
}

# Sets offloads on one interface: "off" makes the link look like a plain wire
# (full checksums, no super-segments); "on" keeps the defaults and turns GRO on,
# which veth leaves off unless asked.
set_offloads() {
    local ns=$1 dev=$2 mode=$3
    if [[ $mode == off ]]; then
        ip netns exec "$ns" ethtool -K "$dev" tx off tso off gso off gro off >/dev/null
    else
        ip netns exec "$ns" ethtool -K "$dev" gro on >/dev/null
    fi
}

add_bridge_namespace() {
    local br_ns=$1
    ip netns add "$br_ns"
    ns_sysctl "$br_ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$br_ns" link set dev lo up
    ip -n "$br_ns" link add "$BRIDGE" type bridge stp_state 0 forward_delay 0
    # With br_netfilter loaded, bridged frames would traverse this namespace's
    # iptables; keep the bridge a plain wire.
    if ip netns exec "$br_ns" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
        ns_sysctl "$br_ns" net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
            net.bridge.bridge-nf-call-arptables=0
    fi
}

add_host() {
    local prefix=$1 host=$2 offloads=$3 ipv6=$4
    local ns br_ns
    ns=$(ns_name "$prefix" "$host")
    br_ns=$(ns_name "$prefix" br)

    ip netns add "$ns"
    if [[ $ipv6 == on ]]; then
        # Addresses usable at once (no DAD), no router solicitations.
        ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
            net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv6.conf.default.router_solicitations=0
    else
        # No IPv6: no DAD, router or MLD chatter in the captures.
        ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
    # Strict reverse-path filtering (RFC 3704), as on many production hosts.
    # The target still accepts copies from 203.0.113.0/24 because its route to
    # that net leaves by eth0, the interface the copies arrive on.
    ns_sysctl "$ns" net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1

    # Both ends are created inside the lab: never in the root namespace.
    ip link add eth0 netns "$ns" type veth peer name "$host" netns "$br_ns"
    ip -n "$br_ns" link set dev "$host" master "$BRIDGE"
    ip -n "$br_ns" link set dev "$host" up
    set_offloads "$br_ns" "$host" "$offloads"

    ip -n "$ns" link set dev lo up
    ip -n "$ns" addr add "${HOST_ADDR[$host]}/$HOST_PREFIX_LEN" dev eth0
    if [[ $ipv6 == on ]]; then
        ip -n "$ns" addr add "${HOST_ADDR6[$host]}/$HOST_PREFIX_LEN6" dev eth0 nodad
    fi
    ip -n "$ns" link set dev eth0 up
    set_offloads "$ns" eth0 "$offloads"
}

lab_up() {
    local prefix=$1 offloads=$2 ipv6=$3
    require_root
    require_commands ip ethtool sysctl
    lab_down "$prefix"
    # A half-built lab is torn down rather than left behind (the prefix was
    # validated against PREFIX_PATTERN, so expanding it now is safe).
    # shellcheck disable=SC2064
    trap "echo 'lab.sh: up failed, tearing down $prefix' >&2; lab_down $prefix" EXIT

    add_bridge_namespace "$(ns_name "$prefix" br)"
    local host
    for host in "${HOSTS[@]}"; do
        add_host "$prefix" "$host" "$offloads" "$ipv6"
    done
    ip -n "$(ns_name "$prefix" br)" link set dev "$BRIDGE" up

    # The target answers rewritten clients through the assistant.
    ip -n "$(ns_name "$prefix" target)" route add "$CLIENT_NET" via "${HOST_ADDR[assistant]}" dev eth0
    # The assistant must not forward those replies (nor send ICMP about them).
    ns_sysctl "$(ns_name "$prefix" assistant)" net.ipv4.ip_forward=0
    if [[ $ipv6 == on ]]; then
        ip -n "$(ns_name "$prefix" target)" -6 route add "$CLIENT_NET6" \
            via "${HOST_ADDR6[assistant]}" dev eth0
        ns_sysctl "$(ns_name "$prefix" assistant)" net.ipv6.conf.all.forwarding=0
    fi

    trap - EXIT
    echo "lab $prefix up (offloads $offloads, ipv6 $ipv6)"
}

# Pids of processes whose network namespace is $1, except this script.
ns_pids() {
    ip netns pids "$1" 2>/dev/null | grep -vxF "$$" || true
}

# Stops every process still running in a namespace: SIGTERM, a grace period,
# then SIGKILL. These are processes the lab's users started inside the lab.
stop_ns_processes() {
    local ns=$1 pids tenth
    pids=$(ns_pids "$ns")
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086 # one pid per word
    kill -TERM $pids 2>/dev/null || true
    for ((tenth = 0; tenth < STOP_GRACE_TENTHS; tenth++)); do
        [[ -n $(ns_pids "$ns") ]] || return 0
        sleep 0.1
    done
    pids=$(ns_pids "$ns")
    # shellcheck disable=SC2086 # one pid per word
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
}

lab_down() {
    local prefix=$1 host ns
    require_root
    for host in "${HOSTS[@]}" br; do
        ns=$(ns_name "$prefix" "$host")
        ns_exists "$ns" || continue
        stop_ns_processes "$ns"
        ip netns del "$ns"
    done
}

host_ns() {
    local prefix=$1 host=$2
    [[ -v HOST_ADDR[$host] || $host == br ]] || die "unknown host '$host' (one of: ${HOSTS[*]} br)"
    local ns
    ns=$(ns_name "$prefix" "$host")
    ns_exists "$ns" || die "namespace $ns does not exist (run: lab.sh up --prefix $prefix)"
    echo "$ns"
}

lab_exec() {
    local prefix=$1 host=$2
    shift 2
    (($# > 0)) || die "exec needs a command"
    require_root
    local ns
    ns=$(host_ns "$prefix" "$host")
    exec ip netns exec "$ns" "$@"
}

# Writes DIR/nginx.conf for HOST's address and runs nginx in the foreground
# inside HOST (exec: the caller's pid is nginx's). Every request gets a line
# in DIR/access.log ("ADDR:PORT METHOD URI STATUS REQUEST_LENGTH BYTES_SENT")
# and one in DIR/access.combined.log (nginx's combined format, with the time,
# for `tcpcopy stats logs`):
#   /files/big.bin  a static file of NGINX_BIG_FILE_BYTES zero bytes;
#   /upload         reads the whole request body (up to 4 MB: proxied to a
#                   loopback-only server, so $request_length counts every
#                   body byte) and answers "stored";
#   anything else   "200 ok";
# and each --answer PATH=STATUS (the answers list, from the 4th argument on)
# answers exactly PATH with STATUS and "STATUS\n" (a target that differs from
# the online server on one path, for comparison tests).
lab_nginx() {
    local prefix=$1 host=$2 dir=$3
    shift 3
    local answer answers=""
    for answer in "$@"; do
        [[ $answer =~ ^(/[A-Za-z0-9_./-]*)=([1-5][0-9][0-9])$ ]] ||
            die "--answer must be PATH=STATUS (e.g. /missing=404), not '$answer'"
        answers+="location = ${BASH_REMATCH[1]} { return ${BASH_REMATCH[2]} \"${BASH_REMATCH[2]}\\n\"; }"$'\n'
    done
    require_root
    require_commands nginx
    [[ -v HOST_ADDR[$host] ]] || die "unknown host '$host' (one of: ${HOSTS[*]})"
    local ns
    ns=$(host_ns "$prefix" "$host")
    mkdir -p "$dir/tmp" "$dir/files"
    dir=$(cd "$dir" && pwd)
    head -c "$NGINX_BIG_FILE_BYTES" /dev/zero >"$dir/files/big.bin"
    # Listen on the host's IPv6 address too when the lab gave it one (up --ipv6).
    # (Read whole before matching: `grep -q` quitting early would fail the pipe.)
    local ipv6_listen="" addresses
    addresses=$(ip -n "$ns" -6 addr show dev eth0 2>/dev/null || true)
    if [[ $addresses == *"${HOST_ADDR6[$host]}/"* ]]; then
        ipv6_listen="listen [${HOST_ADDR6[$host]}]:80;"
    fi
    cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    log_format replay '\$remote_addr:\$remote_port \$request_method \$uri \$status '
                      '\$request_length \$bytes_sent';
    access_log $dir/access.log replay;
    access_log $dir/access.combined.log combined;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 100000;
    client_max_body_size 4m;
    client_body_buffer_size 4m;
    server {
        listen ${HOST_ADDR[$host]}:80;
        $ipv6_listen
        location / { return 200 "ok\n"; }
        $answers
        location /files/ { alias $dir/files/; }
        location = /upload { proxy_pass http://127.0.0.1:$NGINX_UPLOAD_SINK_PORT/; }
    }
    server {
        listen 127.0.0.1:$NGINX_UPLOAD_SINK_PORT;
        access_log off;
        location / { return 200 "stored\n"; }
    }
}
CONF
    exec ip netns exec "$ns" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
}

has_libpcap_dev() {
    pkg-config --exists libpcap 2>/dev/null || [[ -e /usr/include/pcap/pcap.h ]]
}

# Lists what the lab, its tests and the build need and is missing, with the
# apt-get line that installs it. Installs nothing.
lab_check() {
    local cmd missing_cmds=() packages=()
    for cmd in "${!PACKAGE_OF[@]}"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            missing_cmds+=("$cmd")
            packages+=("${PACKAGE_OF[$cmd]}")
        fi
    done
    if ! has_libpcap_dev; then
        missing_cmds+=("libpcap headers")
        packages+=(libpcap-dev)
    fi
    if ((${#packages[@]} == 0)); then
        echo "lab.sh check: everything needed is installed"
        return 0
    fi
    local unique
    unique=$(printf '%s\n' "${packages[@]}" | sort -u | tr '\n' ' ')
    echo "lab.sh check: missing: ${missing_cmds[*]}" >&2
    echo "install with: apt-get install -y --no-install-recommends ${unique% }" >&2
    return 1
}

main() {
    (($# > 0)) || usage
    local action=$1
    shift
    [[ $action == check ]] && { lab_check; return; }

    local prefix=$DEFAULT_PREFIX offloads=off ipv6=off answers=()
    while (($# > 0)); do
        case $1 in
            --answer)
                (($# >= 2)) || die "--answer needs PATH=STATUS"
                [[ $action == nginx ]] || die "--answer applies to nginx only"
                answers+=("$2")
                shift 2
                ;;
            --prefix)
                (($# >= 2)) || die "--prefix needs a value"
                prefix=$2
                shift 2
                ;;
            --offloads)
                (($# >= 2)) || die "--offloads needs on or off"
                [[ $2 == on || $2 == off ]] || die "--offloads must be on or off, not '$2'"
                [[ $action == up ]] || die "--offloads applies to up only"
                offloads=$2
                shift 2
                ;;
            --ipv6)
                [[ $action == up ]] || die "--ipv6 applies to up only"
                ipv6=on
                shift
                ;;
            --)
                shift
                break
                ;;
            -*) die "unknown option $1" ;;
            *) break ;;
        esac
    done
    [[ $prefix =~ $PREFIX_PATTERN ]] ||
        die "prefix '$prefix' must match $PREFIX_PATTERN (namespace and interface names stay short)"

    case $action in
        up)
            (($# == 0)) || die "up takes no arguments"
            lab_up "$prefix" "$offloads" "$ipv6"
            ;;
        down)
            (($# == 0)) || die "down takes no arguments"
            lab_down "$prefix"
            ;;
        exec)
            (($# >= 2)) || die "usage: lab.sh exec [--prefix P] HOST CMD..."
            lab_exec "$prefix" "$@"
            ;;
        nginx)
            (($# == 2)) || die "usage: lab.sh nginx [--prefix P] [--answer PATH=STATUS]... HOST DIR"
            lab_nginx "$prefix" "$@" "${answers[@]}"
            ;;
        *) usage ;;
    esac
}

main "$@"
