#!/usr/bin/env bash
# check-deb.sh: checks a package built by scripts/package.sh without installing it:
#   - it installs exactly the expected files (dpkg-deb -c), with a man page for every command
#     the packaged binary knows and every doc of docs/, owned by root, 0755 / 0644;
#   - it depends on libc6 and libpcap0.8;
#   - the packaged binary runs, and man renders every page without a warning;
#   - systemd accepts both units with their shared drop-in (systemd-analyze verify);
#   - lintian reports no error and no warning.
#
# Usage: scripts/check-deb.sh target/debian/tcpcopy_VERSION_ARCH.deb
# Needs dpkg-deb, man (man-db), systemd-analyze (systemd) and lintian (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "check-deb.sh: $*" >&2
    exit 1
}
if [[ $# -ne 1 || ! -f ${1:-} ]]; then
    echo "usage: scripts/check-deb.sh DEB" >&2
    exit 2
fi
readonly deb=$1
work=$(mktemp -d /tmp/tcpcopy-check-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
dpkg-deb -x "$deb" "$root"
tcpcopy=$root/usr/bin/tcpcopy
"$tcpcopy" --version >/dev/null || fail "the packaged binary does not run"

# The files, from what the package is for (not from Cargo.toml's asset list).
expected=(
    usr/bin/tcpcopy
    usr/share/bash-completion/completions/tcpcopy
    usr/share/zsh/vendor-completions/_tcpcopy
    usr/share/fish/vendor_completions.d/tcpcopy.fish
    usr/lib/systemd/system/tcpcopy-copy@.service
    usr/lib/systemd/system/tcpcopy-intercept@.service
    usr/lib/systemd/system/tcpcopy-.service.d/hardening.conf
    usr/share/doc/tcpcopy/copyright
    usr/share/doc/tcpcopy/changelog.Debian.gz
    usr/share/doc/tcpcopy/README.md
    usr/share/doc/tcpcopy/examples/copy.env
    usr/share/doc/tcpcopy/examples/intercept.env
    usr/share/doc/tcpcopy/examples/logrotate
    usr/share/lintian/overrides/tcpcopy
)
for doc in docs/*.md; do
    expected+=("usr/share/doc/tcpcopy/$(basename "$doc")")
done
pages=()
while read -r page; do
    pages+=("$(basename "$page")")
    expected+=("usr/share/man/man1/$(basename "$page").gz")
done < <("$tcpcopy" man "$work/man")
((${#pages[@]} >= 4)) || fail "the binary wrote only ${#pages[@]} man pages"

listing=$(dpkg-deb -c "$deb")
actual=$(awk '$1 !~ /^d/ { sub(/^\.\//, "", $6); print $6 }' <<<"$listing" | sort)
wanted=$(printf '%s\n' "${expected[@]}" | sort)
if [[ $actual != "$wanted" ]]; then
    diff <(echo "$wanted") <(echo "$actual") >&2 || true
    fail "the package's files differ from the expected ones (< missing, > unexpected)"
fi
awk '$2 != "root/root" && $2 != "0/0" { bad = 1; print "owner:", $0 }
     $6 == "./usr/bin/tcpcopy" && $1 != "-rwxr-xr-x" { bad = 1; print "mode:", $0 }
     $1 ~ /^-/ && $6 != "./usr/bin/tcpcopy" && $1 != "-rw-r--r--" { bad = 1; print "mode:", $0 }
     END { exit bad }' <<<"$listing" >&2 || fail "wrong owner or mode"

depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libpcap0.8; do
    tr ',' '\n' <<<"$depends" | awk '{ print $1 }' | grep -qxF "$lib" \
        || fail "Depends lacks $lib: $depends"
done

for page in "${pages[@]}"; do
    warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$root/usr/share/man/man1/$page.gz" 2>&1 >/dev/null)
    [[ -z $warnings ]] || fail "man $page: $warnings"
done

# systemd reads the units where the package puts them, the drop-in included, and finds their
# Documentation= man pages among the packaged ones.
units=$root/usr/lib/systemd/system
verify=$(SYSTEMD_UNIT_PATH="$units:" MANPATH="$root/usr/share/man" \
    systemd-analyze verify tcpcopy-copy@check.service tcpcopy-intercept@check.service 2>&1) \
    || fail "systemd-analyze verify: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify: $verify"

lintian --fail-on error,warning --info "$deb" || fail "lintian found errors or warnings"
echo "check-deb.sh: $deb is complete; man, systemd-analyze and lintian are satisfied"
