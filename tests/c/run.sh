#!/usr/bin/env bash
# Builds the C engine and runs its ctest suite three times: plain
# (RelWithDebInfo), with AddressSanitizer+UBSan, and with ThreadSanitizer.
# Stops at the first failure. Run from anywhere; build dirs go under build/.
set -Eeuo pipefail
start=$SECONDS
cd "$(dirname "$0")/../.."

# Sanitizer findings must fail the run, with enough context to act on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

current=""
trap 'echo "=== ${current:-setup}: FAILED after $((SECONDS - start)) s ===" >&2' ERR

run_build() {
    local name="$1" dir="$2"
    shift 2
    current="$name"
    start=$SECONDS
    echo "=== C build: $name ($dir) ==="
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j2
    ctest --test-dir "$dir" --output-on-failure
    echo "=== $name: passed in $((SECONDS - start)) s ==="
    echo
}

run_build plain build/c -DLANE_ASAN=OFF -DLANE_TSAN=OFF
run_build asan build/c-asan -DLANE_ASAN=ON -DLANE_TSAN=OFF
run_build tsan build/c-tsan -DLANE_ASAN=OFF -DLANE_TSAN=ON
echo "All C builds passed."
