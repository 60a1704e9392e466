#!/usr/bin/env bash
# check-deb-install.sh: installs a package built by scripts/package.sh into a clean Debian 12
# chroot (debootstrap, made once and kept), then checks it as installed: the binary runs, man
# finds its pages, the completion scripts load in bash, zsh and fish, systemd accepts both
# units, and removing the package leaves none of its files behind.
#
# Usage: sudo scripts/check-deb-install.sh DEB [CHROOT]   (default /var/tmp/tcpcopy-bookworm)
# Needs root and debootstrap; the first run downloads the base system and, every run, the
# package's dependencies from the Debian mirror. Not part of test.sh (network, minutes); run
# it when the package changes.
set -euo pipefail

readonly MIRROR=http://deb.debian.org/debian
readonly EXTRA=man-db,bash-completion,zsh,fish,systemd

fail() {
    echo "check-deb-install.sh: $*" >&2
    exit 1
}
if [[ $# -lt 1 || $# -gt 2 || ! -f $1 ]]; then
    echo "usage: sudo scripts/check-deb-install.sh DEB [CHROOT]" >&2
    exit 2
fi
[[ $(id -u) -eq 0 ]] || fail "needs root (chroot, debootstrap)"
deb=$1
root=${2:-/var/tmp/tcpcopy-bookworm}

if [[ ! -x $root/usr/bin/apt-get ]]; then
    echo "check-deb-install.sh: making a Debian 12 chroot in $root (debootstrap)" >&2
    debootstrap --variant=minbase --include="$EXTRA" bookworm "$root" "$MIRROR" >&2
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/tcpcopy.deb"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc"; rm -f "$root/tmp/tcpcopy.deb"' EXIT

# shellcheck disable=SC2016 # expanded inside the chroot
chroot "$root" /bin/bash -euo pipefail -c '
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y /tmp/tcpcopy.deb >/dev/null
    tcpcopy --version
    for page in tcpcopy tcpcopy-copy tcpcopy-intercept; do man -w "$page" >/dev/null; done
    source /usr/share/bash-completion/bash_completion
    _completion_loader tcpcopy || [[ $? -eq 124 ]] # 124: loaded, "retry the completion"
    complete -p tcpcopy >/dev/null
    zsh -n /usr/share/zsh/vendor-completions/_tcpcopy
    fish -c "complete -C \"tcpcopy copy --inter\"" | grep -q -- --intercept
    systemd-analyze verify tcpcopy-copy@check.service tcpcopy-intercept@check.service
    apt-get purge -y tcpcopy >/dev/null
    if dpkg -S tcpcopy 2>/dev/null | grep -q .; then echo "files left: $(dpkg -S tcpcopy)"; exit 1; fi
' || fail "$deb does not install, work or remove cleanly in $root"
echo "check-deb-install.sh: $deb installs, works and removes cleanly in $root"
