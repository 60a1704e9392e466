#!/usr/bin/env bash
# fuzz.sh: builds the fuzz targets of fuzz/ and runs each one for a bounded time, starting
# from its seed corpus (fuzz/corpus/TARGET) and the inputs of crashes fixed before
# (fuzz/regressions/TARGET). Fails when any target crashes (a panic, an abort), hangs on one
# input (over 10 s) or runs out of memory (over 2 GiB), after running all of them.
#
# Usage: scripts/fuzz.sh [--time SECONDS] [TARGET...]
#   --time SECONDS   how long each target runs (default 60)
#   TARGET           fuzz/fuzz_targets/TARGET.rs; default: every target
#
# The engine is libFuzzer (the libfuzzer-sys crate builds it from source with the C++
# compiler of build-essential), on the stable compiler: the coverage instrumentation is
# LLVM's SanitizerCoverage pass, asked for with stable -C flags; no nightly, no cargo-fuzz.
# Runs keep what they find under fuzz/target/runs/TARGET/ (corpus/, and crash-*, timeout-*,
# oom-* files); the summary line of each target gives its executions and executions/s.
# fuzz/README.md says how to reproduce a crash and what each target covers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
    sed -n '7,9p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "fuzz.sh: $*" >&2
    exit 2
}

seconds=60
requested=()
while (($# > 0)); do
    case $1 in
        --time)
            (($# >= 2)) || die "--time needs a number of seconds"
            seconds=$2
            shift 2
            ;;
        --time=*)
            seconds=${1#--time=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            requested+=("$1")
            shift
            ;;
    esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--time $seconds is not a whole number of seconds above 0"

known=()
for file in fuzz/fuzz_targets/*.rs; do
    known+=("$(basename "$file" .rs)")
done
if ((${#requested[@]} == 0)); then
    requested=("${known[@]}")
fi
for target in "${requested[@]}"; do
    [[ " ${known[*]} " == *" $target "* ]] || die "no fuzz target $target (there are: ${known[*]})"
done

# SanitizerCoverage as cargo-fuzz asks for it: 8-bit edge counters and the PC table that
# libFuzzer reads, comparisons traced so that it can solve magic numbers and lengths.
# Overflow checks and debug assertions make arithmetic bugs crash. An explicit --target
# keeps these flags off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
rustflags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Cdebug-assertions
    -Coverflow-checks
)
export CARGO_TARGET_DIR=$root/fuzz/target
bins=()
for target in "${requested[@]}"; do
    bins+=(--bin "$target")
done
echo "fuzz.sh: building ${requested[*]}"
RUSTFLAGS="${rustflags[*]}" cargo build --manifest-path fuzz/Cargo.toml --locked --release \
    --target "$host" "${bins[@]}"

failed=()
for target in "${requested[@]}"; do
    run=$CARGO_TARGET_DIR/runs/$target
    mkdir -p "$run/corpus"
    corpora=("$run/corpus" "fuzz/corpus/$target")
    [[ -d fuzz/regressions/$target ]] && corpora+=("fuzz/regressions/$target")
    log=$run/fuzz.log
    echo "fuzz.sh: $target: running for $seconds s"
    status=0
    # New inputs go into the first corpus directory, the one under fuzz/target.
    "$CARGO_TARGET_DIR/$host/release/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$run/" "${corpora[@]}" >"$log" 2>&1 || status=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log"; }
    if ! grep -q 'inline 8-bit counters' "$log"; then
        echo "fuzz.sh: $target: the binary has no coverage counters (was it built with the flags above?)" >&2
        if ((status == 0)); then
            status=1
        fi
    fi
    if ((status != 0)); then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $target FAILED (exit $status); the input is in $run/ (crash-*, timeout-*, oom-*)," >&2
        echo "  reproduce with: $CARGO_TARGET_DIR/$host/release/$target FILE; full log: $log" >&2
        failed+=("$target")
        continue
    fi
    echo "fuzz.sh: $target: $seconds s, $(stat number_of_executed_units) executions" \
        "($(stat average_exec_per_sec)/s), $(stat new_units_added) new inputs," \
        "peak RSS $(stat peak_rss_mb) MB, 0 crashes"
done

if ((${#failed[@]} > 0)); then
    echo "fuzz.sh: failed: ${failed[*]}" >&2
    exit 1
fi
