#!/usr/bin/env bash
# Fuzz smoke test for CI: builds every cargo-fuzz target and runs each one for
# FUZZ_SMOKE_SECONDS (default 30) on a temporary copy of its committed corpus,
# so the committed corpus is never written to. Exits non-zero if any target
# crashes (panic, failed invariant, sanitizer report, timeout or OOM); the
# input that did it is kept under fuzz/artifacts/<target>/.
#
# Prints "fuzz smoke: skipped: ..." and exits 0 when the nightly toolchain is
# missing or cargo-fuzz is not installed and cannot be installed.
#
# Build output goes to fuzz/target, or to $CARGO_TARGET_DIR/fuzz when
# CARGO_TARGET_DIR is set.
set -uo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${FUZZ_SMOKE_SECONDS:-30}"
targets=(api_key token json_body form_body)

say() { echo "fuzz smoke: $*"; }
skip() {
    say "skipped: $*"
    exit 0
}

command -v cargo >/dev/null 2>&1 || skip "cargo is not installed"
if ! cargo +nightly --version >/dev/null 2>&1; then
    skip "no nightly Rust toolchain (cargo fuzz needs one: rustup toolchain install nightly)"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "cargo-fuzz is not installed; running cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked || skip "cargo-fuzz could not be installed"
fi

if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target_dir="${CARGO_TARGET_DIR%/}/fuzz"
else
    target_dir="$fuzz_dir/target"
fi
# cargo fuzz is given the directory explicitly.
unset CARGO_TARGET_DIR

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$fuzz_dir/.." || exit 1
say "building ${targets[*]} (target dir $target_dir)"
if ! cargo +nightly fuzz build --target-dir "$target_dir"; then
    say "FAILED: the fuzz targets do not build"
    exit 1
fi

failed=()
for target in "${targets[@]}"; do
    corpus="$work/corpus/$target"
    mkdir -p "$corpus"
    if [ -d "$fuzz_dir/corpus/$target" ]; then
        cp -R "$fuzz_dir/corpus/$target/." "$corpus/"
    fi
    options=("-max_total_time=$seconds" "-print_final_stats=1")
    case "$target" in
        json_body) options+=("-dict=$fuzz_dir/dict/json.dict" -max_len=17000 -len_control=0) ;;
        form_body) options+=("-dict=$fuzz_dir/dict/form.dict" -max_len=17000 -len_control=0) ;;
        api_key) options+=("-dict=$fuzz_dir/dict/api_key.dict") ;;
    esac
    say "running $target for ${seconds}s"
    if cargo +nightly fuzz run --target-dir "$target_dir" "$target" "$corpus" -- "${options[@]}" \
        >"$work/$target.log" 2>&1; then
        say "$target: ok ($(grep -E '^stat::number_of_executed_units' "$work/$target.log" | awk '{print $2}') executions)"
    else
        tail -n 60 "$work/$target.log"
        say "$target: FAILED (reproducer under fuzz/artifacts/$target/)"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "all targets ran ${seconds}s without a crash"
