#!/usr/bin/env bash
# packages.sh: the Debian packages tcpcopy's build, demo and tests need, in one list that
# .ci/run, scripts/demo.sh and scripts/test.sh all read (source it, then call
# install_packages). A Rust toolchain (1.85 or newer) is expected to be there already:
# require_cargo says how to get one when it is not.

TCPCOPY_PACKAGES=(
    # build: the pcap crate links libpcap, found through pkg-config; build-essential's C++
    # compiler also builds libFuzzer for scripts/fuzz.sh
    build-essential pkg-config libpcap-dev
    # the network-namespace lab (scripts/lab.sh)
    iproute2 ethtool procps kmod
    # target mode (NFQUEUE rules) and captures
    iptables tcpdump
    # setpriv, which runs intercept without CAP_NET_ADMIN in e2e_diagnostics; script(1), the
    # pseudo-terminal of the progress bar's test (tests/offline_replay.rs)
    util-linux bsdutils
    # servers and clients the e2e tests and the demo run inside the lab
    nginx-light memcached redis-server curl wrk hping3 tcpreplay
    # the Debian package's checks (scripts/check-deb.sh)
    lintian man-db systemd
)

# Fails, saying how to install Rust, when cargo is not on PATH. Call it before anything
# else: under sudo, PATH is reset and loses ~/.cargo/bin, where rustup puts cargo.
require_cargo() {
    command -v cargo >/dev/null && return 0
    cat >&2 <<'EOF'
packages.sh: cargo is not on PATH. Install Rust (1.85 or newer) with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then open a new shell (or `. "$HOME/.cargo/env"`). If cargo works without sudo, sudo
dropped ~/.cargo/bin from PATH: keep it with
  sudo env PATH="$PATH" scripts/demo.sh     (or scripts/test.sh)
EOF
    return 1
}

# Installs the packages of TCPCOPY_PACKAGES that are missing, saying which first. On a
# system without apt-get it prints the list to install and fails. Runs in a subshell so
# its guard against starting services is removed whatever happens.
install_packages() (
    set -euo pipefail
    local missing=() package
    for package in "${TCPCOPY_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$package")
    done
    ((${#missing[@]} > 0)) || return 0
    if ! command -v apt-get >/dev/null; then
        echo "packages.sh: not a Debian or Ubuntu system; install the equivalents of:" >&2
        echo "  ${missing[*]}" >&2
        return 1
    fi
    echo "packages.sh: installing ${missing[*]}"
    # Installing nginx, memcached and redis would start their system services in the
    # root namespace; the lab starts its own instances inside its namespaces. A
    # policy-rc.d that forbids starts keeps them off (and keeps nginx's postinst from
    # failing when port 80 is taken). One already present is left as it is.
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
)
