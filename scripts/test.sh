#!/usr/bin/env bash
# test.sh: every check of the project, the same in CI (.ci/run) and by hand:
# formatting, lints, unit tests, a bounded fuzzing run, integration tests, the Debian package,
# then the network-namespace end-to-end tests (tests/e2e_*.rs), one at a time.
#
# Usage: sudo scripts/test.sh   (as root: scripts/test.sh)
# Installs the Debian packages it needs first (scripts/packages.sh; on other
# systems it lists them). The e2e tests build a lab (scripts/lab.sh), so they
# need root; they never skip. Set CARGO_BUILD_JOBS=1 on a busy machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: the e2e tests need root (network namespaces, raw sockets): run sudo scripts/test.sh" >&2
    exit 2
fi
# shellcheck source=scripts/packages.sh
. scripts/packages.sh
require_cargo
install_packages
scripts/lab.sh check

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --lib --bins --examples
cargo test --doc

# Coverage-guided fuzzing of every parser of untrusted bytes (fuzz/README.md), 15 s per
# target: with the instrumented build, under 5 minutes (docs/reliability.md says why 15).
cargo fmt --check --manifest-path fuzz/Cargo.toml
scripts/fuzz.sh --time 15

# Integration tests: e2e ones run serially (one lab at a time on two cores) and
# against an optimized build, as copy would run in production (a debug build
# cannot keep up with the load tests); the others in parallel as usual; every
# test binary runs even after a failure.
e2e=()
others=()
for file in tests/*.rs; do
    [[ -e $file ]] || continue
    name=$(basename "$file" .rs)
    case $name in
        e2e_*) e2e+=(--test "$name") ;;
        *) others+=(--test "$name") ;;
    esac
done
if ((${#others[@]} > 0)); then
    cargo test --no-fail-fast "${others[@]}"
fi

# The Debian package: built into target/debian/, then its contents checked (files, modes,
# dependencies, man pages, systemd units, lintian).
deb=$(scripts/package.sh)
scripts/check-deb.sh "$deb"

if ((${#e2e[@]} > 0)); then
    cargo test --release --no-fail-fast "${e2e[@]}" -- --test-threads=1
    # The HTTP and services tests again with copy in two shards (the default on a 2-core
    # machine is one), so both shard counts are checked on every run.
    TCPCOPY_E2E_WORKERS=2 cargo test --release --no-fail-fast --test e2e_http --test e2e_services -- --test-threads=1
fi

# The README's demo, checking its own output: every request at the target, loss 0.
scripts/demo.sh --check
